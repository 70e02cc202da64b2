"""The CLI commands and the benchmark, end to end but small."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from userstream.cli import app
from userstream.source import FaultConfig, UserGenerator, serve_in_thread
from userstream.source.bench import TARGET_USERS_PER_S, run_bench

runner = CliRunner()


def test_source_fetch_prints_rows() -> None:
    with serve_in_thread(generator=UserGenerator()) as url:
        result = runner.invoke(
            app, ["source", "fetch", "--url", url, "--results", "3", "--seed", "cli", "--output", "rows"]
        )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 3
    assert set(rows[0]) >= {"id", "first_name", "address", "post_code", "picture", "fetched_at"}


def test_bench_figures_small() -> None:
    figures = run_bench(pages=1, results=200)
    assert [f.name.split(" ")[0] for f in figures] == ["generated", "served", "client"]
    for f in figures:
        assert f.users == 200 and f.rate > 0 and f.ratio == pytest.approx(f.rate / TARGET_USERS_PER_S)


def test_fault_config_validation() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        FaultConfig(error_rate=1.5)
    with pytest.raises(ValueError, match="must not exceed 1"):
        FaultConfig(error_rate=0.6, empty_rate=0.6)
    assert not FaultConfig().enabled
    mixed = FaultConfig.mixed(0.2)
    assert mixed.enabled and mixed.response_fault_rate == pytest.approx(0.2)
    assert "error_rate=0.05" in mixed.describe()


def test_serve_help_lists_fault_options() -> None:
    result = runner.invoke(app, ["source", "serve", "--help"])
    assert result.exit_code == 0
    for option in (
        "--error-rate",
        "--rate-limit-rate",
        "--retry-after",
        "--empty-rate",
        "--malformed-rate",
        "--bad-record-rate",
        "--latency",
    ):
        assert option in result.stdout


def test_taken_port_is_a_clear_error() -> None:
    from userstream.errors import PortInUseError
    from userstream.source.server import bind_socket

    first = bind_socket("127.0.0.1", 0)
    try:
        with pytest.raises(PortInUseError) as info:
            bind_socket("127.0.0.1", first.getsockname()[1])
        assert info.value.fix and "--port" in info.value.fix
    finally:
        first.close()
