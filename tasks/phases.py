"""One task per phase step. The work is in ``hytetu.phases``; I/O tasks retry.

``region`` is the region's key; None means the only region in the database.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect import task

from hytetu import phases


@task(name="load-config")
def load_config(config: str) -> dict:
    return phases.load(config, actor="prefect").as_dict()


@task(name="due-phases")
def due_phases(as_of: datetime, region: str | None = None) -> list[str]:
    return phases.due_phases(as_of, region=region)


@task(name="send-invitations", retries=2, retry_delay_seconds=30)
def send_invitations(as_of: datetime, out_dir: str, region: str | None = None) -> dict:
    return phases.run_invitations(as_of, Path(out_dir), region=region).as_dict()


@task(name="feedback-window", retries=2, retry_delay_seconds=30)
def feedback_step(step: str, as_of: datetime, out_dir: str, region: str | None = None) -> dict:
    return phases.run_feedback_step(step, as_of, Path(out_dir), region=region).as_dict()


@task(name="import-feedback")
def import_feedback(as_of: datetime, region: str | None = None) -> dict:
    return phases.run_import_feedback(as_of, region=region).as_dict()


@task(name="import-session-notes")
def import_notes(as_of: datetime, region: str | None = None) -> dict:
    return phases.run_import_notes(as_of, region=region).as_dict()


@task(name="compile-findings")
def compile_findings(region: str | None = None) -> dict:
    return phases.run_compile(region=region).as_dict()


@task(name="render-memos")
def render_memos(out_dir: str, region: str | None = None) -> dict:
    return phases.run_render(Path(out_dir), region=region).as_dict()


@task(name="dispatch-memos", retries=2, retry_delay_seconds=60)
def dispatch_memos(as_of: datetime, out_dir: str, region: str | None = None) -> dict:
    return phases.run_dispatch(as_of, Path(out_dir), region=region).as_dict()


# No retries: an unread mailbox is read again on the next tick, and the tick waits for none.
@task(name="read-mailbox")
def read_mailbox(as_of: datetime, out_dir: str, region: str | None = None) -> dict:
    return phases.run_read_mailbox(as_of, Path(out_dir), region=region).as_dict()
