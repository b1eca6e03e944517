"""The daily tick: look at the cycle and run, in order, the phases that are due.

Each phase is its own flow (and deployment); ``PHASE_FLOWS`` maps the phase names of
``hytetu.phases.due_phases`` to them. A new phase is one entry there, in the order of
``hytetu.phases.PHASES``.

After downtime one late tick catches up in order, because every phase decides from the
database what is still undone ``as_of``: notes of the sessions held meanwhile are imported,
the feedback window is opened (and closed, if its deadline has passed), compiled and
rendered. Invitations and reminders for sessions that have already ended are not sent
(there is nothing left to attend); those for sessions still ahead go out late. A reminder
is not sent once the window has closed.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import Flow, flow

from flows.compile import compile_findings
from flows.dispatch import dispatch_memos
from flows.feedback_import import import_feedback
from flows.feedback_window import (
    close_feedback_window,
    open_feedback_window,
    remind_feedback_window,
)
from flows.invitations import send_invitations
from flows.read_mailbox import read_and_report
from flows.render import render_memos
from flows.session_notes import import_session_notes
from hytetu.errors import HytetuError, StateError
from hytetu.localtime import LocalTime
from hytetu.phases import default_out_dir, region_keys, region_out, resolve_as_of
from tasks import phases, reporting, review

# phase (as ``due_phases`` names it) -> the flow that runs it; each flow takes the subset
# of (as_of, out_dir) it declares.
PHASE_FLOWS: dict[str, Flow[..., Any]] = {
    "invitations": send_invitations,
    "open_feedback": open_feedback_window,
    "remind_feedback": remind_feedback_window,
    "import_feedback": import_feedback,
    "import_notes": import_session_notes,
    "close_feedback": close_feedback_window,
    "compile": compile_findings,
    "render": render_memos,
    "dispatch": dispatch_memos,
}


@contextmanager
def transport_forced_to_file(dry_run: bool) -> Iterator[None]:
    """A dry run: every message goes to the file outbox, whatever region.yaml says."""
    if not dry_run:
        yield
        return
    before = os.environ.get("HYTETU_TRANSPORT")
    os.environ["HYTETU_TRANSPORT"] = "file"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HYTETU_TRANSPORT", None)
        else:
            os.environ["HYTETU_TRANSPORT"] = before


def run_phase_flow(phase: str, as_of: datetime, out_dir: str, region: str | None = None) -> Any:
    flow_ = PHASE_FLOWS[phase]
    accepted = inspect.signature(flow_.fn).parameters
    given = {"as_of": as_of, "out_dir": out_dir, "region": region}
    return flow_(**{k: v for k, v in given.items() if k in accepted})


def _read_mailbox(as_of: datetime, out_dir: str, region: str | None) -> dict[str, Any] | None:
    """The mailbox first, so that today's RSVPs and bounces count in today's phases. A
    mailbox that cannot be read fails only this step: its failure artifact names the
    cause, and the other phases still run. Returns the report when it read anything."""
    try:
        report = read_and_report(as_of, out_dir, region)
    except Exception as e:  # noqa: BLE001 - whatever the reader raised: this step only
        reporting.publish_failure("read_mailbox", e, region)
        print(f"{region + ': ' if region else ''}the mailbox was not read: {e}")
        return {"phase": "read_mailbox", "failed": [str(e)], "sent": 0}
    read = report.get("did", {}).get("read")
    return report if read or report.get("failed") else None


@flow(name="annual-cycle", log_prints=True)
def annual_cycle(
    as_of: LocalTime = None,
    out_dir: str | None = None,
    dry_run: bool = False,
    region: str | None = None,
) -> list[str]:
    """Run what is due ``as_of``: invitations, the feedback window, notes, compilation,
    rendering, the request for approval, and dispatch of approved memos. Running it twice
    does nothing the second time; after downtime it catches up in order.

    Args:
        as_of: The moment to act as of, in the region's time zone: a date means that
            day's 07:00 tick (2.10.2025 or 2025-10-02), a time that moment (2.10.2025 7.00
            or 2025-10-02 07:00). Empty means now. An explicit offset is kept.
        out_dir: The folder for calendars, memos and the file outbox. Empty means the
            worker's HYTETU_OUT (default hytetu-out, relative to the checkout). With
            several regions loaded, each region's files go to its own subfolder.
        dry_run: Send nothing for real: every message of this run goes to the file outbox
            (.eml files) whatever transport region.yaml chooses.
        region: The region's key (region.yaml). Empty means every region loaded, one after
            another; one region's failure does not stop the others.
    """
    out = out_dir or default_out_dir()
    regions = [region] if region else region_keys()
    with transport_forced_to_file(dry_run):
        if len(regions) <= 1:
            return _tick(as_of, out, dry_run, region)
        done: list[str] = []
        failed: list[str] = []
        for key in regions:
            try:
                due = _tick(as_of, str(region_out(Path(out), key, regions)), dry_run, key)
            except HytetuError as e:
                failed.append(f"{key}: {e}")
                continue
            done += [f"{key}: {phase}" for phase in due]
    if failed:
        raise StateError("the tick failed in " + "; ".join(failed))
    return done


def _tick(given: str | None, out_dir: str, dry_run: bool, region: str | None) -> list[str]:
    step = "tick"
    try:
        as_of = resolve_as_of(given, region=region)
        results: dict[str, Any] = {}
        mailbox = _read_mailbox(as_of, out_dir, region)
        if mailbox is not None:
            results["read_mailbox"] = mailbox
        due = phases.due_phases(as_of, region)
        for step in due:
            results[step] = run_phase_flow(step, as_of, out_dir, region)
    except HytetuError as e:
        # The reason in the error's own words (file, line, field), for the coordinator.
        reporting.publish_failure(step, e, region)
        raise
    reporting.publish_tick(as_of, results, dry_run, region)
    waiting = reporting.publish_approval_request(out_dir, region)
    where = f"{region}: " if region else ""
    if waiting:
        started = review.start_review(out_dir, region, given)
        print(f"{where}{waiting} memo versions wait for approval: {started}")
    if not due:
        print(f"{where}{as_of:%Y-%m-%d %H:%M}: nothing is due")
    return due
