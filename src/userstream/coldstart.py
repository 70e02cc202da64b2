"""`userstream bench first-row`: from a stopped stack, how long `make run` takes to put a user in Cassandra.

The command under test (``userstream up --demo`` by default, or e.g. ``make run``) runs as a child process
exactly as a user would start it. Meanwhile this module watches from outside: the first user fetched after
the start landing in Postgres, then the first of those users in Cassandra (its ``WRITETIME``). Then it sends
the child Ctrl-C (SIGINT to its process group) and times the graceful stop.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from userstream.benchmark import StoredUsers
from userstream.config import Settings
from userstream.errors import ServiceError
from userstream.runtime.stack import Stack

# ConsoleReporter lines: "  12.3s message"
_STEP = re.compile(r"^\s*(?P<s>\d+\.\d)s (?P<msg>.+)$")
_STACK_UP = re.compile(r"stack up in (?P<s>\d+\.\d)s")


@dataclass
class FirstRow:
    command: list[str]
    fresh: bool = False
    stack_up_s: float | None = None
    flow_started_s: float | None = None
    first_landed_s: float | None = None
    first_row_s: float | None = None
    stopped_s: float | None = None
    exit_code: int | None = None
    log: str = ""
    steps: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _first_landed(settings: Settings, since: datetime, limit: int = 200) -> list[tuple[uuid.UUID, datetime]]:
    try:
        with psycopg.connect(settings.postgres_conninfo, connect_timeout=2) as conn:
            rows = conn.execute(
                "SELECT id, fetched_at FROM staging.users WHERE fetched_at >= %s ORDER BY fetched_at LIMIT %s",
                (since, limit),
            ).fetchall()
    except psycopg.Error:  # not up yet, or the schema not applied yet
        return []
    return [(r[0], r[1]) for r in rows]


def _stored_users(settings: Settings) -> StoredUsers | None:
    try:
        return StoredUsers(settings)
    except Exception:  # Cassandra not up yet, or the table not created yet
        return None


def fresh_data_dir(settings: Settings) -> Settings:
    """Settings on a new, empty data dir that shares only the installed jars (``lib/``) of ``settings``."""
    root = Path(tempfile.mkdtemp(prefix="userstream-fresh-"))
    root.chmod(0o755)  # the postgres user must reach its data dir below it
    if settings.lib_dir.is_dir():
        (root / "lib").symlink_to(settings.lib_dir)
    return settings.model_copy(update={"data_dir": root})


def bench_first_row(
    settings: Settings,
    command: list[str],
    *,
    log_path: Path,
    fresh: bool = False,
    timeout_s: float = 300.0,
    stop_wait_s: float = 180.0,
) -> FirstRow:
    """Stop the stack (data kept), start ``command``, wait for the first new user in Cassandra, Ctrl-C it.

    ``fresh``: the command runs on a new, empty data dir (dependencies installed, nothing else: no backlog,
    first initdb, topic and table creation included), removed afterwards.
    """
    Stack(settings).down()
    env = dict(os.environ)
    if fresh:
        settings = fresh_data_dir(settings)
        env["USERSTREAM_DATA_DIR"] = str(settings.data_dir)
    try:
        result = FirstRow(command=command, fresh=fresh, log=str(log_path))
        return _first_row(settings, result, env, log_path, timeout_s, stop_wait_s)
    finally:
        if fresh:
            Stack(settings).down()  # only if the command's own Ctrl-C handling failed
            shutil.rmtree(settings.data_dir, ignore_errors=True)


def _first_row(
    settings: Settings, result: FirstRow, env: dict[str, str], log_path: Path, timeout_s: float, stop_wait_s: float
) -> FirstRow:
    command = result.command
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(UTC)
    t0 = time.monotonic()
    with log_path.open("w") as log:
        child = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env
        )
        reader: StoredUsers | None = None
        try:
            deadline = t0 + timeout_s
            while result.first_row_s is None:
                if time.monotonic() > deadline:
                    raise ServiceError(
                        f"no user reached Cassandra within {timeout_s:.0f}s of `{' '.join(command)}`",
                        fix=f"read {log_path} and `userstream status`",
                    )
                if child.poll() is not None:
                    raise ServiceError(
                        f"`{' '.join(command)}` exited {child.returncode} before a user reached Cassandra",
                        fix=f"read {log_path}",
                    )
                landed = _first_landed(settings, started_at)
                if landed and result.first_landed_s is None:
                    result.first_landed_s = landed[0][1].timestamp() - started_at.timestamp()
                if landed:
                    reader = reader or _stored_users(settings)
                    written = reader.writetimes([i for i, _ in landed]) if reader else {}
                    if written:
                        result.first_row_s = min(written.values()) / 1e6 - started_at.timestamp()
                time.sleep(0.5)
        finally:
            if reader is not None:
                reader.close()
            t_stop = time.monotonic()
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
            try:
                result.exit_code = child.wait(stop_wait_s)
                result.stopped_s = time.monotonic() - t_stop
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
    _read_steps(result, log_path.read_text(errors="replace"))
    return result


def _read_steps(result: FirstRow, text: str) -> None:
    for line in text.splitlines():
        if m := _STACK_UP.search(line):
            result.stack_up_s = float(m.group("s"))
        elif m := _STEP.match(line):
            result.steps[m.group("msg")[:80]] = float(m.group("s"))
            if m.group("msg").startswith("ingest DAG unpaused"):
                result.flow_started_s = float(m.group("s"))


__all__ = ["FirstRow", "bench_first_row"]
