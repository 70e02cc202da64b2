"""`bench first-row` bookkeeping: what it reads from the command's output, and the fresh data dir."""

from __future__ import annotations

import os
from pathlib import Path

from userstream.coldstart import FirstRow, _read_steps, fresh_data_dir
from userstream.config import Settings

OUTPUT = """\
   0.2s starting postgres
✓ postgres healthy at 0.9s
  24.2s bootstrap: topics, schemas, DDL, CDC connector, streaming job
stack up in 25.3s
  streaming_job      started
  27.2s ingest DAG unpaused: 1000 records/s from http://127.0.0.1:8765/api/
05:30:01 fetched from the API 1,000 (990/s), landed in Postgres 1,000 (n/a/s)
"""


def test_read_steps_takes_the_times_the_command_printed() -> None:
    result = FirstRow(command=["userstream", "up", "--demo"])
    _read_steps(result, OUTPUT)
    assert result.stack_up_s == 25.3
    assert result.flow_started_s == 27.2
    assert result.steps["starting postgres"] == 0.2
    assert result.steps["bootstrap: topics, schemas, DDL, CDC connector, streaming job"] == 24.2
    assert not any(key.startswith("fetched") for key in result.steps), "live-view lines are not steps"


def test_fresh_data_dir_is_empty_but_shares_the_installed_jars(tmp_path: Path) -> None:
    kept = Settings(data_dir=tmp_path / "kept")
    kept.lib_dir.mkdir(parents=True)
    (kept.lib_dir / "kafka").mkdir()
    fresh = fresh_data_dir(kept)
    try:
        assert fresh.root != kept.root
        assert sorted(p.name for p in fresh.root.iterdir()) == ["lib"]
        assert (fresh.lib_dir / "kafka").is_dir() and fresh.lib_dir.resolve() == kept.lib_dir.resolve()
        assert os.stat(fresh.root).st_mode & 0o755 == 0o755, "the postgres user must reach its data dir"
        assert fresh.model_dump(exclude={"data_dir"}) == kept.model_dump(exclude={"data_dir"})
    finally:
        (fresh.root / "lib").unlink()
        fresh.root.rmdir()
