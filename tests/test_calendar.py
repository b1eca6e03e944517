"""build_calendar: iTIP REQUEST/CANCEL and feeds, read back by two independent parsers.

icalendar is the library that writes the files, so every file is also read by vobject
(``readOne(...).validate()``), which has its own parser and its own VTIMEZONE handling
(dateutil's tzical).
"""

from __future__ import annotations

import dataclasses
import io
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import vobject
from dateutil.rrule import rrulestr
from dateutil.tz import tzical
from icalendar import Calendar, Component

from hytetu.calendar import Attendee, CalendarEvent, build_calendar, session_uid

HELSINKI = ZoneInfo("Europe/Helsinki")
SENDER = "hyte@hyvaks.example"
STAMP = datetime(2025, 9, 1, 10, 0, tzinfo=UTC)

ATTENDEES = [
    Attendee("Äijälä, Örjan; Åsa", "orjan.aijala@jamsa.example"),
    Attendee("Pää: Ässä Öhman", "assa.ohman@keuruu.example", role="OPT-PARTICIPANT"),
    Attendee("Matti Meikäläinen", "matti@multia.example"),
]


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=HELSINKI)


def make_event(
    key: str = "jamsa-keuruu-multia-petajavesi",
    *,
    sequence: int = 0,
    start: str = "2025-10-23 09:00",
    hours: int = 2,
    **overrides: object,
) -> CalendarEvent:
    begin = local(start)
    fields: dict[str, object] = {
        "uid": session_uid(2025, key, SENDER),
        "sequence": sequence,
        "start": begin,
        "end": begin + timedelta(hours=hours),
        "summary": "Hyte-neuvottelu: Jämsä, Keuruu; Multia ja Petäjävesi",
        "description": "Esityslista:\n1. Tavoitteet; painopisteet, toimenpiteet\n2. Muut asiat",
        "organizer_name": "Keski-Suomen hyvinvointialue, HYTE; Åström",
        "organizer_email": SENDER,
        "url": "https://teams.hyvaks.example/l/meetup-join/19%3ameeting?a=1&b=2",
        "location": "Jämsän kaupungintalo, Sali 2; 2. krs",
    }
    fields.update(overrides)
    return CalendarEvent(**fields)  # type: ignore[arg-type]


