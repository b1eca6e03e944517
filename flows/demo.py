"""The main job: the yearly cycles of an example region in simulated time.

For each config folder in turn (by default the Central Finland example's 2025 and 2026,
the second made with ``hytetu cycle new``), in one database: loads it, runs the daily tick
(a real Prefect flow run) on each day something is due, approves the rendered memos as a
simulated coordinator, and runs the tick once more to dispatch them. The second year's
invitations and memos so show the follow-up of the first.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hytetu import db, memos, phases, render
from hytetu.findings import latest_compilation
from hytetu.simulate import tick_times, write_replies
from hytetu.state import cycle_view


def run_demo(config: Path, out: Path, echo: Callable[[str], None] = print) -> dict:
    """One config folder's year; see ``run_demos``."""
    return run_demos([config], out, echo)[0]


def run_demos(configs: list[Path], out: Path, echo: Callable[[str], None] = print) -> list[dict]:
    """Each config folder's year in turn, in one database and one Prefect API; one summary
    per folder."""
    # Prefect's API server boots (3 s) in its own process while this one loads the config.
    server = None if _api_configured() else TemporaryApi.start()
    try:
        return [_run_demo(config, out, echo, server) for config in configs]
    finally:
        if server is not None:
            server.stop()


def _api_configured() -> bool:
    """Whether PREFECT_API_URL is set (the environment, or Prefect's settings once Prefect
    is imported, as under a test harness); a profile's is seen only after the import."""
    if os.environ.get("PREFECT_API_URL"):
        return True
    if "prefect.settings" in sys.modules:
        from prefect.settings import PREFECT_API_URL

        return bool(PREFECT_API_URL.value())
    return False


#: Settings for a Prefect API server that one process uses and nobody watches live (the
#: demo's, the test suite's). The services that record task runs and events from the
#: client's event stream write to SQLite beside the API's own writes; the API then answers
#: "database is locked" with a 503 and the client retries after 2 s, about once in ten
#: sub-flow runs (two years of the demo: 75 s instead of 52). Without them the flow runs,
#: their states, logs and artifacts are kept; task runs and events are not.
LEAN_SERVER_ENV = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


