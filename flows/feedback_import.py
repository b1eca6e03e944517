"""Import the form exports (Webropol, Microsoft Forms) of the feedback window."""

from __future__ import annotations

from prefect import flow

from hytetu.localtime import LocalTime
from hytetu.phases import resolve_as_of
from tasks import phases
from tasks.reporting import publish


@flow(name="import-feedback", log_prints=True)
def import_feedback(as_of: LocalTime = None, region: str | None = None) -> dict:
    """Read feedback/*.csv and *.xlsx of the config folder whose content is new or changed.

    Args:
        as_of: The moment to act as of, in the region's time zone: a date (that day's
            07:00 tick) or a time, e.g. 2.10.2025, 2025-10-02 07:00. Empty means now.
        region: The region's key (region.yaml). Empty means the only region loaded.
    """
    report = phases.import_feedback(resolve_as_of(as_of, region=region), region)
    publish(report, region)
    return report