def build(
    events: list[CalendarEvent],
    method: str | None = "REQUEST",
    attendees: list[Attendee] | None = None,
    **kwargs: object,
) -> bytes:
    return build_calendar(
        events,
        method=method,
        timezone="Europe/Helsinki",
        attendees=ATTENDEES if attendees is None and method else (attendees or []),
        stamp=kwargs.pop("stamp", STAMP),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def parse_both(raw: bytes) -> tuple[Calendar, vobject.base.Component]:
    """Parse with icalendar and with vobject; vobject's validate() must accept the file."""
    ical = Calendar.from_ical(raw)
    vcal = vobject.readOne(raw.decode("utf-8"))
    vcal.validate()
    return ical, vcal


def vevents(ical: Calendar) -> list:
    return list(ical.walk("VEVENT"))


# --- METHOD, UID, SEQUENCE -------------------------------------------------------------


def test_request_is_an_itip_request_that_both_parsers_accept() -> None:
    ical, vcal = parse_both(build([make_event()]))
    assert ical["METHOD"] == "REQUEST"
    assert vcal.method.value == "REQUEST"
    assert ical["VERSION"] == "2.0"
    assert ical["PRODID"]
    assert len(vevents(ical)) == 1
    ev = vevents(ical)[0]
    assert ev["STATUS"] == "CONFIRMED"
    assert vcal.vevent.status.value == "CONFIRMED"
    assert ev.decoded("DTSTAMP") == STAMP


def test_uid_is_stable_across_sequences_and_sequence_is_written() -> None:
    first = make_event(sequence=0)
    moved = make_event(sequence=3, start="2025-10-30 13:00")
    (ical0, vcal0), (ical3, vcal3) = parse_both(build([first])), parse_both(build([moved]))
    uid0, uid3 = vevents(ical0)[0]["UID"], vevents(ical3)[0]["UID"]
    assert uid0 == uid3 == "hytetu-2025-jamsa-keuruu-multia-petajavesi@hyvaks.example"
    assert vcal0.vevent.uid.value == vcal3.vevent.uid.value == uid0
    assert vevents(ical0)[0].decoded("SEQUENCE") == 0
    assert vevents(ical3)[0].decoded("SEQUENCE") == 3
    assert int(vcal3.vevent.sequence.value) == 3
    # the UID depends only on the cycle year, the session key and the sender's domain
    assert session_uid(2025, "forum", "a@hyvaks.example") == session_uid(2025, "forum", SENDER)
    assert session_uid(2026, "forum", SENDER) != session_uid(2025, "forum", SENDER)
    assert session_uid(2025, "forum", SENDER) != session_uid(2025, "jamsa", SENDER)


def test_dtstamp_is_utc_even_when_the_stamp_is_local() -> None:
    raw = build([make_event()], stamp=local("2025-09-01 13:00"))
    assert b"DTSTAMP:20250901T100000Z\r\n" in raw  # RFC 5545 3.8.7.2: MUST be UTC
    ical, _ = parse_both(raw)
    assert vevents(ical)[0].decoded("DTSTAMP") == STAMP


# --- time zone ----------------------------------------------------------------------------


DST_SESSIONS = [
    make_event("before-dst-end", start="2025-10-23 09:00"),  # EEST, UTC+3
    make_event("after-dst-end", start="2025-11-13 09:00"),  # EET, UTC+2
]
EXPECTED_UTC = {
    "before-dst-end": datetime(2025, 10, 23, 6, 0, tzinfo=UTC),
    "after-dst-end": datetime(2025, 11, 13, 7, 0, tzinfo=UTC),
}


def _key(uid: str) -> str:
    return uid.removeprefix("hytetu-2025-").split("@")[0]


@pytest.mark.parametrize("method", ["REQUEST", None])
def test_times_carry_tzid_and_are_right_on_both_sides_of_the_dst_change(
    method: str | None,
) -> None:
    raw = build(DST_SESSIONS, method=method)
    assert b"DTSTART;TZID=Europe/Helsinki:20251023T090000\r\n" in raw
    assert b"DTEND;TZID=Europe/Helsinki:20251023T110000\r\n" in raw
    assert b"DTSTART;TZID=Europe/Helsinki:20251113T090000\r\n" in raw
    ical, vcal = parse_both(raw)
    zones = list(ical.walk("VTIMEZONE"))
    assert [str(z["TZID"]) for z in zones] == ["Europe/Helsinki"]
    for ev in vevents(ical):
        assert ev["DTSTART"].params["TZID"] == "Europe/Helsinki"
        assert ev["DTEND"].params["TZID"] == "Europe/Helsinki"
        start = ev.decoded("DTSTART")
        assert start.astimezone(UTC) == EXPECTED_UTC[_key(str(ev["UID"]))]
        assert ev.decoded("DTEND") - start == timedelta(hours=2)
    for ev in vcal.vevent_list:
        # vobject moves TZID to X-VOBJ-ORIGINAL-TZID when it turns the value into a datetime
        assert ev.dtstart.params["X-VOBJ-ORIGINAL-TZID"] == ["Europe/Helsinki"]
        assert ev.dtstart.value.astimezone(UTC) == EXPECTED_UTC[_key(ev.uid.value)]


def _only_the_vtimezone(raw: bytes, tzid: str) -> bytes:
    """Rename the TZID to a name no tz database has, so a parser must use the VTIMEZONE.

    The name is new each time: icalendar and vobject both cache VTIMEZONEs by TZID for the
    whole process.
    """
    fake = f"Hytetu-Test/{uuid.uuid4().hex}".encode()
    renamed = raw.replace(tzid.encode(), fake)
    assert tzid.encode() not in renamed
    return renamed


def test_the_embedded_vtimezone_alone_gives_the_right_utc_times() -> None:
    """A client that does not know the Olson name relies on the VTIMEZONE only."""
    ical, vcal = parse_both(_only_the_vtimezone(build(DST_SESSIONS), "Europe/Helsinki"))
    for ev in vevents(ical):
        assert ev.decoded("DTSTART").astimezone(UTC) == EXPECTED_UTC[_key(str(ev["UID"]))]
    for ev in vcal.vevent_list:
        assert ev.dtstart.value.astimezone(UTC) == EXPECTED_UTC[_key(ev.uid.value)]


def _onsets(observance: Component, until: datetime) -> list[datetime]:
    """DTSTART, every RDATE and the RRULE expanded up to ``until`` (naive local times)."""
    start = observance.decoded("DTSTART")
    onsets = [start]
    rdates = observance.get("RDATE", [])
    for rdate in rdates if isinstance(rdates, list) else [rdates]:
        onsets += [d.dt for d in rdate.dts]
    if "RRULE" in observance:
        rule = rrulestr(observance["RRULE"].to_ical().decode(), dtstart=start)
        onsets += rule.between(start, until, inc=True)
    return sorted(set(onsets))


def test_vtimezone_onsets_are_the_real_transitions_in_tzoffsetfrom_local_time() -> None:
    """RFC 5545 3.6.5: DTSTART of an observance is the onset in TZOFFSETFROM local time.

    Helsinki moves to summer time at 01:00 UTC on the last Sunday of March, i.e. at 03:00
    local winter time, and back at 01:00 UTC on the last Sunday of October (04:00 summer
    time). Every onset written must be an instant where tzdata changes from TZOFFSETFROM
    to TZOFFSETTO.
    """
    raw = build(DST_SESSIONS)
    assert b"RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\n" in raw  # as tzurl.org, Google
    ical, _ = parse_both(raw)
    (zone,) = ical.walk("VTIMEZONE")
    assert sorted(o.name for o in zone.subcomponents) == ["DAYLIGHT", "STANDARD"]
    transitions: list[datetime] = []
    for observance in zone.subcomponents:
        offset_from = observance.decoded("TZOFFSETFROM")
        offset_to = observance.decoded("TZOFFSETTO")
        assert offset_from != offset_to
        for onset in _onsets(observance, datetime(2027, 1, 1)):
            assert onset.tzinfo is None, "onsets are local times"
            instant = (onset - offset_from).replace(tzinfo=UTC)
            before = (instant - timedelta(seconds=1)).astimezone(HELSINKI).utcoffset()
            after = instant.astimezone(HELSINKI).utcoffset()
            assert (before, after) == (offset_from, offset_to), (observance.name, onset)
            transitions.append(instant)
    assert datetime(2025, 3, 30, 1, 0, tzinfo=UTC) in transitions
    assert datetime(2025, 10, 26, 1, 0, tzinfo=UTC) in transitions
    assert datetime(2026, 3, 29, 1, 0, tzinfo=UTC) in transitions


@pytest.mark.parametrize(
    "tzid",
    [
        "Europe/Helsinki",
        "Europe/Stockholm",
        "Europe/Dublin",
        "America/New_York",
        "Australia/Sydney",
        "Asia/Kolkata",
    ],
)
def test_vtimezone_matches_tzdata_for_a_year_of_sessions(tzid: str) -> None:
    """Any zone a region might configure: northern and southern DST, and none at all."""
    zone = ZoneInfo(tzid)
    starts = [datetime(2025, month, 15, 9, 0, tzinfo=zone) for month in range(1, 13)]
    starts += [datetime(2026, 3, 29, 12, 0, tzinfo=zone), datetime(2025, 11, 2, 6, 0, tzinfo=zone)]
    events = [
        dataclasses.replace(make_event(f"s{i}"), start=s, end=s + timedelta(hours=1))
        for i, s in enumerate(starts)
    ]
    raw = build_calendar(events, method=None, timezone=tzid, stamp=STAMP)
    ical, vcal = parse_both(_only_the_vtimezone(raw, tzid))
    expected = {e.uid: e.start.astimezone(UTC) for e in events}
    for ev in vevents(ical):
        assert ev.decoded("DTSTART").astimezone(UTC) == expected[str(ev["UID"])]
    # vobject takes any tzinfo equal to UTC over 2000-2020 for UTC and drops its TZID
    # (TimezoneComponent.pickTzid, tzinfo_eq). Dublin's VTIMEZONE starts in 2024 with winter
    # at +0000, which dateutil extends backwards, so vobject returns naive times for it. The
    # file is fine: dateutil's own reading of it is checked below.
    if tzid != "Europe/Dublin":
        for ev in vcal.vevent_list:
            assert ev.dtstart.value.astimezone(UTC) == expected[ev.uid.value]
    # summer time is DAYLIGHT (also in Dublin, where tzdata models winter as negative DST)
    for observance in ical.walk("VTIMEZONE")[0].subcomponents:
        offsets = {o.decoded("TZOFFSETTO") for o in ical.walk("VTIMEZONE")[0].subcomponents}
        is_summer = observance.decoded("TZOFFSETTO") > min(offsets)
        assert observance.name == ("DAYLIGHT" if is_summer else "STANDARD")
    # and every noon of the covered range, read by dateutil's own VTIMEZONE parser
    (vtimezone,) = Calendar.from_ical(raw).walk("VTIMEZONE")
    from_file = tzical(io.StringIO(vtimezone.to_ical().decode())).get()
    day = datetime(2025, 1, 15, 12, 0)
    while day < datetime(2026, 4, 1):
        assert day.replace(tzinfo=from_file).utcoffset() == day.replace(tzinfo=zone).utcoffset()
        day += timedelta(days=1)


# --- ORGANIZER and ATTENDEEs -------------------------------------------------------------


def test_organizer_and_one_attendee_per_participant_with_itip_parameters() -> None:
    ical, vcal = parse_both(build([make_event()]))
    ev = vevents(ical)[0]
    organizer = ev["ORGANIZER"]
    assert str(organizer) == f"mailto:{SENDER}"
    assert organizer.params["CN"] == "Keski-Suomen hyvinvointialue, HYTE; Åström"
    attendees = ev["ATTENDEE"]
    assert isinstance(attendees, list) and len(attendees) == len(ATTENDEES)
    by_email = {str(a).removeprefix("mailto:"): a.params for a in attendees}
    assert set(by_email) == {a.email for a in ATTENDEES}
    for a in ATTENDEES:
        params = by_email[a.email]
        assert params["CN"] == a.name
        assert params["ROLE"] == a.role
        assert params["PARTSTAT"] == "NEEDS-ACTION"
        assert params["RSVP"] == "TRUE"

    v_ev = vcal.vevent
    assert v_ev.organizer.value == f"mailto:{SENDER}"
    assert v_ev.organizer.params["CN"] == ["Keski-Suomen hyvinvointialue, HYTE; Åström"]
    v_att = {a.value.removeprefix("mailto:"): a.params for a in v_ev.attendee_list}
    assert len(v_ev.attendee_list) == len(ATTENDEES)
    for a in ATTENDEES:
        assert v_att[a.email]["CN"] == [a.name]
        assert v_att[a.email]["ROLE"] == [a.role]
        assert v_att[a.email]["PARTSTAT"] == ["NEEDS-ACTION"]
        assert v_att[a.email]["RSVP"] == ["TRUE"]


def test_texts_with_finnish_letters_commas_semicolons_and_newlines_round_trip() -> None:
    event = make_event()
    ical, vcal = parse_both(build([event]))
    ev = vevents(ical)[0]
    assert str(ev["SUMMARY"]) == event.summary
    assert str(ev["DESCRIPTION"]) == event.description
    assert str(ev["LOCATION"]) == event.location
    assert vcal.vevent.summary.value == event.summary
    assert vcal.vevent.description.value == event.description
    assert vcal.vevent.location.value == event.location


def test_double_quote_in_a_name_is_escaped_not_breaking_the_parameter() -> None:
    """A DQUOTE cannot appear in a parameter value; icalendar writes RFC 6868 ^' for it.

    Only icalendar is asked for the decoded name: vobject does not implement RFC 6868 and
    would return the ^' escapes literally, but it must still parse and validate the file.
    """
    names = [Attendee('Matti "Masa" Meikäläinen', "masa@jamsa.example")]
    raw = build([make_event()], attendees=names)
    ical, vcal = parse_both(raw)
    (attendee,) = [vevents(ical)[0]["ATTENDEE"]]
    assert attendee.params["CN"] == 'Matti "Masa" Meikäläinen'
    assert vcal.vevent.attendee.value == "mailto:masa@jamsa.example"


def test_a_line_break_in_a_name_cannot_inject_a_property() -> None:
    names = [Attendee("Pää Ässä\r\nATTENDEE:mailto:evil@example.org", "assa@keuruu.example")]
    raw = build([make_event()], attendees=names)
    assert b"\r\nATTENDEE:mailto:evil" not in raw
    ical, vcal = parse_both(raw)
    attendee = vevents(ical)[0]["ATTENDEE"]
    assert str(attendee) == "mailto:assa@keuruu.example"  # a single ATTENDEE
    assert len(vcal.vevent.attendee_list) == 1


def test_lines_are_crlf_terminated_and_folded_at_75_octets() -> None:
    long_name = "Äöå " * 40
    raw = build([make_event(summary=long_name)], attendees=[Attendee(long_name, "x@jamsa.example")])
    assert raw.endswith(b"\r\n")
    lines = raw.split(b"\r\n")[:-1]
    assert all(b"\n" not in line and b"\r" not in line for line in lines)
    assert max(len(line) for line in lines) <= 75
    ical, _ = parse_both(raw)
    assert str(vevents(ical)[0]["SUMMARY"]) == long_name
    assert vevents(ical)[0]["ATTENDEE"].params["CN"] == long_name


# --- CANCEL --------------------------------------------------------------------------


def test_uninvite_is_a_cancel_without_status_at_the_events_sequence() -> None:
    """RFC 5546 3.2.5: a CANCEL to the removed attendees only has no STATUS (STATUS:
    CANCELLED would cancel the whole event); the event keeps its one SEQUENCE."""
    request = build([make_event(sequence=1)])
    cancel = build([make_event(sequence=1)], method="CANCEL", attendees=ATTENDEES[:1])
    ical, vcal = parse_both(cancel)
    assert ical["METHOD"] == "CANCEL"
    assert vcal.method.value == "CANCEL"
    ev = vevents(ical)[0]
    assert "STATUS" not in ev
    assert not hasattr(vcal.vevent, "status")
    assert ev["UID"] == vevents(Calendar.from_ical(request))[0]["UID"]
    assert ev.decoded("SEQUENCE") == int(vcal.vevent.sequence.value) == 1
    # RFC 5546 3.2.5: ORGANIZER and the ATTENDEEs being cancelled are in the CANCEL
    assert str(ev["ORGANIZER"]) == f"mailto:{SENDER}"
    assert str(ev["ATTENDEE"]) == f"mailto:{ATTENDEES[0].email}"
    assert ev["ATTENDEE"].params["CN"] == ATTENDEES[0].name
    assert ev["DTSTART"].params["TZID"] == "Europe/Helsinki"
    assert not list(ev.walk("VALARM"))


def test_cancel_of_a_cancelled_event_is_status_cancelled() -> None:
    cancel = build([make_event(sequence=2, cancelled=True)], method="CANCEL")
    ical, vcal = parse_both(cancel)
    assert vevents(ical)[0]["STATUS"] == vcal.vevent.status.value == "CANCELLED"
    assert vevents(ical)[0].decoded("SEQUENCE") == 2
    assert not list(vevents(ical)[0].walk("VALARM"))


def test_a_cancelled_session_in_a_request_or_feed_is_status_cancelled() -> None:
    for method in ("REQUEST", None):
        ical, _ = parse_both(build([make_event(cancelled=True)], method=method))
        assert vevents(ical)[0]["STATUS"] == "CANCELLED"


# --- URL and LOCATION ------------------------------------------------------------------


def test_url_and_location() -> None:
    event = make_event()
    ical, vcal = parse_both(build([event]))
    ev = vevents(ical)[0]
    assert str(ev["URL"]) == event.url
    assert str(ev["LOCATION"]) == event.location
    assert vcal.vevent.url.value == event.url
    assert vcal.vevent.location.value == event.location


def test_online_only_session_uses_the_url_as_location_and_none_writes_neither() -> None:
    online = make_event(location=None)
    ical, _ = parse_both(build([online]))
    assert str(vevents(ical)[0]["LOCATION"]) == online.url
    assert str(vevents(ical)[0]["URL"]) == online.url

    ical, _ = parse_both(build([make_event(location=None, url=None)]))
    assert "LOCATION" not in vevents(ical)[0]
    assert "URL" not in vevents(ical)[0]


def test_online_session_has_an_rfc7986_conference_with_features_and_a_label() -> None:
    event = make_event()
    ical, vcal = parse_both(build([event]))
    conference = vevents(ical)[0]["CONFERENCE"]
    assert str(conference) == event.url
    assert conference.params["VALUE"] == "URI"
    assert conference.params["LABEL"] == "teams.hyvaks.example"
    v = vcal.vevent.conference
    assert v.value == event.url
    assert v.params["VALUE"] == ["URI"]
    assert v.params["FEATURE"] == ["AUDIO", "VIDEO"]  # two values, not one quoted "A,V"
    assert "CONFERENCE" not in vevents(Calendar.from_ical(build([make_event(url=None)])))[0]


def test_a_malformed_link_is_still_the_conference_and_its_own_label() -> None:
    event = make_event(url="https://[teams.hyvaks.example/l/meetup-join/x")  # unclosed [
    ical, vcal = parse_both(build([event]))
    conference = vevents(ical)[0]["CONFERENCE"]
    assert str(conference) == conference.params["LABEL"] == event.url
    assert vcal.vevent.conference.value == event.url


@pytest.mark.parametrize("method", ["REQUEST", None])
def test_alarm_the_given_minutes_before_the_start(method: str | None) -> None:
    ical, vcal = parse_both(build([make_event(alarm_minutes=15)], method=method))
    (alarm,) = vevents(ical)[0].walk("VALARM")
    assert alarm["ACTION"] == "DISPLAY"
    assert alarm.decoded("TRIGGER") == timedelta(minutes=-15)
    assert str(alarm["DESCRIPTION"]) == make_event().summary
    assert vcal.vevent.valarm.trigger.value == timedelta(minutes=-15)
    assert vcal.vevent.valarm.action.value == "DISPLAY"


@pytest.mark.parametrize("minutes", [0, None])
def test_no_alarm_when_turned_off(minutes: int | None) -> None:
    ical, _ = parse_both(build([make_event(alarm_minutes=minutes)]))
    assert not list(vevents(ical)[0].walk("VALARM"))


# --- feeds ---------------------------------------------------------------------------


def test_feed_has_no_method_no_attendees_a_name_and_every_session() -> None:
    events = [
        make_event("jamsa", start="2025-10-16 09:00"),
        make_event("aanekoski", start="2025-10-23 13:00"),
        make_event("forum", start="2025-11-13 09:00"),
    ]
    raw = build(events, method=None, name="Hyte-neuvottelut 2025: Jämsä, Keuruu; Multia")
    ical, vcal = parse_both(raw)
    assert "METHOD" not in ical
    assert not hasattr(vcal, "method")
    assert str(ical["X-WR-CALNAME"]) == "Hyte-neuvottelut 2025: Jämsä, Keuruu; Multia"
    assert str(ical["X-WR-TIMEZONE"]) == "Europe/Helsinki"
    assert [str(e["UID"]) for e in vevents(ical)] == [e.uid for e in events]
    assert all("ATTENDEE" not in e for e in vevents(ical))
    assert len(list(ical.walk("VTIMEZONE"))) == 1
    assert len(vcal.vevent_list) == 3
    starts = sorted(e.decoded("DTSTART").astimezone(UTC) for e in vevents(ical))
    assert starts == [
        datetime(2025, 10, 16, 6, 0, tzinfo=UTC),
        datetime(2025, 10, 23, 10, 0, tzinfo=UTC),
        datetime(2025, 11, 13, 7, 0, tzinfo=UTC),
    ]


def test_empty_feed_is_still_a_valid_calendar() -> None:
    ical, vcal = parse_both(build([], method=None, name="Tyhjä"))
    assert vevents(ical) == []
    assert not list(ical.walk("VTIMEZONE"))
    assert vcal.prodid.value
