"""The msgspec fast path against pydantic's ApiUser: it never accepts a record pydantic rejects, and the row it
builds is the one to_row builds. Records are the generator's, then mutated the ways a broken API would."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from userstream.model import ApiUser, to_row
from userstream.source import UserGenerator
from userstream.source.decode import decode_body, decode_user_row

GEN = UserGenerator()
USERS = GEN.users("decode-tests", 1, 200)
FETCHED = datetime(2026, 12, 2, tzinfo=UTC)

# values a broken API might put anywhere: wrong types, empty, unusual but legal shapes
ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**12), st.floats(), st.just(""), st.text(max_size=8),
    st.just("1990-01-01T00:00:00"), st.just("1990-01-01T00:00:00Z"), st.just("1990-01-01 00:00:00+02:00"),
    st.just("1990-01-01T00:00:00.123456789Z"), st.just("1990-01-01"), st.just("12345678123456781234567812345678"),
    st.just("{12345678-1234-5678-1234-567812345678}"), st.just("AB"), st.just("ab"), st.just("ABC"),
    st.just("male"), st.just("Male"), st.just([]), st.just({}), st.just("42"), st.just(-1), st.just(1.0),
)  # fmt: skip


def paths(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            out += paths(child, (*prefix, key))
    return out


ALL_PATHS = sorted({p for u in USERS[:5] for p in paths(u)})


def mutate(user: dict[str, Any], path: tuple[str, ...], value: Any, delete: bool) -> dict[str, Any]:
    out = copy.deepcopy(user)
    node = out
    for key in path[:-1]:
        node = node[key]
    if delete:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return out


def slow(raw: object) -> Any:
    try:
        return to_row(ApiUser.model_validate(raw), FETCHED)
    except ValidationError:
        return None


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(USERS), st.sampled_from(ALL_PATHS), ODD_VALUES, st.booleans())
@example(USERS[0], ("id", "value"), float("inf"), False)  # encoded as null, which both paths accept
def test_fast_path_accepts_no_more_than_pydantic(
    user: dict[str, Any], path: tuple[str, ...], value: Any, delete: bool
) -> None:
    # both paths see the same JSON text (encoding turns a non-finite float into null, for one)
    text = msgspec.json.encode(mutate(user, path, value, delete))
    fast = decode_user_row(msgspec.Raw(text), FETCHED)
    if fast is not None:
        assert fast == slow(msgspec.json.decode(text)), (
            f"{'.'.join(path)} = {value!r}: the fast path accepted what pydantic did not"
        )


@pytest.mark.parametrize("path", ALL_PATHS, ids=".".join)
def test_every_field_against_every_odd_value(path: tuple[str, ...]) -> None:
    """Exhaustive over fields x a fixed list of odd values (the random test above mixes more)."""
    odd = [None, True, 0, -1, 1.0, 2.5, "", "x", "42", [], {}, "1990-01-01T00:00:00", "1990-01-01T00:00:00Z",
           "1990-01-01 00:00:00+02:00", "1990-01-01", "12345678123456781234567812345678", "AB", "ab",
           "male"]  # fmt: skip
    for value in odd:
        for delete in (False, True):
            text = msgspec.json.encode(mutate(USERS[0], path, value, delete))
            fast = decode_user_row(msgspec.Raw(text), FETCHED)
            if fast is not None:
                assert fast == slow(msgspec.json.decode(text)), (
                    f"{'.'.join(path)} = {value!r}: accepted by the fast path only"
                )


@pytest.mark.parametrize("user", USERS[:50])
def test_a_valid_record_gives_the_same_row_both_ways(user: dict[str, Any]) -> None:
    assert decode_user_row(msgspec.Raw(msgspec.json.encode(user)), FETCHED) == slow(user)


def test_body_keeps_each_record_as_received() -> None:
    body = decode_body(b'{"results": [{"a": 1},  null, "x"], "info": {"page": 3}}')
    assert [bytes(r) for r in body.results or []] == [b'{"a": 1}', b"null", b'"x"']
    assert body.info == {"page": 3}
    with pytest.raises(msgspec.ValidationError):
        decode_body(b"[1, 2]")
