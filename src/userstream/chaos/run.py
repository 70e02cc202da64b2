"""`userstream chaos`: the pipeline at a steady rate from a faulty source, faults injected one after another,
and how long each took to heal on its own; then ingest stops, the pipeline drains and the audit runs.

The load is the real `make run` path (:class:`DemoProcess`); this process only serves the faulty source,
samples the pipeline from outside (:class:`Sampler`), injects the faults and measures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from userstream.chaos.demo import DemoProcess, demo_env, running_with_other_env
from userstream.chaos.faults import FAULTS, ChaosError, Fault, Injection, Kind, inject, is_back, repair, resume
from userstream.chaos.report import AuditFigures, ChaosResult, FaultRun, figures, write_png
from userstream.chaos.resources import snapshot, soak_growth
from userstream.chaos.timeline import PipelineProbe, Sampler, UserRow, WarmupCheck, caught_up, warmup_verdict
from userstream.config import Settings
from userstream.monitor.audit import wait_until_drained
from userstream.pipeline import stop_flow
from userstream.runtime.base import Reporter, SilentReporter
from userstream.runtime.stack import Stack
from userstream.source import FaultConfig, serve_in_thread


@dataclass(frozen=True)
class ChaosOptions:
    rate: float = 500.0
    repeat: int = 2
    pause_s: float = 45.0  # how long a freeze lasts
    faults: tuple[Fault, ...] = FAULTS
    warmup_s: float = 60.0  # at the rate without faults, to check the machine sustains it (0: no check)
    soak_s: float = 0.0  # after the faults, keep running until this long after the warm-up
    memory_settle_s: float = 900.0  # a soak's memory is judged from this long after its start (heaps and caches warm)
    sample_every_s: float = 60.0  # a soak's memory and disk samples
    source_fault_rate: float = 0.1  # FaultConfig.mixed of the bundled source
    latency_bound_s: float = 10.0  # "caught up": users stored within this
    recover_timeout_s: float = 300.0  # per fault: healthy and flowing again within this, else repaired
    catchup_timeout_s: float = 180.0  # per fault: backlog drained within this
    settle_s: float = 5.0  # between a fault caught up and the next one
    start_timeout_s: float = 600.0  # `up --demo` to the first user in Cassandra
    drain_timeout_s: float = 600.0
    budget_s: float | None = None  # faults not started this long after the start are skipped (tests)
    min_rate: float = 50.0
    rate_attempts: int = 3
    log_path: Path | None = None  # the demo's output; default logs/chaos-demo.log of the data dir
    json_path: Path | None = None
    png_path: Path | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.repeat < 1 or self.pause_s < 0 or self.warmup_s < 0 or self.soak_s < 0:
            raise ChaosError("chaos needs rate > 0, repeat >= 1 and pause, warm-up, soak >= 0")


def run_chaos(settings: Settings, options: ChaosOptions, reporter: Reporter | None = None) -> ChaosResult:
    """Run it all; writes ``options.json_path`` / ``png_path`` when set. Needs the stack's ports free or the
    stack of this data dir (stopped first when it runs with other settings)."""
    reporter = reporter or SilentReporter()
    config = FaultConfig.mixed(options.source_fault_rate)
    result = ChaosResult(options.rate, options.rate, time.time(), config.describe())
    ends_at = time.monotonic() + options.budget_s if options.budget_s else None
    log_path = options.log_path or settings.log_dir / "chaos-demo.log"
    with serve_in_thread(config) as url, Sampler(settings) as sampler:
        demo = DemoProcess(settings, url, log_path)
        try:
            try:
                _start(settings, options, demo, sampler, result, reporter)
                samples = [snapshot(settings)]
                measure_from = time.monotonic()
                _faults(settings, options, demo, sampler, result, reporter, ends_at)
                while (left := measure_from + options.soak_s - time.monotonic()) > 0:
                    demo.check()
                    time.sleep(min(left, 10.0))
                    if time.time() - samples[-1].t >= options.sample_every_s:
                        samples.append(snapshot(settings))
                samples.append(snapshot(settings))
                result.resources = soak_growth(samples, options.memory_settle_s if options.soak_s else 0.0)
            except ChaosError as exc:
                result.aborted = str(exc)
                reporter.step(f"aborted: {exc}")
            _drain_and_audit(settings, options, result, reporter)
        finally:
            result.samples = sampler.samples()
            reporter.step("stopping the demo (Ctrl-C)")
            code = demo.stop()
            if code not in (0, None):
                result.notes.append(f"the demo exited {code} on Ctrl-C: see {log_path}")
    if options.json_path is not None:
        options.json_path.parent.mkdir(parents=True, exist_ok=True)
        options.json_path.write_text(result.to_json())
    if options.png_path is not None:
        write_png(result, options.png_path)
    return result


def _start(
    settings: Settings, options: ChaosOptions, demo: DemoProcess, sampler: Sampler, result: ChaosResult,
    reporter: Reporter,
) -> None:  # fmt: skip
    """Start the demo and warm up; at a lower rate, restarted, while the machine does not keep up."""
    rate = options.rate
    for attempt in range(1, options.rate_attempts + 1):
        if running_with_other_env(settings, demo_env(settings, demo.source_url, rate)):
            reporter.step("the stack runs with other settings: stopping it, so that its programs start again "
                          "with the chaos source and rate")  # fmt: skip
            Stack(settings).down(reporter)
        started = time.time()
        demo.start(rate)
        result.rate = rate
        reporter.step(f"`{' '.join(demo.command)}` at {rate:.0f} records/s from {demo.source_url} "
                      f"({result.source_faults}); output in {demo.log_path}")  # fmt: skip
        _wait_first_row(settings, demo, started, options.start_timeout_s)
        reporter.step(f"records flow end to end ({time.time() - started:.0f}s)")
        if options.warmup_s <= 0:
            return
        # a restart on kept data first drains what waited (minutes at a cold JVM's pace): that is no measure
        # of the rate, so the warm-up starts once the pipeline has caught up
        deadline = time.monotonic() + options.start_timeout_s
        while time.monotonic() < deadline and caught_up(sampler.samples(), started, time.time(),
                                                        options.latency_bound_s) is None:  # fmt: skip
            demo.check()
            time.sleep(1.0)
        reporter.step(f"caught up ({time.time() - started:.0f}s); warming up {options.warmup_s:.0f}s")
        w0 = time.time()
        while time.time() < w0 + options.warmup_s:
            demo.check()
            time.sleep(1.0)
        check = warmup_verdict(sampler.samples(), rate, w0, time.time(), options.latency_bound_s)
        result.warmups.append(check)
        if check.sustained:
            reporter.step(f"{rate:.0f} records/s sustained: {check.detail}")
            return
        lower = _lower_rate(rate, check, options.min_rate)
        if lower is None or attempt == options.rate_attempts:
            result.notes.append(f"{rate:.0f} records/s not sustained ({check.detail}); the faults ran at it anyway")
            reporter.step(f"not sustained ({check.detail}); going on at {rate:.0f} records/s")
            return
        reporter.step(f"{rate:.0f} records/s not sustained ({check.detail}): restarting at {lower:.0f} records/s")
        demo.stop()
        rate = lower


def _lower_rate(rate: float, check: WarmupCheck, floor: float) -> float | None:
    """Below what was stored, and at least 30 % lower; None when already at the floor."""
    target = min(0.7 * rate, 0.9 * check.stored_per_s) if check.stored_per_s > 0 else 0.5 * rate
    lower = max(floor, round(target / 10) * 10)
    return lower if lower < rate else None


def _wait_first_row(settings: Settings, demo: DemoProcess, since: float, timeout_s: float) -> None:
    probe = PipelineProbe(settings)
    deadline = time.monotonic() + timeout_s
    # the first users fetched after the start (from page 0), not only the newest: while ingest runs, the
    # newest 100 (half a second of landing) are never yet stored when looked at
    first: list[UserRow] = []
    try:
        while time.monotonic() < deadline:
            demo.check()
            if _flowing_since(probe, since, 0, first) is not None:
                return
            time.sleep(2.0)
    finally:
        probe.close()
    raise ChaosError(f"no user reached Cassandra within {timeout_s:.0f}s of the start", fix=f"read {demo.log_path}")


def _flowing_since(probe: PipelineProbe, since: float, from_page: int | None, first: list[UserRow]) -> float | None:
    """The first WRITETIME among the first users fetched after ``since`` (from ``from_page`` on; kept in
    ``first`` once there are enough) and the newest ones; None while none is stored or a read fails."""
    try:
        if from_page is not None and len(first) < 200:
            first[:] = probe.fetched_between(since, time.time(), from_page, limit=200)
        users = [u for u in [*first, *probe.newest(100)] if u[1] > since]
        written = probe.writetimes([i for i, _ in users])
    except Exception:  # a stage down: not flowing (yet)
        return None
    return min(written.values()) if written else None


def _faults(
    settings: Settings, options: ChaosOptions, demo: DemoProcess, sampler: Sampler, result: ChaosResult,
    reporter: Reporter, ends_at: float | None,
) -> None:  # fmt: skip
    stack = Stack(settings)
    probe = PipelineProbe(settings)
    try:
        for repeat in range(1, options.repeat + 1):
            for fault in options.faults:
                if ends_at is not None and time.monotonic() > ends_at:
                    result.runs.append(FaultRun(fault.name, repeat, time.time(), error="skipped: time budget spent"))
                    continue
                demo.check()
                reporter.step(f"fault {fault.name} #{repeat}: {fault.description}")
                run = _one_fault(settings, options, fault, repeat, demo, sampler, stack, probe, reporter)
                result.runs.append(run)
                f = figures(run)
                reporter.step(f"  {fault.name} #{repeat}: recovered={f.recovered} healthy after {f.healthy_after_s}s, "
                              f"flowing after {f.flowing_after_s}s ({f.after_healthy_s}s after healthy), "
                              f"max latency {f.max_latency_s}s, caught up after {f.caught_up_after_s}s")  # fmt: skip
                time.sleep(options.settle_s)
    finally:
        probe.close()


def _one_fault(
    settings: Settings, options: ChaosOptions, fault: Fault, repeat: int, demo: DemoProcess, sampler: Sampler,
    stack: Stack, probe: PipelineProbe, reporter: Reporter,
) -> FaultRun:  # fmt: skip
    from_page = _from_page(probe, sampler)  # users landed from now on are at or after this page
    try:
        injection = inject(fault, stack.processes)
    except ChaosError as exc:
        return FaultRun(fault.name, repeat, time.time(), error=str(exc))
    run = FaultRun(fault.name, repeat, injection.at)
    try:
        if fault.kind is Kind.FREEZE:
            time.sleep(options.pause_s)
    finally:
        resume(injection)  # never leave a server stopped, whatever happens
    if fault.kind is Kind.FREEZE:
        run.resumed_at = time.time()
    first: list[UserRow] = []
    deadline = time.monotonic() + options.recover_timeout_s
    while time.monotonic() < deadline and (run.healthy_at is None or run.flowing_at is None):
        demo.check()
        if run.healthy_at is None and _safe_is_back(injection, stack):
            run.healthy_at = time.time()
        if run.flowing_at is None:
            run.flowing_at = _flowing_since(probe, run.injected_at, from_page, first)
        time.sleep(0.5)
    if run.healthy_at is None or run.flowing_at is None:
        reporter.step(f"  {fault.name} did not recover within {options.recover_timeout_s:.0f}s: restarting it")
        try:
            repair(fault, settings)
            run.repaired = True
        except Exception as exc:  # the next faults would measure a broken stack
            run.error = f"not recovered, and the restart failed: {exc}"
            raise ChaosError(run.error) from exc
    run.caught_up_at = _wait_caught_up(sampler, demo, run.injected_at, options)
    run.measured_at = time.time()
    try:
        run.users = _window_users(probe, run.injected_at, run.measured_at, from_page)
    except Exception as exc:
        reporter.step(f"  could not read the window's users: {exc}")
    return run


def _from_page(probe: PipelineProbe, sampler: Sampler) -> int:
    try:
        return probe.pages()
    except Exception:  # Postgres not answering right now: the sampler's last reading
        return next((s.pages for s in reversed(sampler.samples()) if s.pages is not None), 0)


def _safe_is_back(injection: Injection, stack: Stack) -> bool:
    try:
        return is_back(injection, stack.processes, stack)
    except Exception:  # a probe that fails is a service not back yet
        return False


def _wait_caught_up(sampler: Sampler, demo: DemoProcess, since: float, options: ChaosOptions) -> float | None:
    deadline = time.monotonic() + options.catchup_timeout_s
    while time.monotonic() < deadline:
        demo.check()
        at = caught_up(sampler.samples(), since, time.time(), options.latency_bound_s)
        if at is not None:
            return at
        time.sleep(1.0)
    return None


def _window_users(
    probe: PipelineProbe, t0: float, t1: float, from_page: int, chunk: int = 2000
) -> list[tuple[float, float | None]]:
    """(fetched_at, WRITETIME or None) of every user fetched in (t0, t1]: read once, after the fault."""
    users = probe.fetched_between(t0, t1, from_page)
    out: list[tuple[float, float | None]] = []
    for i in range(0, len(users), chunk):
        part = users[i : i + chunk]
        for attempt in range(3):
            try:
                written = probe.writetimes([u for u, _ in part])
                break
            except Exception:
                if attempt == 2:
                    raise
                time.sleep(2.0)
        out += [(fetched, written.get(u)) for u, fetched in part]
    return out


def _drain_and_audit(settings: Settings, options: ChaosOptions, result: ChaosResult, reporter: Reporter) -> None:
    reporter.step("stopping ingest (stop_flow), then draining and auditing")
    try:
        stop_flow(settings)
    except Exception as exc:
        result.notes.append(f"stop_flow failed: {exc}")
    try:
        report = wait_until_drained(settings, timeout_s=options.drain_timeout_s, grace_s=0.0)
    except Exception as exc:
        result.audit_error = f"{type(exc).__name__}: {exc}"
        return
    result.audit = AuditFigures.from_report(report)
    reporter.step(report.summary())


__all__ = ["ChaosOptions", "run_chaos"]
