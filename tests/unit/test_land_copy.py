"""COPY text formatting: the whole-chunk fast path equals field-by-field escaping, whatever the text holds."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from userstream.ingest.land import LandedUser, _copy_line, copy_text
from userstream.model import UserRow

NASTY = st.text(alphabet=st.sampled_from(list('ab é\\\t\n\r\x00"{}')), max_size=12)
DATES = st.datetimes(timezones=st.just(UTC), min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1))


@st.composite
def landed_users(draw: st.DrawFn) -> LandedUser:
    text = {c: draw(NASTY) for c in UserRow.COLUMNS if c not in ("id", "dob", "registered_date", "fetched_at")}
    row = UserRow(id=uuid.UUID(int=draw(st.integers(0, 2**128 - 1))), dob=draw(DATES), registered_date=draw(DATES),
                  fetched_at=draw(DATES), **text)  # fmt: skip
    return LandedUser(row, draw(NASTY))


@given(st.lists(landed_users(), max_size=20))
def test_chunk_formatting_equals_field_by_field(users: list[LandedUser]) -> None:
    assert copy_text(users) == "".join(_copy_line(u) for u in users)


def test_plain_rows_take_the_fast_path_and_escape_backslashes() -> None:
    now = datetime(2026, 12, 2, tzinfo=UTC)
    row = UserRow(uuid.UUID(int=1), "A\\B", "C", "male", "1 St", "1", "a@b", "u", now, now, "1", "p", "GB", now)
    text = copy_text([LandedUser(row, '{"a": "\\u00e9"}')])
    assert text.count("\t") == 14 and text.endswith('{"a": "\\\\u00e9"}\n') and "A\\\\B" in text