class TemporaryApi:
    """Prefect's API for one demo: the server Prefect would start itself when no
    PREFECT_API_URL is set (``SubprocessASGIServer``, the same command and settings), but
    launched first thing, before this process imports Prefect, so that its start-up runs
    beside the config load instead of before the first flow run."""

    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process, self.port = process, port

    @classmethod
    def start(cls) -> TemporaryApi | None:
        spec = importlib.util.find_spec("prefect")
        if spec is None or spec.origin is None:
            return None
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        command = [sys.executable, "-m", "uvicorn", "--app-dir"]
        command += [str(Path(spec.origin).parent.parent), "--factory"]
        command += ["prefect.server.api.server:create_app", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--log-level", "error", "--lifespan", "on"]
        env = os.environ | {
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",  # as Prefect's own: fewer services
            "PREFECT__SERVER_FINAL": "1",
            **LEAN_SERVER_ENV,
        }
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        return cls(process, port)

    def wait(self, timeout: float = 120.0) -> str | None:
        """The API's URL once it answers; None if it did not start (then Prefect starts
        its own on the first flow run)."""
        import httpx

        url = f"http://127.0.0.1:{self.port}/api"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _run_demo(
    config: Path, out: Path, echo: Callable[[str], None], server: TemporaryApi | None
) -> dict:
    render.warm_up()  # the PDF workers load WeasyPrint meanwhile, ready for the render
    url = db.database_url()
    report = phases.load(config, url, actor="demo")
    echo(f"Loaded {config} into {db.display_url(url)} ({report.did['changes']} changes)")
    for warning in report.warnings:
        echo(f"  warning: {warning}")
    with db.session_scope(url) as s:
        year = s.scalar(select(db.Cycle.year).filter_by(config_folder=str(Path(config).resolve())))
        ticks = tick_times(cycle_view(s, year=year))

    from prefect.settings import (  # Prefect is imported only when running
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    # Heartbeats detect crashed runs on workers; in one in-process run they only add a
    # second of waiting to the end of every flow run.
    updates: dict[Any, Any] = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    if server is not None and not PREFECT_API_URL.value():
        api = server.wait()
        if api is not None:
            updates[PREFECT_API_URL] = api
    with temporary_settings(updates=updates):
        return _simulate(url, out, ticks, echo, year)


def _simulate(
    url: str, out: Path, ticks: list[datetime], echo: Callable[[str], None], year: int | None
) -> dict:
    """The year of the cycle ``year`` (the tick acts on the newest cycle: load the years
    in order)."""
    from flows.annual_cycle import annual_cycle

    for at in ticks:
        due = annual_cycle(as_of=at.isoformat(), out_dir=str(out))
        echo(f"{at:%Y-%m-%d}: {', '.join(due) if due else 'nothing due'}")
        write_replies(url, out, at)  # the mailbox answers; the next tick reads it
    with db.session_scope(url) as s:
        view = cycle_view(s, year=year)
        approve_at = ticks[-1] + timedelta(days=1)
        # The answer the review-memos flow would get from the coordinator's form, given
        # directly: the demo must not pause.
        drafts = memos.apply_review(
            view,
            [],
            actor="demo: simulated coordinator",
            approve_all=True,
            comment="approved in the demo",
            at=approve_at,
        )
    echo(f"{approve_at:%Y-%m-%d}: {len(drafts)} memos approved (simulated coordinator)")
    dispatch_at = approve_at + timedelta(hours=1)
    due = annual_cycle(as_of=dispatch_at.isoformat(), out_dir=str(out))
    echo(f"{dispatch_at:%Y-%m-%d}: {', '.join(due) if due else 'nothing due'}")
    if write_replies(url, out, dispatch_at):  # bounces and receipts: read the next morning
        replies_at = dispatch_at + timedelta(days=1)
        due = annual_cycle(as_of=replies_at.isoformat(), out_dir=str(out))
        echo(f"{replies_at:%Y-%m-%d}: read the mailbox, {', '.join(due) or 'nothing else due'}")
    return summary(url, out, year)


def summary(url: str, out: Path, year: int | None = None) -> dict:
    from sqlalchemy import func

    with db.session_scope(url) as s:
        view = cycle_view(s, year=year)
        by_purpose = dict(
            s.execute(
                # sent, and those that left and bounced back (mailbox.bounced lists them)
                select(db.OutgoingMessage.purpose, func.count())
                .filter_by(cycle_id=view.cycle.id)
                .where(db.OutgoingMessage.state.in_(("sent", "bounced")))
                .group_by(db.OutgoingMessage.purpose)
            ).all()
        )
        failed = s.scalar(
            select(func.count())
            .select_from(db.OutgoingMessage)
            .filter_by(cycle_id=view.cycle.id, state="failed")
        )
        findings = s.scalar(
            select(func.count())
            .select_from(db.Finding)
            .join(db.MeetingSession)
            .where(db.MeetingSession.cycle_id == view.cycle.id)
        )
        responses = s.execute(
            select(db.FeedbackResponse.late, func.count())
            .filter_by(cycle_id=view.cycle.id)
            .group_by(db.FeedbackResponse.late)
        ).all()
        compiled = latest_compilation(view)
        cells = compiled.result["cells"] if compiled else []
        themes = [t for c in cells for t in c["themes"]]
        return {
            "year": view.cycle.year,
            "compilation": {
                "themes": len(themes),
                "common": sum(1 for t in themes if t["common"]),
                "suggestions": sum(len(c.get("suggestions", [])) for c in cells),
            },
            "sessions": len(view.sessions()),
            "findings": findings,
            "feedback": {"late" if late else "on_time": n for late, n in responses},
            "messages": by_purpose,
            "failed": failed,
            "memos": [v.filename for v in memos.latest_versions(view)],
            "mailbox": mailbox_summary(s, view),
            "out": str(out),
        }


def mailbox_summary(s: Any, view: Any) -> dict:
    """What came back: messages read per kind, attendance, bounced letters, receipts."""
    from hytetu import dispatch, mailbox

    rows = mailbox.attendance(s, view.cycle.id)
    total = {k: sum(r[k] for r in rows) for k in ("accepted", "tentative", "declined")}
    total["no_answer"] = sum(r["no_answer"] for r in rows)
    letters = dispatch.report_rows(s, view.cycle.id)
    return {
        "read": mailbox.counts(s, cycle_id=view.cycle.id),
        "attendance": total,
        "bounced": [f"{r['document']}: {r['error']}" for r in letters if r["state"] == "bounced"],
        "receipts": [
            f"{r['recipient']}: {r['registry_reference'] or '(no diary number)'}"
            for r in letters
            if r["receipt_at"]
        ],
    }
