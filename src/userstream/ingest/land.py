"""Land validated users and rejected records in PostgreSQL, in bulk and idempotently."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from userstream.model import UserRow

_COLUMNS = (*UserRow.COLUMNS, "raw")
_COLS_SQL = ", ".join(_COLUMNS)


@dataclass(frozen=True, slots=True)
class LandedUser:
    row: UserRow
    raw_json: str  # the API's record as received, kept for audit and replays


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str
    raw: str
    source: str = ""  # where it came from, e.g. "seed=s page=3 index=17"


@dataclass(frozen=True)
class LandResult:
    landed: int
    duplicates: int
    rejected: int


def land_batch(
    conn: psycopg.Connection[tuple[object, ...]],
    users: Sequence[LandedUser],
    rejected: Sequence[Reject] = (),
) -> LandResult:
    """COPY into a temp table, then one INSERT .. ON CONFLICT (id) DO NOTHING, in one transaction.

    The transaction commits the users, the rejects and nothing else: a crash lands all or none.
    """
    landed = 0
    with conn.transaction(), conn.cursor() as cur:
        if users:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS _landing (LIKE staging.users INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            with cur.copy(f"COPY _landing ({_COLS_SQL}) FROM STDIN") as copy:
                for user in users:
                    copy.write_row((*user.row.as_db_tuple(), user.raw_json))
            # DISTINCT ON: one page may repeat an id; the first copy wins, like a second page would
            cur.execute(
                f"INSERT INTO staging.users ({_COLS_SQL}) "
                f"SELECT DISTINCT ON (id) {_COLS_SQL} FROM _landing "
                "ON CONFLICT (id) DO NOTHING"
            )
            landed = max(cur.rowcount, 0)
        if rejected:
            with cur.copy("COPY staging.rejected (reason, raw, source) FROM STDIN") as copy:
                for rec in rejected:
                    copy.write_row((rec.reason, _text_safe(rec.raw), rec.source))
    return LandResult(landed=landed, duplicates=len(users) - landed, rejected=len(rejected))


def _text_safe(value: str) -> str:
    # Postgres text cannot hold NUL; a malformed payload may contain one
    return value.replace("\x00", "\\u0000")
