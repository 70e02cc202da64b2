"""What each package exports is its public API: a change here is a change users see, so it is pinned."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "userstream": [
        "ConfigError", "InstallError", "PortInUseError", "ServiceError", "Settings", "SourceError",
        "UserstreamError", "__version__", "get_settings",
    ],
    "userstream.source": [
        "AcceptedUser", "DEFAULT_ANCHOR", "FaultConfig", "PageOutOfRange", "PageResult", "PasswordSpec",
        "QuotaPacer", "QuotaWaitCancelled", "RejectedRecord", "ServerLimits", "SourceClient", "UserGenerator",
        "serve", "serve_in_thread",
    ],
    "userstream.ingest": [
        "Backpressure", "IngestReport", "LandResult", "LandedUser", "PageSource", "RateLimiter", "Reject", "ingest",
        "ingest_window", "land_batch",
    ],
    "userstream.cdc": [
        "CONNECTOR_NAME", "SchemaIncompatibleError", "connector_config", "connector_status", "ensure_connector",
        "ensure_subject", "ensure_topics", "register_value_schema",
    ],
    "userstream.stream": ["ensure_job_running", "job_paths", "job_status", "stop_job"],
    "userstream.store": ["apply_cassandra_schema", "apply_postgres_schema"],
    "userstream.monitor": [
        "Collector", "PipelineSnapshot", "StageStat", "collect_snapshot", "create_app", "dashboard_token",
        "dashboard_url", "render_metrics", "run_live", "serve",
    ],
    "userstream.coldstart": ["FirstRow", "bench_first_row"],
    "userstream.chaos": [
        "ChaosError", "ChaosOptions", "ChaosResult", "FAULTS", "FAULT_NAMES", "Fault", "exit_code", "parse_faults",
        "render_table", "run_chaos", "write_png",
    ],
}  # fmt: skip


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_exports_are_pinned_and_importable(module: str) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(PUBLIC[module])
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name} is exported but missing"
