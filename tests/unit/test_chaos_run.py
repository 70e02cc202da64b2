"""The orchestration's pure parts and the `chaos` command's wiring (run_chaos replaced: no servers)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import userstream.chaos.run as chaos_run
import userstream.cli
from userstream.chaos.demo import demo_env
from userstream.chaos.faults import ChaosError, Fault, Injection
from userstream.chaos.report import AuditFigures, ChaosResult, FaultRun, figures
from userstream.chaos.resources import ResourceSnapshot, dir_bytes, growth, memory_misses, soak_growth, tree_memory
from userstream.chaos.run import ChaosOptions, _lower_rate
from userstream.chaos.timeline import Sample, WarmupCheck
from userstream.cli import app
from userstream.config import Settings
from userstream.runtime.base import Health, SilentReporter


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


def test_a_soak_judges_anonymous_memory_from_the_settled_sample() -> None:
    def at(t: float, leaky: int, warming: int) -> ResourceSnapshot:
        mem = {"leaky": leaky, "warming": warming}
        return ResourceSnapshot(t, {k: v * 2 for k, v in mem.items()}, {}, anon=mem)

    # "warming" doubles in the first 10 minutes, then stays; "leaky" climbs 1 % a minute throughout
    samples = [at(60.0 * m, 1000 + 10 * m, 1000 + 100 * min(m, 10)) for m in range(61)]
    g = soak_growth(samples, settle_s=900.0)
    assert g["settled_after_s"] == 900.0 and g["samples"] == 61
    assert g["rss"]["warming"]["growth_pct"] == 100.0, "the raw RSS figure is still reported"
    assert g["rss"]["warming"]["anon_growth_pct"] == 0.0 and g["rss"]["warming"]["anon_slope_pct_per_h"] == 0.0
    assert g["rss"]["leaky"]["anon_growth_pct"] == 39.1  # 1150 -> 1600
    assert g["rss"]["leaky"]["anon_slope_pct_per_h"] == pytest.approx(
        600 / 1490 * 100, abs=0.1
    )  # mean of minutes 38-60
    assert [m.split()[1] for m in memory_misses(g)] == ["leaky"]


def test_tree_memory_reads_this_process() -> None:
    memory = tree_memory(os.getpid())
    assert memory is not None
    rss, anon = memory
    assert 0 < anon <= rss + 1 << 30  # anonymous is part of RSS (plus swap)
    assert tree_memory(2**22 + 12345) is None


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

    monkeypatch.setattr(userstream.cli, "run_chaos", fake_run)  # the command's (imported) run_chaos
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
    monkeypatch.setattr(userstream.cli, "run_chaos", lambda *a: pytest.fail("must not run"))
    out = CliRunner().invoke(app, ["chaos", "--faults", "kafka,zookeeper"])
    assert out.exit_code != 0
    assert isinstance(out.exception, ChaosError) and "zookeeper" in str(out.exception)


class _Demo:
    def check(self) -> None:
        pass


class _Procs:
    """supervisord as seen after the kill: the old pid until ``restarted``, then a new one."""

    def __init__(self) -> None:
        self.restarted = False

    def pid(self, name: str) -> int:
        return 2 if self.restarted else 1

    def state(self, name: str) -> str:
        return "RUNNING" if self.restarted else "BACKOFF"


class _Healthy:
    def health(self) -> Health:
        return Health(True)


class _Stack:
    def __init__(self) -> None:
        self.processes = _Procs()
        self.services = {"kafka": _Healthy()}


class _Probe:
    """Users fetched every 0.1 s from the injection on, each written 0.3 s after it was fetched, once
    ``flowing`` (set when the service is back)."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.flowing = False
        self.users: dict[uuid.UUID, float] = {}

    def _landed(self) -> list[tuple[uuid.UUID, float]]:
        while len(self.users) < (time.time() - self.t0) / 0.1:
            self.users[uuid.uuid4()] = self.t0 + len(self.users) * 0.1
        return list(self.users.items())

    def pages(self) -> int:
        return 7

    def newest(self, limit: int = 50) -> list[tuple[uuid.UUID, float]]:
        return self._landed()[-limit:][::-1]

    def fetched_between(self, t0: float, t1: float, from_page: int, limit: int | None = None) -> list[Any]:
        assert from_page == 7
        rows = [(u, f) for u, f in self._landed() if t0 < f <= t1]
        return rows[:limit] if limit else rows

    def writetimes(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, float]:
        return {i: self.users[i] + 0.3 for i in ids if self.flowing and i in self.users}


class _Sampler:
    def __init__(self, t0: float) -> None:
        self.t0 = t0

    def samples(self) -> list[Sample]:
        n = int((time.time() - self.t0) / 0.1)
        return [Sample(self.t0 + i * 0.1, 0, 0, 0, latency_s=0.3, cohort_size=50) for i in range(n)]


def test_one_fault_measures_a_kill_that_heals_on_its_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    t0 = time.time()
    stack, probe = _Stack(), _Probe(t0)

    def fake_inject(fault: Fault, processes: object) -> Injection:
        threading.Timer(1.0, lambda: setattr(stack.processes, "restarted", True)).start()
        threading.Timer(1.5, lambda: setattr(probe, "flowing", True)).start()
        return Injection(fault, (1,), t0)

    monkeypatch.setattr(chaos_run, "inject", fake_inject)
    options = ChaosOptions(latency_bound_s=0.5, recover_timeout_s=10.0, catchup_timeout_s=10.0)
    fault = Fault("kafka", "kafka", "kafka")
    run = chaos_run._one_fault(Settings(data_dir=tmp_path), options, fault, 1, _Demo(), _Sampler(t0),  # type: ignore[arg-type]
                               stack, probe, SilentReporter())  # type: ignore[arg-type]  # fmt: skip
    f = figures(run)
    assert f.recovered and not run.repaired
    assert f.healthy_after_s is not None and 0.9 <= f.healthy_after_s <= 2.5
    assert f.flowing_after_s == pytest.approx(0.4, abs=0.01), "the first user fetched after the fault, +0.3 s"
    assert f.after_healthy_s == 0.0, "the user written at +0.4 s counts even though it was seen later"
    assert f.max_latency_s == pytest.approx(0.3, abs=0.01) and f.unstored == 0 and f.users_in_window > 10
    assert run.caught_up_at is not None
