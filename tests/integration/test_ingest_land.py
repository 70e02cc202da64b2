from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
import pytest

from userstream.config import Settings
from userstream.ingest.land import LandedUser, Reject, land_batch
from userstream.model import UserRow
from userstream.runtime.stack import Stack
from userstream.store.postgres import apply_postgres_schema

pytestmark = pytest.mark.integration


def make_user(i: int) -> LandedUser:
    now = datetime.now(UTC)
    row = UserRow(
        id=uuid.uuid4(), first_name=f"F{i}", last_name=f"L{i}", gender="female",
        address=f"{i} Main St, Town, State, Country", post_code=str(1000 + i), email=f"f{i}.l{i}@example.com",
        username=f"user{i}", dob=now, registered_date=now, phone="555", picture="https://x/y.jpg", nat="US",
        fetched_at=now,
    )  # fmt: skip
    return LandedUser(row=row, raw_json=json.dumps({"i": i}))


@pytest.fixture()
def pg(require_services: Callable[..., Stack], settings: Settings) -> psycopg.Connection[tuple[object, ...]]:
    require_services("postgres")
    apply_postgres_schema(settings)
    return psycopg.connect(settings.postgres_conninfo, autocommit=True)


def test_land_batch_is_idempotent_and_keeps_rejects(pg: psycopg.Connection[tuple[object, ...]]) -> None:
    users = [make_user(i) for i in range(500)]
    first = land_batch(pg, users, [Reject(reason="email: missing", raw='{"bad": 1}', source="p1")])
    assert (first.landed, first.duplicates, first.rejected) == (500, 0, 1)
    # a replay of the same page lands nothing new, and says so
    again = land_batch(pg, [*users[:100], make_user(999)])
    assert (again.landed, again.duplicates) == (1, 100)
    ids = [u.row.id for u in users]
    got = pg.execute("SELECT count(*) FROM staging.users WHERE id = ANY(%s)", (ids,)).fetchone()
    assert got == (500,)
    stored = pg.execute(
        "SELECT first_name, email, raw->>'i' FROM staging.users WHERE id = %s", (users[7].row.id,)
    ).fetchone()
    assert stored == ("F7", "f7.l7@example.com", "7")
    reason = pg.execute(
        "SELECT reason, raw FROM staging.rejected WHERE source = 'p1' ORDER BY rejected_id DESC"
    ).fetchone()
    assert reason == ("email: missing", '{"bad": 1}')


def test_land_batch_dedupes_within_one_page(pg: psycopg.Connection[tuple[object, ...]]) -> None:
    user = make_user(1)
    result = land_batch(pg, [user, user])
    assert (result.landed, result.duplicates) == (1, 1)


def test_schema_apply_is_idempotent(pg: psycopg.Connection[tuple[object, ...]], settings: Settings) -> None:
    before = pg.execute("SELECT count(*) FROM staging.users").fetchone()
    assert apply_postgres_schema(settings) == ["001_staging.sql"]
    assert pg.execute("SELECT count(*) FROM staging.users").fetchone() == before
    pubs = pg.execute("SELECT pubname FROM pg_publication").fetchall()
    assert ("userstream_users",) in pubs


def test_copy_escaping_round_trips_awkward_text(pg: psycopg.Connection[tuple[object, ...]]) -> None:
    base = make_user(3)
    awkward = "tab\there\\back\nnew\rret é ü 東京 \\N"
    row = UserRow(**{**base.row.as_db_dict(), "id": uuid.uuid4(), "first_name": awkward, "last_name": "\\"})
    raw = json.dumps({"name": awkward, "nul": "a\x00b"})
    assert land_batch(pg, [LandedUser(row=row, raw_json=raw)]).landed == 1
    stored = pg.execute(
        "SELECT first_name, last_name, raw::text FROM staging.users WHERE id = %s", (row.id,)
    ).fetchone()
    assert stored is not None
    assert stored[0] == awkward and stored[1] == "\\"
    assert json.loads(str(stored[2]))["name"] == awkward
