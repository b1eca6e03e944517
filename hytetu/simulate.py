"""Simulated time: the days on which the daily tick has something to do, so a whole year
can be run in seconds (``hytetu demo``) instead of 365 ticks."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path

from hytetu import feedback
from hytetu.state import CycleView

TICK_TIME = time(7, 0)


def tick_times(view: CycleView) -> list[datetime]:
    """07:00 local on each day something becomes due, in order."""
    lead = timedelta(days=int(view.cycle.settings.get("invitation_lead_days", 21)))
    remind = timedelta(days=int(view.cycle.settings.get("session_reminder_days", 7)))
    days = set()
    for s in view.sessions():
        start = view.local(s.start)
        days.add((start - lead).date())
        days.add((start - remind).date())
        days.add((view.local(s.end) + timedelta(days=1)).date())
    days.add(feedback.opens_at(view).date())
    days.add(feedback.reminder_at(view).date())
    days.add(feedback.closes_at(view).date())
    return [datetime.combine(d, TICK_TIME, view.tz) for d in sorted(days)]


def run_ticks(
    url: str | None, out: Path, until: datetime | None = None, region: str | None = None
) -> list[tuple[datetime, str]]:
    """Run the daily tick in-process, without Prefect, on each day something is due (up to
    ``until``), for ``region`` or every region loaded (each into its own subfolder of
    ``out`` when there are several). Returns (time, phase) of what ran; with several
    regions the phase reads "region: phase". Tests and benchmarks simulate with it."""
    from hytetu import db, phases
    from hytetu.state import cycle_view

    regions = [region] if region else phases.region_keys(url)
    with db.session_scope(url) as s:
        ticks = sorted({t for key in regions for t in tick_times(cycle_view(s, key))})
    done = []
    for at in ticks:
        if until is not None and at > until:
            break
        for key in regions:
            for phase in phases.due_phases(at, url, key):
                phases.run_phase(phase, at, phases.region_out(out, key, regions), url, key)
                done.append((at, phase if len(regions) == 1 else f"{key}: {phase}"))
    return done
