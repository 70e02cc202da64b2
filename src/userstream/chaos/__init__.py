"""`userstream chaos`: faults injected into the running pipeline, and how long each takes to heal on its own.

Public API::

    parse_faults("kafka,cassandra-freeze") -> tuple[Fault, ...]   # "none": a soak; "all": the catalogue
    run_chaos(settings, ChaosOptions(rate=..., faults=..., ...), reporter) -> ChaosResult
    ChaosResult.figures / .audit / .misses / .ok / .as_dict(); render_table(result); write_png(result, path)
"""

from userstream.chaos.faults import FAULT_NAMES, FAULTS, ChaosError, Fault, parse_faults
from userstream.chaos.report import ChaosResult, exit_code, render_table, write_png
from userstream.chaos.run import ChaosOptions, run_chaos

__all__ = [
    "FAULTS",
    "FAULT_NAMES",
    "ChaosError",
    "ChaosOptions",
    "ChaosResult",
    "Fault",
    "exit_code",
    "parse_faults",
    "render_table",
    "run_chaos",
    "write_png",
]
