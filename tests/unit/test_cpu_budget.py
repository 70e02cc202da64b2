"""The CPU budget's lines and the calibration that scales costs to the reference machine."""

from __future__ import annotations

import pytest

from userstream.cpu_budget import BUDGET_TOTAL_US, Calibration, budget_rows, calibrate


def test_processes_fall_into_their_budget_lines() -> None:
    measured = {"ingest client (this process)": 12.0, "stream": 30.0, "spark-worker": 40.0, "connect": 20.0,
                "cassandra": 50.0, "kafka": 10.0, "postgres": 15.0, "airflow-scheduler": 5.0}  # fmt: skip
    rows = {r.group: r for r in budget_rows(measured)}
    assert rows["ingest client"].us_per_record == 12.0 and rows["ingest client"].within
    assert rows["spark driver"].us_per_record == 30.0 and not rows["spark driver"].within  # target 15
    assert rows["everything else"].us_per_record == 30.0  # kafka + postgres + airflow
    assert rows["total"].us_per_record == pytest.approx(182.0)
    assert rows["total"].target_us == BUDGET_TOTAL_US and rows["total"].within
    assert all(r.normalized_us == r.us_per_record for r in rows.values())  # no calibration: unscaled


def test_a_slower_machine_is_scaled_down_to_the_reference() -> None:
    slow = Calibration(python_s=2.0, jvm_s=4.0)  # twice (Python) and four times (JVM) the reference's time
    rows = {r.group: r for r in budget_rows({"ingest client (this process)": 30.0, "cassandra": 80.0}, slow)}
    assert rows["ingest client"].normalized_us == pytest.approx(30.0 * slow.python_factor)
    assert rows["cassandra"].normalized_us == pytest.approx(80.0 * slow.jvm_factor)
    assert rows["total"].normalized_us == pytest.approx(sum(r.normalized_us for g, r in rows.items() if g != "total"))


def test_calibration_times_both_loops() -> None:
    cal = calibrate()
    assert 0 < cal.python_s < 30 and cal.jvm_s is not None and 0 < cal.jvm_s < 30
    assert set(cal.as_dict()) == {"python_loop_s", "jvm_loop_s", "python_factor", "jvm_factor"}
