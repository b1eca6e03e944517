"""The product as an admin runs it: a real Prefect server on loopback, `prefect deploy` from
prefect.yaml in a copy of the checkout, a process worker, and the daily tick triggered as a
deployment run for the example region.

Marked ``server`` (skip locally with ``-m "not server"``; CI runs it). It starts three
processes and takes about a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest
from conftest import EXAMPLE, ROOT

from hytetu import db, phases

pytestmark = [pytest.mark.server, pytest.mark.timeout(240)]

BIN = Path(sys.executable).parent
TIMEOUT = 120  # seconds for each wait; a slow shared CI machine needs the margin


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process and everything it started (its own process group)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


class Stack:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = _free_port()
        self.api = f"http://127.0.0.1:{self.port}/api"
        self.procs: list[subprocess.Popen] = []
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "HYTETU_"))
        }
        self.env.update(
            PREFECT_HOME=str(tmp / "prefect-home"),
            PREFECT_API_URL=self.api,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{tmp / 'prefect.db'}",
            PREFECT_SERVER_API_HOST="127.0.0.1",
            PREFECT_SERVER_API_PORT=str(self.port),
            PREFECT_SERVER_UI_ENABLED="false",
            PREFECT_WORKER_QUERY_SECONDS="1",
            PREFECT_LOGGING_LEVEL="INFO",
        )

    def start(self, name: str, args: list[str], env: dict[str, str], cwd: Path) -> None:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        self.procs.append(
            subprocess.Popen(
                args,
                env=env,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def run(self, args: list[str], cwd: Path) -> str:
        done = subprocess.run(
            args, env=self.env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT
        )
        assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            assert self.procs[0].poll() is None, self.log("server")
            try:
                with urllib.request.urlopen(f"{self.api}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"the Prefect server did not start\n{self.log('server')}")

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        for proc in reversed(self.procs):
            _stop(proc)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path)
    try:
        yield s
    finally:
        s.stop()


def _clean_checkout(target: Path) -> Path:
    """What `git clone` gives: the sources, without the venv, caches and local output."""
    shutil.copytree(
        ROOT,
        target,
        ignore=shutil.ignore_patterns(
            ".venv",
            ".git",
            "__pycache__",
            "*.egg-info",
            "hytetu-out",
            "hytetu-demo",
            "*.db",
            ".pytest_cache",
            ".ruff_cache",
            ".mypy_cache",
            "bench",
        ),
    )
    return target


async def _run_tick(api: str, as_of: str) -> tuple:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with PrefectClient(api=api) as client:
        deployments = await client.read_deployments()
        tick = await client.read_deployment_by_name("annual-cycle/daily-tick")
        run = await client.create_flow_run_from_deployment(tick.id, parameters={"as_of": as_of})
        deadline = time.monotonic() + TIMEOUT
        while True:
            run = await client.read_flow_run(run.id)
            if run.state is not None and run.state.is_final():
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"the tick did not finish: {run.state}")
            await asyncio.sleep(1)
        children = await client.read_flow_runs()
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[r.id for r in children])
            )
        )
        return deployments, tick, run, children, artifacts


def test_deploy_and_run_the_daily_tick_on_a_real_server(stack: Stack, tmp_path: Path) -> None:
    checkout = _clean_checkout(tmp_path / "checkout")
    stack.start(
        "server",
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(stack.port)],
        stack.env,
        tmp_path,
    )
    stack.wait_healthy()

    stack.run(
        [str(BIN / "prefect"), "work-pool", "create", "hytetu", "--type", "process"], checkout
    )
    stack.run([str(BIN / "prefect"), "deploy", "--all", "--no-prompt"], checkout)

    # The application DB with the example loaded, as `hytetu load` would leave it.
    url = f"sqlite:///{tmp_path / 'hytetu.db'}"
    config = tmp_path / "config"
    shutil.copytree(EXAMPLE, config)
    phases.load(config, url)
    db.dispose(url)
    out = tmp_path / "out"
    worker_env = stack.env | {"HYTETU_DATABASE_URL": url, "HYTETU_OUT": str(out)}
    stack.start(
        "worker",
        [str(BIN / "prefect"), "worker", "start", "--pool", "hytetu", "--type", "process"],
        worker_env,
        tmp_path,
    )

    deployments, tick, run, children, artifacts = asyncio.run(
        _run_tick(stack.api, "2025-10-02T07:00:00+03:00")
    )
    assert run.state.is_completed(), f"{run.state.name}: {run.state.message}\n{stack.log('worker')}"

    # prefect.yaml: the tick on a daily cron in Helsinki, one deployment per phase.
    names = {d.name for d in deployments}
    assert {"daily-tick", "load-config", "send-invitations", "dispatch-memos"} <= names
    assert len(deployments) >= 11  # the tick and one per phase
    schedule = tick.schedules[0].schedule
    assert (schedule.cron, schedule.timezone) == ("0 7 * * *", "Europe/Helsinki")
    assert tick.work_pool_name == "hytetu"
    assert (
        "region's time zone" in tick.parameter_openapi_schema["properties"]["as_of"]["description"]
    )
    # The pull step defaulted to the checkout `prefect deploy` ran in.
    assert str(checkout) in str(tick.pull_steps)

    # The tick ran the invitations as a sub-flow, and both left artifacts.
    assert {r.name for r in children} >= {run.name}
    by_kind: dict[str, list] = {}
    for a in artifacts:
        by_kind.setdefault(a.type, []).append(a)
    markdown = "\n".join(a.data for a in by_kind["markdown"])
    assert "Päivittäinen ajo / Daily tick" in markdown and "Kutsut / Invitations" in markdown
    table = by_kind["table"][0].data
    assert "kirjaamo" in table or ".example" in table
    assert "Kutsu" in table  # the subjects

    emls = sorted((out / "outbox").glob("*.eml"))
    assert emls, stack.log("worker")
    msg = email.message_from_bytes(emls[0].read_bytes(), policy=policy.default)
    assert msg["To"].addresses[0].domain.endswith(".example")
    assert msg["Subject"].startswith("Kutsu")
    assert (out / "calendars").is_dir()
