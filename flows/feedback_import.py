"""Import the form exports (Webropol, Microsoft Forms) of the feedback window."""

from __future__ import annotations

from datetime import datetime

from prefect import flow

from hytetu.phases import resolve_as_of
from tasks import phases
from tasks.reporting import publish


@flow(name="import-feedback", log_prints=True)
def import_feedback(as_of: datetime | None = None, region: str | None = None) -> dict:
    """Read feedback/*.csv and *.xlsx of the config folder whose content is new or changed.

    Args:
        as_of: The moment to act as of (ISO 8601). Empty means now, in the region's zone.
        region: The region's key (region.yaml). Empty means the only region loaded.
    """
    report = phases.import_feedback(resolve_as_of(as_of, region=region), region)
    publish(report)
    return report
