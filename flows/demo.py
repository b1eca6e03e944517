"""The main job: the whole yearly cycle of an example region in simulated time.

Runs the daily tick (a real Prefect flow run) on each day something is due, approves the
rendered memos as a simulated coordinator, and runs the tick once more to dispatch them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from hytetu import db, memos, phases, render
from hytetu.simulate import tick_times
from hytetu.state import cycle_view


def run_demo(config: Path, out: Path, echo: Callable[[str], None] = print) -> dict:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    # Heartbeats detect crashed runs on workers; in one in-process run they only add a
    # second of waiting to the end of every flow run.
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        return _run_demo(config, out, echo)


def start_prefect_api() -> threading.Thread | None:
    """Start Prefect's temporary API server (when no PREFECT_API_URL is set) in the
    background: its start-up (seconds) overlaps with loading the config instead of
    delaying the first flow run. Join the thread before the first flow run."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return None

    def start() -> None:
        from prefect.server.api.server import SubprocessASGIServer  # a 2 s import

        SubprocessASGIServer().start()

    thread = threading.Thread(target=start, daemon=True)
    thread.start()
    return thread


def _run_demo(config: Path, out: Path, echo: Callable[[str], None]) -> dict:
    api = start_prefect_api()
    render.warm_up()  # the PDF workers load WeasyPrint meanwhile, ready for the render
    from flows.annual_cycle import annual_cycle  # Prefect is imported only when running

    url = db.database_url()
    report = phases.load(config, url, actor="demo")
    echo(f"Loaded {config} into {db.display_url(url)} ({report.did['changes']} changes)")
    for warning in report.warnings:
        echo(f"  warning: {warning}")
    with db.session_scope(url) as s:
        ticks = tick_times(cycle_view(s))
    if api is not None:
        api.join()  # if it failed, the first flow run starts the server itself
    for at in ticks:
        due = annual_cycle(as_of=at, out_dir=str(out))
        echo(f"{at:%Y-%m-%d}: {', '.join(due) if due else 'nothing due'}")
    with db.session_scope(url) as s:
        view = cycle_view(s)
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
    due = annual_cycle(as_of=dispatch_at, out_dir=str(out))
    echo(f"{dispatch_at:%Y-%m-%d}: {', '.join(due) if due else 'nothing due'}")
    return summary(url, out)


def summary(url: str, out: Path) -> dict:
    from sqlalchemy import func, select

    with db.session_scope(url) as s:
        view = cycle_view(s)
        by_purpose = dict(
            s.execute(
                select(db.OutgoingMessage.purpose, func.count())
                .filter_by(cycle_id=view.cycle.id, state="sent")
                .group_by(db.OutgoingMessage.purpose)
            ).all()
        )
        failed = s.scalar(
            select(func.count()).select_from(db.OutgoingMessage).filter_by(state="failed")
        )
        findings = s.scalar(select(func.count()).select_from(db.Finding))
        responses = s.execute(
            select(db.FeedbackResponse.late, func.count()).group_by(db.FeedbackResponse.late)
        ).all()
        return {
            "sessions": len(view.sessions()),
            "findings": findings,
            "feedback": {"late" if late else "on_time": n for late, n in responses},
            "messages": by_purpose,
            "failed": failed,
            "memos": [v.filename for v in memos.latest_versions(view)],
            "out": str(out),
        }
