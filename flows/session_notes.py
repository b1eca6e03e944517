"""Import the notes of the sessions that have been held."""

from __future__ import annotations

from prefect import flow

from hytetu.localtime import LocalTime
from hytetu.phases import resolve_as_of
from tasks import phases
from tasks.reporting import publish


@flow(name="import-session-notes", log_prints=True)
def import_session_notes(as_of: LocalTime = None, region: str | None = None) -> dict:
    """Read notes/<session>.yaml of every held session whose notes are new or changed.

    Args:
        as_of: The moment to act as of, in the region's time zone: a date (that day's
            07:00 tick) or a time, e.g. 2.10.2025, 2025-10-02 07:00. Sessions ended by
            then count as held. Empty means now.
            Empty means now, in the region's zone.
        region: The region's key (region.yaml). Empty means the only region loaded.
    """
    report = phases.import_notes(resolve_as_of(as_of, region=region), region)
    publish(report, region)
    return report
