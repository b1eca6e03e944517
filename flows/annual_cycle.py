"""The daily tick: look at the cycle and run, in order, the phases that are due."""

from __future__ import annotations

from datetime import datetime

from prefect import flow

from flows.compile import compile_findings
from flows.dispatch import dispatch_memos
from flows.feedback_window import (
    close_feedback_window,
    open_feedback_window,
    remind_feedback_window,
)
from flows.invitations import send_invitations
from flows.render import render_memos
from flows.session_notes import import_session_notes
from hytetu.phases import default_out_dir, resolve_as_of
from tasks import phases


@flow(name="annual-cycle", log_prints=True)
def annual_cycle(as_of: datetime | None = None, out_dir: str | None = None) -> list[str]:
    """Run what is due ``as_of`` (default: now): invitations, the feedback window, notes,
    compilation, rendering and dispatch of approved memos. Running it twice does nothing
    the second time; after downtime it catches up in order."""
    as_of = resolve_as_of(as_of)
    out_dir = out_dir or default_out_dir()
    due = phases.due_phases(as_of)
    for phase in due:
        if phase == "invitations":
            send_invitations(as_of=as_of, out_dir=out_dir)
        elif phase == "open_feedback":
            open_feedback_window(as_of=as_of, out_dir=out_dir)
        elif phase == "remind_feedback":
            remind_feedback_window(as_of=as_of, out_dir=out_dir)
        elif phase == "import_notes":
            import_session_notes(as_of=as_of)
        elif phase == "close_feedback":
            close_feedback_window(as_of=as_of, out_dir=out_dir)
        elif phase == "compile":
            compile_findings()
        elif phase == "render":
            render_memos(out_dir=out_dir)
        elif phase == "dispatch":
            dispatch_memos(as_of=as_of, out_dir=out_dir)
    if not due:
        print(f"{as_of:%Y-%m-%d %H:%M}: nothing is due")
    return due
