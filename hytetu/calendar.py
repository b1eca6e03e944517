"""Calendar invitations (iCalendar, iTIP RFC 5546): REQUEST for new and moved sessions,
CANCEL for removed attendees and cancelled sessions, and subscribable feeds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress, vText


@dataclass(frozen=True)
class Attendee:
    name: str
    email: str
    role: str = "REQ-PARTICIPANT"


@dataclass(frozen=True)
class CalendarEvent:
    """What a calendar needs to know of one session."""

    uid: str
    sequence: int
    start: datetime
    end: datetime
    summary: str
    description: str
    organizer_name: str
    organizer_email: str
    url: str | None = None
    location: str | None = None
    cancelled: bool = False


def session_uid(cycle_year: int, session_key: str, sender_email: str) -> str:
    """Stable per session: the same UID across updates lets calendars replace the entry."""
    domain = sender_email.rsplit("@", 1)[-1]
    return f"hytetu-{cycle_year}-{session_key}@{domain}"


def build_calendar(
    events: list[CalendarEvent],
    *,
    method: str | None,
    timezone: str,
    attendees: list[Attendee] = (),  # type: ignore[assignment]
    stamp: datetime,
    name: str | None = None,
) -> bytes:
    """An iCalendar object. With ``method`` it is an iTIP message; without, a feed."""
    tz = ZoneInfo(timezone)
    cal = Calendar()
    cal.add("prodid", "-//hytetu//hytetu//FI")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    if method:
        cal.add("method", method)
    if name:
        cal.add("x-wr-calname", name)
        cal.add("x-wr-timezone", timezone)
    for e in events:
        ev = Event()
        ev.add("uid", e.uid)
        ev.add("dtstamp", stamp)
        ev.add("sequence", e.sequence)
        ev.add("dtstart", e.start.astimezone(tz))
        ev.add("dtend", e.end.astimezone(tz))
        ev.add("summary", e.summary)
        ev.add("description", e.description)
        organizer = vCalAddress(f"mailto:{e.organizer_email}")
        organizer.params["cn"] = vText(e.organizer_name)
        ev.add("organizer", organizer)
        for a in attendees:
            address = vCalAddress(f"mailto:{a.email}")
            address.params["cn"] = vText(a.name)
            address.params["role"] = vText(a.role)
            address.params["partstat"] = vText("NEEDS-ACTION")
            address.params["rsvp"] = vText("TRUE")
            ev.add("attendee", address, encode=0)
        if e.url:
            ev.add("url", e.url)
        location = e.location or e.url
        if location:
            ev.add("location", location)
        cancelled = e.cancelled or method == "CANCEL"
        ev.add("status", "CANCELLED" if cancelled else "CONFIRMED")
        ev.add("transp", "OPAQUE")
        cal.add_component(ev)
    if events:
        first = min(e.start for e in events).date() - timedelta(days=366)
        last = max(e.end for e in events).date() + timedelta(days=366)
    else:
        first, last = date(2020, 1, 1), date(2030, 1, 1)
    cal.add_missing_timezones(first, last)
    return cal.to_ical()
