"""One task per phase step. The work is in ``hytetu.phases``; I/O tasks retry."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect import task

from hytetu import phases


@task(name="load-config")
def load_config(config: str) -> dict:
    return phases.load(config, actor="prefect").as_dict()


@task(name="due-phases")
def due_phases(as_of: datetime) -> list[str]:
    return phases.due_phases(as_of)


@task(name="send-invitations", retries=2, retry_delay_seconds=30)
def send_invitations(as_of: datetime, out_dir: str) -> dict:
    return phases.run_invitations(as_of, Path(out_dir)).as_dict()


@task(name="feedback-window", retries=2, retry_delay_seconds=30)
def feedback_step(step: str, as_of: datetime, out_dir: str) -> dict:
    return phases.run_feedback_step(step, as_of, Path(out_dir)).as_dict()


@task(name="import-feedback")
def import_feedback(as_of: datetime) -> dict:
    return phases.run_import_feedback(as_of).as_dict()


@task(name="import-session-notes")
def import_notes(as_of: datetime) -> dict:
    return phases.run_import_notes(as_of).as_dict()


@task(name="compile-findings")
def compile_findings() -> dict:
    return phases.run_compile().as_dict()


@task(name="render-memos")
def render_memos(out_dir: str) -> dict:
    return phases.run_render(Path(out_dir)).as_dict()


@task(name="dispatch-memos", retries=2, retry_delay_seconds=60)
def dispatch_memos(as_of: datetime, out_dir: str) -> dict:
    return phases.run_dispatch(as_of, Path(out_dir)).as_dict()
