"""Calendar invitations (iCalendar, iTIP RFC 5546): REQUEST for new and moved sessions,
CANCEL for removed attendees and cancelled sessions, and subscribable feeds."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from icalendar import (
    Alarm,
    Calendar,
    Event,
    Timezone,
    TimezoneDaylight,
    TimezoneStandard,
    vCalAddress,
    vText,
    vUri,
)

from hytetu.safe import one_line, plain_text


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
    alarm_minutes: int | None = None  # a VALARM this long before the start; 0/None: none


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
    """An iCalendar object. With ``method`` it is an iTIP message; without, a feed.

    A CANCEL of an event that is not ``cancelled`` uninvites the ``attendees`` it lists:
    it carries no STATUS (RFC 5546 3.2.5: STATUS:CANCELLED cancels the whole event).
    """
    tz = ZoneInfo(timezone)
    cal = Calendar()
    cal.add("prodid", "-//hytetu//hytetu//FI")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    if method:
        cal.add("method", method)
    if name:
        cal.add("x-wr-calname", one_line(name))
        cal.add("x-wr-timezone", timezone)
    for e in events:
        ev = Event()
        ev.add("uid", e.uid)
        ev.add("dtstamp", stamp)
        ev.add("sequence", e.sequence)
        ev.add("dtstart", e.start.astimezone(tz))
        ev.add("dtend", e.end.astimezone(tz))
        # Text values are escaped by icalendar (CR/LF, ';', ',', '\\') and parameters
        # quoted; control characters it would pass through raw (VT, NUL...) make the line
        # unparseable, and a name is one line: both cleaned here (user text, RFC 5545 3.3.11).
        ev.add("summary", plain_text(e.summary))
        ev.add("description", plain_text(e.description))
        organizer = vCalAddress(f"mailto:{e.organizer_email}")
        organizer.params["cn"] = vText(one_line(e.organizer_name))
        ev.add("organizer", organizer)
        for a in attendees:
            address = vCalAddress(f"mailto:{a.email}")
            address.params["cn"] = vText(one_line(a.name))
            address.params["role"] = vText(a.role)
            address.params["partstat"] = vText("NEEDS-ACTION")
            address.params["rsvp"] = vText("TRUE")
            ev.add("attendee", address, encode=False)
        if e.url:
            url = one_line(e.url)
            ev.add("url", url)
            # RFC 7986 5.11: how to join, for clients that show a join button from it.
            # Of Outlook's own properties, [MS-OXCICAL] documents for online meetings only
            # X-MS-OLK-NETSHOWURL (2.1.3.1.1.20.56, PidLidNetShowUrl), which [MS-OXOCAL]
            # makes valid only for the retired NetShow / Exchange Conferencing types; the
            # Teams ones (X-MICROSOFT-SKYPETEAMSMEETINGURL, X-MICROSOFT-ONLINEMEETINGCONFLINK,
            # X-MICROSOFT-ONLINEMEETINGINFORMATION) are not in it. So none is written (only
            # documented ones are): Outlook gets the link in LOCATION, URL and the text.
            conference: dict[str, Any] = {
                "value": "URI",
                "feature": ["AUDIO", "VIDEO"],  # a list: FEATURE=AUDIO,VIDEO, two values
                "label": _host(url),
            }
            ev.add("conference", vUri(url), parameters=conference)
        location = e.location or e.url
        if location:
            ev.add("location", plain_text(location))
        if e.cancelled:
            ev.add("status", "CANCELLED")
        elif method != "CANCEL":
            ev.add("status", "CONFIRMED")
        ev.add("transp", "OPAQUE")
        if e.alarm_minutes and not e.cancelled and method != "CANCEL":
            alarm = Alarm()
            alarm.add("action", "DISPLAY")  # DISPLAY needs a DESCRIPTION: the summary
            alarm.add("description", plain_text(e.summary))
            alarm.add("trigger", timedelta(minutes=-e.alarm_minutes))
            ev.add_component(alarm)
        cal.add_component(ev)
    if events and timezone in cal.get_missing_tzids():
        # Whole years around the events, so that one computed VTIMEZONE serves them all.
        first = date(min(e.start for e in events).year - 1, 1, 1)
        last = date(max(e.end for e in events).year + 2, 1, 1)
        cal.subcomponents.insert(0, vtimezone(timezone, first, last))
    return cal.to_ical()


def _host(url: str) -> str:
    """The host of a join link, as its CONFERENCE label ("teams.microsoft.com"); the link
    itself when it has none (a typo in the config must not stop the invitations)."""
    try:
        return urlsplit(url).hostname or url
    except ValueError:  # e.g. an unclosed [ of an IPv6 address
        return url


@functools.lru_cache(maxsize=32)
def vtimezone(tzid: str, first: date, last: date) -> Timezone:
    """The VTIMEZONE of ``tzid`` from tzdata, right for every time from ``first`` to ``last``.

    Written the way Google, Outlook and tzurl.org write them: one DAYLIGHT and one STANDARD
    observance with a yearly RRULE ("last Sunday of March") starting at the first change in
    the range, checked against every change tzdata has in the range. Changes that follow no
    yearly rule get one RDATE property each. Each DTSTART is the onset in TZOFFSETFROM
    local time (RFC 5545 3.6.5), e.g. 03:00 for Helsinki's move to summer time.

    icalendar's own generator (``add_missing_timezones``) is not used: it writes the summer
    time onset an hour late (the first wall-clock time after the gap), and only RDATE
    lists, which Outlook is reported to misread (summer-time events an hour off) and
    vobject truncates to their first value.

    Cached: the component is shared by the calendars that use it and must not be changed.
    """
    zone = ZoneInfo(tzid)

    def state(epoch: int) -> tuple[timedelta, str, bool]:
        t = datetime.fromtimestamp(epoch, UTC).astimezone(zone)
        return t.utcoffset() or timedelta(), t.tzname() or tzid, bool(t.dst())

    def local(epoch: int, offset: timedelta) -> datetime:
        return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None) + offset

    begin = int(datetime.combine(first, time(), UTC).timestamp())
    end = int(datetime.combine(last, time(), UTC).timestamp())
    current = state(begin)
    # (offset from, offset to, name, dst) -> onsets in local time of "offset from"
    observances: dict[tuple[timedelta, timedelta, str, bool], list[datetime]] = {}
    t = begin
    while t < end:
        step = t + 6 * 3600  # offsets change months apart; bisect each change to the second
        if state(step) != current:
            lo, hi = t, step  # state(lo) == current != state(hi)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if state(mid) == current else (lo, mid)
            new = state(hi)
            observances.setdefault((current[0], *new), []).append(local(hi, current[0]))
            current = new
        t = step
    if not observances:  # no change in the range: one observance from its start
        observances[(current[0], *current)] = [local(begin, current[0])]
    tz = Timezone()
    tz.add("tzid", tzid)
    # DAYLIGHT is the ahead-of-standard time, also where tzdata has negative DST (Dublin)
    standard = min(offset_to for _, offset_to, _, _ in observances)
    for (offset_from, offset_to, name, _), onsets in observances.items():
        part = TimezoneDaylight() if offset_to > standard else TimezoneStandard()
        part.add("dtstart", onsets[0])
        rule = _yearly_rule(onsets, local(end, offset_from))
        if rule:
            part.add("rrule", rule)
        else:
            for onset in onsets[1:]:
                part.add("rdate", onset)
        part.add("tzoffsetfrom", offset_from)
        part.add("tzoffsetto", offset_to)
        part.add("tzname", name)
        tz.add_component(part)
    return tz


_BYDAY = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date | None:
    """The n-th (from the end when negative) given weekday of a month, or None."""
    if n > 0:
        day = date(year, month, 1)
        day += timedelta(days=(weekday - day.weekday()) % 7 + 7 * (n - 1))
    else:
        day = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
        day -= timedelta(days=(day.weekday() - weekday) % 7 + 7 * (-n - 1))
    return day if day.month == month else None


def _yearly_rule(onsets: list[datetime], until: datetime) -> dict[str, object] | None:
    """A yearly RRULE giving exactly ``onsets`` up to ``until``, or None if there is none."""
    if len(onsets) < 2:
        return None
    head = onsets[0]
    month, weekday, at = head.month, head.weekday(), head.time()
    candidates = [-1] if (head + timedelta(days=7)).month != month else []
    candidates.append((head.day - 1) // 7 + 1)
    for n in candidates:
        generated = []
        for year in range(head.year, until.year + 1):
            day = _nth_weekday(year, month, weekday, n)
            if day is not None and head <= datetime.combine(day, at) < until:
                generated.append(datetime.combine(day, at))
        if generated == onsets:
            return {"freq": "YEARLY", "bymonth": month, "byday": f"{n}{_BYDAY[weekday]}"}
    return None
