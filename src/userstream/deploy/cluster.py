"""The compose cluster (deploy/compose.yaml) driven through podman-compose, and its nodes through podman.

Every call names the compose project, so a test's cluster and a user's never touch each other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from userstream.errors import ServiceError
from userstream.runtime.base import PROJECT_ROOT

COMPOSE_FILE = PROJECT_ROOT / "deploy" / "compose.yaml"
DEFAULT_PROJECT = "userstream"
SECRETS_MOUNT = "/run/userstream/secrets"
# node -> the service it runs (the compose file's `command: [run, SERVICE]`)
DATA_TIER = {
    **{f"kafka-{i}": "kafka" for i in (1, 2, 3)},
    **{f"cassandra-{i}": "cassandra" for i in (1, 2, 3)},
}


def compose_nodes(compose_file: Path = COMPOSE_FILE) -> dict[str, str]:
    """Every long-running node of the compose file -> the service it runs (`command: [run, SERVICE]`)."""
    services = yaml.safe_load(compose_file.read_text())["services"]
    return {name: spec["command"][1] for name, spec in services.items() if spec["command"][0] == "run"}


@dataclass
class ComposeCluster:
    project: str = DEFAULT_PROJECT
    image: str = "localhost/userstream:latest"
    compose_file: Path = COMPOSE_FILE
    env: dict[str, str] = field(default_factory=dict)

    # --- compose ---------------------------------------------------------------------------
    def _compose(self, *args: str, check: bool = True, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "podman_compose", "-p", self.project, "-f", str(self.compose_file), *args]
        env = {**os.environ, "USERSTREAM_IMAGE": self.image, **self.env}
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout_s)
        if check and proc.returncode != 0:
            raise ServiceError(
                f"podman-compose {' '.join(args)} failed:\n{(proc.stdout + proc.stderr)[-2000:]}",
                fix="see the output above; `userstream images build` first if the image is missing",
            )
        return proc

    def up(self, nodes: Sequence[str] = ()) -> None:
        self._compose("up", "-d", *nodes)

    def down(self, *, volumes: bool = False, grace_s: int = 90) -> None:
        """Stop every node (all at once: compose stops them one by one), then remove the containers and
        the network; ``volumes`` removes the named volumes too (the data goes)."""
        self.stop(grace_s)
        self._compose("down", *(["-v"] if volumes else []), "-t", str(grace_s), check=False)

    def stop(self, grace_s: int = 90) -> None:
        """SIGTERM to every running node at once, SIGKILL to those still running after ``grace_s``."""
        running = self.podman("ps", "-q", "--filter", f"label=io.podman.compose.project={self.project}").stdout
        if running.split():
            self.podman("stop", "-t", str(grace_s), *running.split(), check=False, timeout_s=grace_s + 120)

    # --- nodes -----------------------------------------------------------------------------
    def container(self, node: str) -> str:
        return f"{self.project}_{node}_1"

    @property
    def network(self) -> str:
        return f"{self.project}_default"

    @property
    def secrets_volume(self) -> str:
        return f"{self.project}_secrets"

    def podman(self, *args: str, check: bool = True, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout_s)
        if check and proc.returncode != 0:
            raise ServiceError(f"podman {' '.join(args[:3])} failed: {(proc.stdout + proc.stderr)[-1000:]}")
        return proc

    def attach(self, node: str, *argv: str) -> int:
        """Run ``argv`` in ``node`` on this terminal (the live view); returns its exit code."""
        tty = ["-t"] if sys.stdout.isatty() else []
        return subprocess.run(["podman", "exec", "-i", *tty, self.container(node), *argv], check=False).returncode

    def kill(self, node: str) -> None:
        """SIGKILL: the node is lost, not stopped (restart policies ignore a `podman kill`ed container)."""
        self.podman("kill", self.container(node))

    def start(self, node: str) -> None:
        self.podman("start", self.container(node))

    def running(self, node: str) -> bool:
        out = self.podman("inspect", "--format", "{{.State.Running}}", self.container(node), check=False)
        return out.stdout.strip() == "true"

    def health(self, node: str) -> tuple[bool, str]:
        """The node's own probe of its service (`userstream.deploy.probe health`), run inside it."""
        service = compose_nodes(self.compose_file).get(node, node)
        proc = self.podman(
            "exec", self.container(node), "python", "-m", "userstream.deploy.probe", "health", service, check=False
        )
        try:
            result = json.loads(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return False, (proc.stderr or proc.stdout).strip()[-300:]
        return bool(result["healthy"]), str(result["detail"])

    def wait_healthy(self, nodes: Sequence[str], timeout_s: float = 600) -> dict[str, float]:
        """Seconds until each node reported healthy; raises with every node's last detail on timeout."""
        t0 = time.monotonic()
        healthy: dict[str, float] = {}
        last: dict[str, str] = {}
        while time.monotonic() - t0 < timeout_s:
            for node in nodes:
                if node in healthy:
                    continue
                ok, detail = self.health(node)
                last[node] = detail
                if ok:
                    healthy[node] = time.monotonic() - t0
            if len(healthy) == len(nodes):
                return healthy
            time.sleep(3)
        pending = {n: last.get(n, "") for n in nodes if n not in healthy}
        raise ServiceError(f"cluster not healthy after {timeout_s:.0f} s: {pending}", fix="see `podman logs`")

    def diagnose(self, unhealthy: Mapping[str, str], log_lines: int = 30) -> str:
        """What an operator looks at first when the cluster does not deliver: each node's state, the
        :meth:`unhealthy` verdicts, then the last lines of each node's log (the one-shot bootstrap's too)."""
        parts = [self.podman("ps", "-a", "--filter", f"label=io.podman.compose.project={self.project}",
                             "--format", "{{.Names}} {{.Status}}", check=False).stdout]  # fmt: skip
        parts += [f"{node}: UNHEALTHY: {detail}" for node, detail in unhealthy.items()] or ["every node healthy"]
        for node in yaml.safe_load(self.compose_file.read_text())["services"]:
            logs = self.podman("logs", "--tail", str(log_lines), self.container(node), check=False)
            parts.append(f"\n--- {node}: last {log_lines} log lines ---\n{logs.stdout}{logs.stderr}")
        return "\n".join(parts)

    def unhealthy(self) -> dict[str, str]:
        """Each node that is not running or not healthy, with its detail; the bootstrap unless it ended well."""
        found = {}
        for node in compose_nodes(self.compose_file):
            ok, detail = self.health(node) if self.running(node) else (False, "not running")
            if not ok:
                found[node] = detail
        # the one-shot bootstrap: nothing flows until it has succeeded
        state = self.podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", self.container("bootstrap"),
                            check=False).stdout.strip()  # fmt: skip
        if state and state != "exited 0":
            found["bootstrap"] = state
        return found

    def client(self, *argv: str, env: dict[str, str] | None = None, timeout_s: float = 1200) -> str:
        """Run ``python -m userstream.deploy.probe ARGV`` in a fresh container on the cluster's network, with
        the install's secrets (a client of the cluster, apart from every node); returns its stdout."""
        settings_env = [f"--env={k}={v}" for k, v in {**client_env(self.compose_file), **(env or {})}.items()]
        proc = self.podman(
            "run", "--rm", f"--network={self.network}", f"--volume={self.secrets_volume}:{SECRETS_MOUNT}",
            *settings_env, "--entrypoint=python", self.image, "-m", "userstream.deploy.probe", *argv,
            timeout_s=timeout_s,
        )  # fmt: skip
        return proc.stdout

    def client_async(self, name: str, *argv: str) -> None:
        """As :meth:`client`, detached (``name``: its container, for :meth:`client_result`)."""
        settings_env = [f"--env={k}={v}" for k, v in client_env(self.compose_file).items()]
        self.podman("rm", "-f", "-v", name, check=False)
        self.podman(
            "run", "-d", f"--name={name}", f"--network={self.network}",
            f"--volume={self.secrets_volume}:{SECRETS_MOUNT}", *settings_env, "--entrypoint=python", self.image,
            "-m", "userstream.deploy.probe", *argv,
        )  # fmt: skip

    def client_result(self, name: str, timeout_s: float = 600) -> str:
        code = self.podman("wait", name, timeout_s=timeout_s).stdout.strip()
        out = self.podman("logs", name, check=False)
        self.podman("rm", "-f", "-v", name, check=False)
        if code != "0":
            raise ServiceError(f"client {name} exited {code}: {(out.stdout + out.stderr)[-2000:]}")
        return out.stdout


def client_env(compose_file: Path = COMPOSE_FILE) -> dict[str, str]:
    """What a client of the cluster is told: the settings every pipeline node gets (the compose file's
    `dashboard` node's, minus its own name; interpolated values are left to the node's defaults)."""
    env = yaml.safe_load(compose_file.read_text())["services"]["dashboard"]["environment"]
    return {k: str(v) for k, v in env.items() if k != "USERSTREAM_ADVERTISED_HOST" and "${" not in str(v)}


__all__ = ["COMPOSE_FILE", "DATA_TIER", "ComposeCluster", "client_env", "compose_nodes"]
