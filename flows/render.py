"""Render the memo of each municipality group and the regional summary (HTML + PDF/A)."""

from __future__ import annotations

from prefect import flow

from hytetu.phases import default_out_dir
from tasks import phases
from tasks.reporting import publish


@flow(name="render-memos", log_prints=True)
def render_memos(out_dir: str | None = None) -> dict:
    """Render new versions of the memos whose content changed; they wait for approval."""
    report = phases.render_memos(out_dir or default_out_dir())
    publish(report)
    return report
