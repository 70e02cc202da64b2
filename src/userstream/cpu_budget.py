"""The CPU budget per record (issue targets) and the machine's calibration, for `userstream bench pipeline`.

Two cores carry 10,000 records/s only if every process together spends at most 200 CPU microseconds per
record. The budget splits that by process. Machines of our kind differ up to 4-5x in speed, so each run also
times a fixed CPU-bound reference loop in Python and in the JVM (in the same run) and reports the costs
scaled to the reference machine's speed as well: a slow machine's figures can then be compared with a fast
one's at equal footing.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BUDGET_TOTAL_US", "BudgetRow", "Calibration", "budget_rows", "calibrate"]

# target CPU microseconds per record, by the process groups `bench pipeline` measures
BUDGET_US: dict[str, float] = {
    "ingest client": 15.0,
    "spark driver": 15.0,
    "spark executor": 50.0,
    "connect + debezium": 35.0,
    "cassandra": 45.0,
    "everything else": 40.0,
}
BUDGET_TOTAL_US = 200.0

# which budget line a measured process falls under (the rest: "everything else")
_GROUP_OF = {
    "ingest client (this process)": "ingest client",
    "stream": "spark driver",
    "spark-worker": "spark executor",  # the worker daemon's tree: the executor runs under it
    "connect": "connect + debezium",
    "cassandra": "cassandra",
}
_JVM_GROUPS = {"spark driver", "spark executor", "connect + debezium", "cassandra"}

# the reference loops' times on the machine docs/benchmarks.md was measured on (the 2-core development VM,
# 2026-12-02, at the start of a `bench pipeline` run)
REFERENCE_PYTHON_S = 0.509
REFERENCE_JVM_S = 0.385

_PYTHON_LOOP_N = 4_000_000  # iterations of the Python loop
_JAVA_SOURCE = """
public class Calibrate {
    public static void main(String[] args) {
        long n = Long.parseLong(args[0]);
        long best = Long.MAX_VALUE;
        long acc = 0;
        for (int round = 0; round < 3; round++) {  // the first rounds warm the JIT up: keep the best
            long t0 = System.nanoTime();
            long x = 88172645463325252L;
            for (long i = 0; i < n; i++) {  // xorshift: no allocation, nothing the JIT can fold away
                x ^= x << 13; x ^= x >>> 7; x ^= x << 17; acc += x & 1023;
            }
            best = Math.min(best, System.nanoTime() - t0);
        }
        System.out.println(best + " " + acc);
    }
}
"""
_JAVA_LOOP_N = 200_000_000


@dataclass(frozen=True)
class Calibration:
    """Seconds of CPU the reference loops took here (best of a few), and the factor that scales this machine's
    CPU costs to the reference machine (< 1 on a slower machine: its microseconds are worth less)."""

    python_s: float
    jvm_s: float | None

    @property
    def python_factor(self) -> float:
        return REFERENCE_PYTHON_S / self.python_s

    @property
    def jvm_factor(self) -> float:
        return REFERENCE_JVM_S / self.jvm_s if self.jvm_s else self.python_factor

    def as_dict(self) -> dict[str, float | None]:
        return {
            "python_loop_s": round(self.python_s, 4),
            "jvm_loop_s": round(self.jvm_s, 4) if self.jvm_s else None,
            "python_factor": round(self.python_factor, 3),
            "jvm_factor": round(self.jvm_factor, 3),
        }


def _python_loop() -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        acc, x = 0, 88172645463325252
        for _ in range(_PYTHON_LOOP_N):
            x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
            acc += x >> 60
        best = min(best, time.process_time() - t0)
    return best


def _jvm_loop() -> float | None:
    java = shutil.which("java")
    if java is None:
        return None
    with tempfile.TemporaryDirectory(prefix="userstream-calibrate-") as tmp:
        source = Path(tmp) / "Calibrate.java"
        source.write_text(_JAVA_SOURCE)
        try:
            out = subprocess.run(
                [java, "-XX:+UseSerialGC", str(source), str(_JAVA_LOOP_N)],
                capture_output=True, text=True, timeout=120, check=True,
            )  # fmt: skip
        except (subprocess.SubprocessError, OSError):
            return None
    return int(out.stdout.split()[0]) / 1e9


def calibrate() -> Calibration:
    """About 5 s: three rounds of the Python loop, then the JVM one (a single-file program run by `java`)."""
    return Calibration(_python_loop(), _jvm_loop())


@dataclass(frozen=True)
class BudgetRow:
    group: str
    us_per_record: float
    target_us: float
    normalized_us: float  # scaled to the reference machine's speed

    @property
    def within(self) -> bool:
        return self.us_per_record <= self.target_us


def budget_rows(cpu_us_per_record: dict[str, float], calibration: Calibration | None = None) -> list[BudgetRow]:
    """The measured per-process costs summed into the budget's lines, each beside its target, then the total."""
    spent = dict.fromkeys(BUDGET_US, 0.0)
    for process, us in cpu_us_per_record.items():
        spent[_GROUP_OF.get(process, "everything else")] += us
    rows = []
    for group, us in spent.items():
        factor = 1.0
        if calibration is not None:
            factor = calibration.jvm_factor if group in _JVM_GROUPS else calibration.python_factor
        rows.append(BudgetRow(group, us, BUDGET_US[group], us * factor))
    rows.append(
        BudgetRow("total", sum(r.us_per_record for r in rows), BUDGET_TOTAL_US, sum(r.normalized_us for r in rows))
    )
    return rows
