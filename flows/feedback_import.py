"""Import the form exports (Webropol, Microsoft Forms) of the feedback window."""

from __future__ import annotations

from datetime import datetime

from prefect import flow

from hytetu.phases import resolve_as_of
from tasks import phases
from tasks.reporting import publish


@flow(name="import-feedback", log_prints=True)
def import_feedback(as_of: datetime | None = None) -> dict:
    """Read feedback/*.csv and *.xlsx of the config folder whose content is new or changed."""
    report = phases.import_feedback(resolve_as_of(as_of))
    publish(report)
    return report
