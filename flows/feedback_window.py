"""The feedback window: open it with a notice, remind before the deadline, close it."""

from __future__ import annotations

from prefect import flow

from hytetu.localtime import LocalTime
from hytetu.phases import default_out_dir, resolve_as_of
from tasks import phases
from tasks.reporting import publish


def _step(step: str, as_of: str | None, out_dir: str | None, region: str | None) -> dict:
    at = resolve_as_of(as_of, region=region)
    report = phases.feedback_step(step, at, out_dir or default_out_dir(), region)
    publish(report, region)
    return report


@flow(name="open-feedback-window", log_prints=True)
def open_feedback_window(
    as_of: LocalTime = None, out_dir: str | None = None, region: str | None = None
) -> dict:
    """Open the window and tell every contact how to respond and by when.

    Args:
        as_of: The moment to act as of, in the region's time zone: a date (that day's
            07:00 tick) or a time, e.g. 2.10.2025, 2025-10-02 07:00. Empty means now.
        out_dir: The folder for calendars, memos and the file outbox. Empty means the
            worker's HYTETU_OUT.
        region: The region's key (region.yaml). Empty means the only region loaded.
    """
    return _step("open", as_of, out_dir, region)


@flow(name="remind-feedback-window", log_prints=True)
def remind_feedback_window(
    as_of: LocalTime = None, out_dir: str | None = None, region: str | None = None
) -> dict:
    """Remind every contact of the deadline (once).

    Args:
        as_of: The moment to act as of, in the region's time zone: a date (that day's
            07:00 tick) or a time, e.g. 2.10.2025, 2025-10-02 07:00. Empty means now.
        out_dir: The folder for calendars, memos and the file outbox. Empty means the
            worker's HYTETU_OUT.
        region: The region's key (region.yaml). Empty means the only region loaded.
    """
    return _step("remind", as_of, out_dir, region)


@flow(name="close-feedback-window", log_prints=True)
def close_feedback_window(
    as_of: LocalTime = None, out_dir: str | None = None, region: str | None = None
) -> dict:
    """Close the window at the deadline; later responses are marked late.

    Args:
        as_of: The moment to act as of, in the region's time zone: a date (that day's
            07:00 tick) or a time, e.g. 2.10.2025, 2025-10-02 07:00. Empty means now.
        out_dir: The folder for calendars, memos and the file outbox. Empty means the
            worker's HYTETU_OUT.
        region: The region's key (region.yaml). Empty means the only region loaded.
    """
    return _step("close", as_of, out_dir, region)
