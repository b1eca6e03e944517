"""Dispatch approved memos to each municipality's registry (kirjaamo)."""

from __future__ import annotations

from datetime import datetime

from prefect import flow

from hytetu.phases import default_out_dir, resolve_as_of
from tasks import phases
from tasks.reporting import publish


@flow(name="dispatch-memos", log_prints=True)
def dispatch_memos(as_of: datetime | None = None, out_dir: str | None = None) -> dict:
    """Send each approved memo to its registries, once; report what went where."""
    report = phases.dispatch_memos(resolve_as_of(as_of), out_dir or default_out_dir())
    publish(report)
    return report
