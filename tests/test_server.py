"""The product as an admin runs it: a real Prefect server on loopback, `prefect deploy` from
prefect.yaml in a copy of the checkout, a process worker, and the daily tick triggered as a
deployment run for the example region.

Marked ``server`` (skip locally with ``-m "not server"``; CI runs it). It starts three
processes and takes about a minute.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
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
from sqlalchemy import select
from test_webform import browser as browser  # a fixture

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


# The shortest deployment concurrency lease the server allows: a review must outwait it.
LEASE_SECONDS = 30


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    """A Prefect server (with its UI) on loopback, the process work pool, and prefect.yaml
    deployed from a clean copy of the checkout; shared by the module's tests."""
    tmp = tmp_path_factory.mktemp("stack")
    s = Stack(tmp)
    s.env.update(
        PREFECT_SERVER_UI_ENABLED="true",
        PREFECT_UI_API_URL=s.api,
        PREFECT_SERVER_CONCURRENCY_INITIAL_DEPLOYMENT_LEASE_DURATION=str(LEASE_SECONDS),
    )
    checkout = _clean_checkout(tmp / "checkout")
    try:
        s.start(
            "server",
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(s.port)],
            s.env,
            tmp,
        )
        s.wait_healthy()
        s.run(
            [str(BIN / "prefect"), "work-pool", "create", "hytetu", "--type", "process"], checkout
        )
        s.run([str(BIN / "prefect"), "deploy", "--all", "--no-prompt"], checkout)
        yield s, checkout
    finally:
        s.stop()


@contextlib.contextmanager
def worker(stack: Stack, env: dict[str, str]) -> Iterator[None]:
    """A process worker of the pool, with the application's environment."""
    stack.start(
        "worker",
        [str(BIN / "prefect"), "worker", "start", "--pool", "hytetu", "--type", "process"],
        stack.env | env,
        stack.tmp,
    )
    try:
        yield
    finally:
        _stop(stack.procs.pop())


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
        tick = await client.read_deployment_by_name("annual-cycle/00-daily-tick")
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


def test_deploy_and_run_the_daily_tick_on_a_real_server(
    deployed: tuple[Stack, Path], tmp_path: Path
) -> None:
    stack, checkout = deployed
    # The application DB with the example loaded, as `hytetu load` would leave it.
    url = f"sqlite:///{tmp_path / 'hytetu.db'}"
    config = tmp_path / "config"
    shutil.copytree(EXAMPLE, config)
    phases.load(config, url)
    db.dispose(url)
    out = tmp_path / "out"
    with worker(stack, {"HYTETU_DATABASE_URL": url, "HYTETU_OUT": str(out)}):
        deployments, tick, run, children, artifacts = asyncio.run(
            _run_tick(stack.api, "2025-10-02T07:00:00+03:00")
        )
    assert run.state.is_completed(), f"{run.state.name}: {run.state.message}\n{stack.log('worker')}"

    # prefect.yaml: the tick on a daily cron in Helsinki, one deployment per phase.
    names = {d.name for d in deployments}
    assert {"00-daily-tick", "01-review-memos", "02-load-config", "11-dispatch-memos"} <= names
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


# --- the coordinator's approval ------------------------------------------------------------


async def _wait_for(api: str, run_id, done, what: str, timeout: float = TIMEOUT):
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api=api) as client:
        deadline = time.monotonic() + timeout
        while True:
            run = await client.read_flow_run(run_id)
            if run.state is not None and done(run.state):
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: the run is {run.state}")
            await asyncio.sleep(0.5)


async def _start_tick(api: str, as_of: str):
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api=api) as client:
        tick = await client.read_deployment_by_name("annual-cycle/00-daily-tick")
        return await client.create_flow_run_from_deployment(tick.id, parameters={"as_of": as_of})


async def _review_runs(api: str) -> list:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    async with PrefectClient(api=api) as client:
        return await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["review-memos"]))
        )


async def _deployment_slots(api: str, name: str) -> int:
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api=api) as client:
        deployment = await client.read_deployment_by_name(name)
        return deployment.global_concurrency_limit.active_slots


