"""Per-fault figures from synthetic observations, the targets and exit code, the JSON shape and the PNG."""

from __future__ import annotations

import json
from pathlib import Path

from userstream.chaos.report import (
    AUDIT_KEYS,
    FAULT_KEYS,
    AuditFigures,
    ChaosResult,
    FaultRun,
    check_targets,
    exit_code,
    figures,
    render_table,
    write_png,
)
from userstream.chaos.timeline import Sample, WarmupCheck

T = 1_000.0  # the fault's injection time


def outage_run() -> FaultRun:
    """Down from T; healthy again at T+35; the first user fetched after the fault is written at T+50; one
    user of the window never reached Cassandra by T+100."""
    users: list[tuple[float, float | None]] = [(T + i, T + 49.9 + i * 0.1) for i in range(1, 31)]
    users[19] = (T + 20, None)
    return FaultRun("cassandra", 1, T, healthy_at=T + 35, flowing_at=T + 52, caught_up_at=T + 90,
                    measured_at=T + 100, users=users)  # fmt: skip


def test_figures_of_an_outage() -> None:
    f = figures(outage_run())
    assert f.recovered
    assert f.flowing_after_s == 50.0, "the first WRITETIME among users fetched after the fault, minus the fault"
    assert f.after_healthy_s == 15.0
    assert f.healthy_after_s == 35.0 and f.caught_up_after_s == 90.0
    assert f.max_latency_s == 80.0, "an unstored user counts as waited until it was looked for (T+100 - T+20)"
    assert f.unstored == 1 and f.users_in_window == 30


def test_users_fetched_before_the_fault_do_not_count_as_flowing() -> None:
    run = outage_run()
    run.users.insert(0, (T - 1, T + 0.5))  # in flight when the fault hit, written just after it
    assert figures(run).flowing_after_s == 50.0


def test_flowing_before_the_probe_says_healthy_is_zero_seconds_after_healthy() -> None:
    run = FaultRun("airflow-scheduler", 2, T, healthy_at=T + 40, users=[(T + 1, T + 3.5), (T + 2, T + 4.0)],
                   measured_at=T + 60)  # fmt: skip
    f = figures(run)
    assert f.flowing_after_s == 3.5 and f.after_healthy_s == 0.0 and f.max_latency_s == 2.5


def test_the_polled_first_write_counts_when_the_window_could_not_be_read() -> None:
    f = figures(FaultRun("kafka", 1, T, healthy_at=T + 10, flowing_at=T + 25, measured_at=T + 30))
    assert f.flowing_after_s == 25.0 and f.after_healthy_s == 15.0 and f.max_latency_s is None


def test_never_healthy_never_flowing_or_repaired_is_not_recovered() -> None:
    assert not figures(FaultRun("postgres", 1, T, flowing_at=T + 5)).recovered
    never = figures(FaultRun("postgres", 1, T, healthy_at=T + 5, users=[(T + 1, None)], measured_at=T + 300))
    assert not never.recovered and never.flowing_after_s is None and never.after_healthy_s is None
    assert never.max_latency_s == 299.0
    run = outage_run()
    run.repaired = True
    assert not figures(run).recovered


def clean_audit() -> AuditFigures:
    return AuditFigures(landed=1000, stored=990, dlq=10, missing=0, duplicated=0)


def test_targets_met_and_each_kind_of_miss() -> None:
    good = figures(outage_run())
    assert check_targets([good], clean_audit()) == []
    slow = figures(FaultRun("connect", 1, T, healthy_at=T + 1, users=[(T + 0.5, T + 62.5)], measured_at=T + 70))
    assert slow.after_healthy_s == 61.5
    misses = check_targets([good, slow], clean_audit())
    assert len(misses) == 1 and "connect #1" in misses[0] and "60" in misses[0]
    unrecovered = figures(FaultRun("registry", 2, T, repaired=True, healthy_at=T + 5, flowing_at=T + 9))
    assert "registry #2: not recovered" in check_targets([unrecovered], clean_audit())[0]
    bad = AuditFigures(landed=10, stored=8, dlq=0, missing=2, duplicated=1)
    assert check_targets([good], bad) == ["audit: 2 ids missing (target 0)", "audit: 1 ids duplicated (target 0)"]
    assert check_targets([], None, "NoHostAvailable") == ["audit did not run: NoHostAvailable"]


def result_with(runs: list[FaultRun], audit: AuditFigures | None) -> ChaosResult:
    samples = [Sample(T - 60 + i, landed=500 * i, stored=500 * i - 200, pages=10 * i, latency_s=1.5, cohort_size=50)
               for i in range(200)]  # fmt: skip
    result = ChaosResult(requested_rate=500.0, rate=350.0, started_at=T - 60, source_faults="error_rate=0.025",
                         runs=runs, audit=audit, samples=samples)  # fmt: skip
    result.warmups.append(WarmupCheck(500.0, 60.0, 410.0, 300.0, 25.0, False, "stored 300/s < landed 410/s"))
    return result


def test_exit_code_follows_the_targets() -> None:
    assert exit_code(result_with([outage_run()], clean_audit())) == 0
    assert exit_code(result_with([outage_run()], None)) == 1
    aborted = result_with([outage_run()], clean_audit())
    aborted.aborted = "`userstream up --demo` exited 1"
    assert exit_code(aborted) == 1 and aborted.misses[0].startswith("aborted:")


def test_json_has_the_issue_s_keys_and_the_rate_actually_used() -> None:
    doc = json.loads(result_with([outage_run()], clean_audit()).to_json())
    assert {"faults", "audit", "rate"} <= set(doc)
    assert doc["rate"] == 350.0 and doc["requested_rate"] == 500.0
    row = doc["faults"][0]
    assert set(FAULT_KEYS) <= set(row)
    assert set(row) == {*FAULT_KEYS, "healthy_after_s", "caught_up_after_s", "users_in_window", "unstored",
                        "repaired", "injected_at", "window_end", "error"}  # fmt: skip
    assert (row["fault"], row["repeat"], row["recovered"]) == ("cassandra", 1, True)
    assert isinstance(row["flowing_after_s"], float) and isinstance(row["max_latency_s"], float)
    assert set(doc["audit"]) == set(AUDIT_KEYS)
    assert doc["audit"] == {"landed": 1000, "stored": 990, "dlq": 10, "missing": 0, "duplicated": 0}
    assert doc["ok"] is True and doc["misses"] == []
    assert len(doc["timeline"]) == 200 and set(doc["timeline"][0]) >= {"t", "landed", "stored", "latency_s"}


def test_the_table_has_a_row_per_fault() -> None:
    table = render_table(result_with([outage_run(), outage_run()], clean_audit()))
    assert table.row_count == 2


def test_png_timeline_is_written(tmp_path: Path) -> None:
    path = tmp_path / "out" / "chaos.png"
    freeze = FaultRun("kafka-freeze", 1, T + 50, resumed_at=T + 95, healthy_at=T + 96, flowing_at=T + 98,
                      measured_at=T + 120)  # fmt: skip
    write_png(result_with([outage_run(), freeze], clean_audit()), path)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


def test_png_of_a_run_without_samples_is_still_written(tmp_path: Path) -> None:
    result = ChaosResult(requested_rate=500.0, rate=500.0, started_at=T, source_faults="no faults")
    write_png(result, tmp_path / "empty.png")
    assert (tmp_path / "empty.png").stat().st_size > 0
