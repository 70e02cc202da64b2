"""The orchestration's pure parts and the `chaos` command's wiring (run_chaos replaced: no servers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import userstream.chaos
from userstream.chaos.demo import demo_env
from userstream.chaos.faults import ChaosError
from userstream.chaos.report import AuditFigures, ChaosResult, FaultRun
from userstream.chaos.resources import ResourceSnapshot, dir_bytes, growth
from userstream.chaos.run import ChaosOptions, _lower_rate
from userstream.chaos.timeline import WarmupCheck
from userstream.cli import app
from userstream.config import Settings


def check(stored: float) -> WarmupCheck:
    return WarmupCheck(500.0, 60.0, 450.0, stored, None, False, "")


def test_a_rate_not_sustained_is_lowered_below_what_was_stored_down_to_the_floor() -> None:
    assert _lower_rate(500.0, check(300.0), 50.0) == 270.0, "0.9 x the stored rate"
    assert _lower_rate(500.0, check(480.0), 50.0) == 350.0, "at least 30 % lower"
    assert _lower_rate(500.0, check(0.0), 50.0) == 250.0, "nothing stored: half"
    assert _lower_rate(60.0, check(10.0), 50.0) == 50.0
    assert _lower_rate(50.0, check(10.0), 50.0) is None, "already at the floor"


def test_options_are_checked() -> None:
    with pytest.raises(ChaosError):
        ChaosOptions(rate=0)
    with pytest.raises(ChaosError):
        ChaosOptions(repeat=0)


def test_the_demo_inherits_the_faulty_source_and_the_rate_unthrottled(tmp_path: Path) -> None:
    env = demo_env(Settings(data_dir=tmp_path), "http://127.0.0.1:40000/api/", 200.0)
    assert env == {
        "USERSTREAM_DATA_DIR": str(tmp_path.resolve()),
        "USERSTREAM_SOURCE_URL": "http://127.0.0.1:40000/api/",
        "USERSTREAM_INGEST_RATE": "200",
        "USERSTREAM_SOURCE_QUOTA_USERS": "0",
    }


def test_soak_growth_of_memory_and_dirs(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_bytes(b"0" * 1000)
    (tmp_path / "a" / "y").write_bytes(b"0" * 24)
    assert dir_bytes(tmp_path / "a") == 1024
    assert dir_bytes(tmp_path / "missing") is None
    start = ResourceSnapshot(0.0, {"kafka": 1000, "stream": 500}, {"logs": 100, "kafka": None})
    end = ResourceSnapshot(3600.0, {"kafka": 1500, "cassandra": 10}, {"logs": 350, "kafka": 20})
    g = growth(start, end)
    assert g["seconds"] == 3600.0
    assert g["rss"]["kafka"] == {"start_bytes": 1000, "end_bytes": 1500, "growth_pct": 50.0}
    assert g["rss"]["stream"]["growth_pct"] is None and g["rss"]["cassandra"]["start_bytes"] is None
    assert g["disk"]["logs"]["growth_bytes"] == 250 and g["disk"]["kafka"]["growth_bytes"] is None


def _result(recovered: bool) -> ChaosResult:
    run = FaultRun("kafka", 1, 100.0, healthy_at=110.0, users=[(101.0, 115.0)], measured_at=130.0,
                   repaired=not recovered)  # fmt: skip
    result = ChaosResult(500.0, 500.0, 90.0, "x", runs=[run], audit=AuditFigures(10, 10, 0, 0, 0))
    result.resources = {"seconds": 1.0, "rss": {}, "disk": {}}
    return result


@pytest.mark.parametrize(("recovered", "code"), [(True, 0), (False, 1)])
def test_the_command_passes_its_options_and_exits_non_zero_on_a_missed_target(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, recovered: bool, code: int
) -> None:
    seen: dict[str, Any] = {}

    def fake_run(settings: Settings, options: ChaosOptions, reporter: object) -> ChaosResult:
        seen["options"] = options
        return _result(recovered)

    monkeypatch.setattr(userstream.chaos, "run_chaos", fake_run)
    args = ["chaos", "--rate", "200", "--repeat", "1", "--pause", "5", "--faults", "kafka,cassandra-freeze",
            "--json", str(tmp_path / "c.json"), "--png", str(tmp_path / "c.png"),
            "--soak", "30", "--warmup", "0"]  # fmt: skip
    out = CliRunner().invoke(app, args)
    assert out.exit_code == code, out.output
    opts = seen["options"]
    assert (opts.rate, opts.repeat, opts.pause_s, opts.soak_s, opts.warmup_s) == (200.0, 1, 5.0, 30.0, 0.0)
    assert [f.name for f in opts.faults] == ["kafka", "cassandra-freeze"]
    assert opts.json_path == tmp_path / "c.json" and opts.png_path == tmp_path / "c.png"


def test_the_command_refuses_an_unknown_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(userstream.chaos, "run_chaos", lambda *a: pytest.fail("must not run"))
    out = CliRunner().invoke(app, ["chaos", "--faults", "kafka,zookeeper"])
    assert out.exit_code != 0
    assert isinstance(out.exception, ChaosError) and "zookeeper" in str(out.exception)