def _answer_in_the_ui(browser, base: str, run_id, choices: dict[int, tuple[str, str]]) -> None:
    """In Prefect's UI, as the coordinator does it: open the suspended run, press Resume,
    type a name, choose per memo (index in the form: (choice, comment)), submit."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(f"{base}/runs/flow-run/{run_id}")
    page.get_by_role("button", name="Resume").click()
    dialog = page.get_by_role("dialog")
    boxes = dialog.get_by_role("textbox")
    boxes.first.fill("Sanna Lahtinen")
    for index, (choice, comment) in choices.items():
        dialog.locator("button.p-select-button__control").nth(index).focus()
        page.keyboard.press("ArrowDown")
        page.locator(".p-select-option", has_text=choice).first.click()
        if comment:
            boxes.nth(1 + index).fill(comment)
    page.screenshot(path=str(SHOTS / "approval-form.png"))
    dialog.get_by_role("button", name="Submit").click()
    try:
        dialog.wait_for(state="detached", timeout=30_000)
    except PlaywrightTimeout:
        # Seen once on a loaded machine: the dialog stayed open with the form filled in.
        # Keep what it showed, press Submit once more (a run that was already resumed
        # refuses a second resume), and fail only if that does not close it either.
        page.screenshot(path=str(SHOTS / "approval-form-still-open.png"))
        dialog.get_by_role("button", name="Submit").click()
        dialog.wait_for(state="detached", timeout=TIMEOUT * 1000)
    page.close()


def _run(coroutine):
    """Await in a thread of its own: Playwright's sync API holds this thread's loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


SHOTS = Path(os.environ.get("HYTETU_SCREENSHOTS", "/tmp/hytetu-screenshots"))


def test_the_review_waits_past_the_lease_and_is_answered_in_the_ui(
    deployed: tuple[Stack, Path], own_year, browser, tmp_path: Path
) -> None:
    from hytetu import approval
    from hytetu.memos import drafts
    from hytetu.state import cycle_view

    stack, _ = deployed
    SHOTS.mkdir(parents=True, exist_ok=True)
    url, base = own_year
    _, items = approval.form_items(url)
    env = {
        "HYTETU_DATABASE_URL": url,
        "HYTETU_OUT": str(base / "out"),
        "HYTETU_REVIEW_URL": "https://hyte.example/koonti/",
    }
    with worker(stack, env):
        # The morning tick sees drafts waiting and starts the review itself.
        tick = _run(_start_tick(stack.api, "2025-12-20"))
        _run(_wait_for(stack.api, tick.id, lambda s: s.is_final(), "the tick"))
        (review,) = _run(_review_runs(stack.api))
        review = _run(
            _wait_for(stack.api, review.id, lambda s: s.is_paused() or s.is_final(), "review")
        )
        assert review.state.name == "Suspended", stack.log("worker")
        suspended_at = time.monotonic()
        assert review.parameters["as_of"] == "2025-12-20"
        # Suspended, it holds no process and no concurrency slot.
        assert _run(_deployment_slots(stack.api, "review-memos/01-review-memos")) == 0

        # The next morning's tick leaves it waiting rather than start a second form.
        again = _run(_start_tick(stack.api, "2025-12-21"))
        _run(_wait_for(stack.api, again.id, lambda s: s.is_final(), "the second tick"))
        assert [r.id for r in _run(_review_runs(stack.api))] == [review.id]

        # Past the lease time it still waits (a paused process lost its lease here).
        time.sleep(max(0.0, LEASE_SECONDS + 5 - (time.monotonic() - suspended_at)))
        review = _run(_wait_for(stack.api, review.id, lambda s: True, "review"))
        assert review.state.name == "Suspended", review.state

        index = {i.filename: n for n, i in enumerate(items)}
        jamsa, joutsa = (
            "2025-muistio-jamsa-keuruu-multia-petajavesi.pdf",
            "2025-muistio-joutsa-luhanka-toivakka.pdf",
        )
        _answer_in_the_ui(
            browser,
            f"http://127.0.0.1:{stack.port}",
            review.id,
            {index[jamsa]: ("hylkää", "Keuruun tiedot puuttuvat"), index[joutsa]: ("hyväksy", "")},
        )
        waited = time.monotonic() - suspended_at
        review = _run(_wait_for(stack.api, review.id, lambda s: s.is_final(), "resumed"))
    assert review.state.is_completed(), f"{review.state}\n{stack.log('worker')}"
    assert waited > LEASE_SECONDS
    assert "Lease not found" not in stack.log("worker")

    db.dispose(url)
    with db.session_scope(url) as s:
        view = cycle_view(s)
        by_name = {v.filename: v for v in drafts(view)}
        assert jamsa not in by_name and joutsa not in by_name and len(by_name) == 5
        decided = {
            v.filename: v
            for v in s.scalars(select(db.MemoVersion).where(db.MemoVersion.status != "draft"))
        }
    assert (decided[jamsa].status, decided[jamsa].comment) == (
        "rejected",
        "Keuruun tiedot puuttuvat",
    )
    assert (decided[joutsa].status, decided[joutsa].decided_by) == ("approved", "Sanna Lahtinen")
    # In a simulated year the decision is dated at the tick's morning, not the real clock.
    assert decided[joutsa].decided_at.date().isoformat() == "2025-12-20"
