"""`userstream chaos` on the real `make run` path: the demo at 200 records/s from a faulty source, then
kill -9 of Cassandra, PostgreSQL, Kafka, Kafka Connect and the streaming driver, one after another. Every one
must heal with no human action, records flowing again within 60 s of the service being healthy, and the
final audit must find nothing missing or duplicated.

Bounded: a passing run takes ~8 minutes (start ~1.5 min, 30 s warm-up, ~1 min per fault, drain, Ctrl-C);
the per-fault timeouts and the 9-minute budget for starting faults bound a failing one.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from userstream.chaos import ChaosOptions, parse_faults, run_chaos
from userstream.config import Settings
from userstream.runtime.stack import Stack

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
FAULTS = "cassandra,postgres,kafka,connect,stream-driver"


@pytest.mark.timeout(1200)
def test_each_killed_server_heals_on_its_own_and_nothing_is_lost(settings: Settings) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    options = ChaosOptions(
        rate=200.0,
        repeat=1,
        faults=parse_faults(FAULTS),
        warmup_s=30.0,
        rate_attempts=1,  # 200/s is well below what the machine carries: no restart at a lower rate
        start_timeout_s=300.0,
        recover_timeout_s=90.0,
        catchup_timeout_s=60.0,
        drain_timeout_s=120.0,
        budget_s=540.0,
        log_path=ARTIFACTS / "e2e-chaos-demo.log",
        json_path=ARTIFACTS / "e2e-chaos.json",
        png_path=ARTIFACTS / "e2e-chaos.png",
    )
    t0 = time.monotonic()
    result = run_chaos(settings, options)
    elapsed = time.monotonic() - t0
    where = f"see {options.json_path}, {options.png_path} and {options.log_path}"

    assert result.aborted is None, f"{result.aborted}; {where}"
    assert result.rate == 200.0
    figures = {f.fault: f for f in result.figures}
    assert list(figures) == FAULTS.split(","), f"every fault injected once, in order: {list(figures)}"
    for name, f in figures.items():
        assert f.recovered, f"{name} did not recover without intervention ({f.error or 'timed out'}); {where}"
        assert f.after_healthy_s is not None and f.after_healthy_s <= 60, (
            f"{name}: flowing {f.after_healthy_s}s after healthy (target <= 60 s); {where}"
        )
        assert f.users_in_window > 0 and f.max_latency_s is not None, f"{name}: no users measured in its window"
    assert result.audit is not None, f"the audit did not run: {result.audit_error}"
    assert result.audit.landed > 0
    assert (result.audit.missing, result.audit.duplicated) == (0, 0), f"{result.audit}; {where}"
    assert result.ok, f"{result.misses}; {where}"
    assert options.json_path is not None and options.json_path.exists()
    assert options.png_path is not None and options.png_path.stat().st_size > 0
    assert elapsed < 13 * 60, f"the chaos run took {elapsed:.0f}s"
    assert not any(s.running for s in Stack(settings).status() if not s.external), "Ctrl-C stops every service"
