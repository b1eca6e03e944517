"""Session invitations: calendar invites, updates, cancellations and reminders."""

from __future__ import annotations

from prefect import flow

from hytetu.localtime import LocalTime
from hytetu.phases import default_out_dir, resolve_as_of
from tasks import phases
from tasks.reporting import publish


@flow(name="send-invitations", log_prints=True)
def send_invitations(
    as_of: LocalTime = None, out_dir: str | None = None, region: str | None = None
) -> dict:
    """Send the invitations that are due: new, moved or cancelled sessions, and reminders.

    Args:
        as_of: The moment to act as of, in the region's time zone: a date (that day's
            07:00 tick) or a time, e.g. 2.10.2025, 2025-10-02 07:00. Empty means now.
        out_dir: The folder for calendars, memos and the file outbox. Empty means the
            worker's HYTETU_OUT.
        region: The region's key (region.yaml). Empty means the only region loaded.
    """
    report = phases.send_invitations(
        resolve_as_of(as_of, region=region), out_dir or default_out_dir(), region
    )
    publish(report, region)
    return report
