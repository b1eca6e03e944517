"""Invitations as participants receive them: REQUEST, update, CANCEL, reminders, once each."""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from html import unescape
from pathlib import Path

import icalendar
import pytest
import vobject
import yaml
from conftest import helsinki, load_copy, on_the_wire
from sqlalchemy import select

from hytetu import db, phases
from hytetu.mail import AUTOMATIC_REPLIES

FIRST_INVITES = helsinki("2025-10-02 07:00")  # 21 days before 23.10.2025


def _messages(out: Path) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(p.read_bytes(), policy=policy.default)  # type: ignore[misc]
        for p in sorted((out / "outbox").glob("*.eml"))
    ]


def _calendar_part(msg: email.message.EmailMessage) -> icalendar.Calendar:
    for part in msg.walk():
        if part.get_content_type() == "text/calendar" and not part.get_filename():
            return icalendar.Calendar.from_ical(part.get_content())
    raise AssertionError("no text/calendar alternative")


def test_first_invitations_reach_the_first_group_only(loaded: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = phases.run_invitations(FIRST_INVITES, out, loaded)
    messages = _messages(out)
    assert report.did["requests"] == len(messages) == report.sent > 0
    for msg in messages:
        assert msg["Subject"].startswith("Kutsu: Jämsä, Keuruu, Multia ja Petäjävesi 23.10.2025")
        cal = _calendar_part(msg)
        assert cal["METHOD"] == "REQUEST"
        event = cal.walk("VEVENT")[0]
        assert event["SEQUENCE"] == 0
        attendees = [str(a).removeprefix("mailto:") for a in event.get("ATTENDEE")]
        assert msg["To"].addresses[0].addr_spec in attendees
        vobject.readOne(cal.to_ical().decode()).validate()
    recipients = {m["To"].addresses[0].addr_spec for m in messages}
    assert any(r.endswith("@jamsa.example") for r in recipients)
    assert not any(r.endswith("@joutsa.example") for r in recipients)


def test_rerun_with_nothing_changed_sends_nothing(loaded: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    phases.run_invitations(FIRST_INVITES, out, loaded)
    again = phases.run_invitations(FIRST_INVITES, out, loaded)
    assert again.sent == 0
    assert again.did == {"requests": 0, "updates": 0, "cancels": 0, "reminders": 0}
    assert phases.due_phases(FIRST_INVITES, loaded) == []


def test_moved_session_is_updated_for_its_participants_only(
    loaded: str, example: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    phases.run_invitations(helsinki("2025-10-09 07:00"), out, loaded)  # two groups invited
    before = {p.name for p in (out / "outbox").glob("*.eml")}
    cycle = (example / "cycle.yaml").read_text(encoding="utf-8")
    cycle = cycle.replace("2025-10-30T09:00:00+02:00", "2025-10-30T10:00:00+02:00")
    (example / "cycle.yaml").write_text(cycle, encoding="utf-8")
    phases.load(example, loaded)

    report = phases.run_invitations(helsinki("2025-10-09 08:00"), out, loaded)
    new = [
        email.message_from_bytes(p.read_bytes(), policy=policy.default)
        for p in sorted((out / "outbox").glob("*.eml"))
        if p.name not in before
    ]
    assert report.did["updates"] == len(new) > 0
    assert report.did["requests"] == 0
    for msg in new:
        assert msg["Subject"].startswith("Muuttunut: Joutsa")
        event = _calendar_part(msg).walk("VEVENT")[0]
        assert event["SEQUENCE"] == 1
        assert event["UID"].endswith("2025-10-30-joutsa@hyvaks.example")
        # 10:00 in Helsinki winter time is 08:00 UTC.
        assert event.decoded("DTSTART").astimezone(helsinki("2025-01-01").tzinfo).hour == 10


def test_removed_contact_and_cancelled_session_get_cancel(
    loaded: str, example: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    phases.run_invitations(FIRST_INVITES, out, loaded)
    region = yaml.safe_load((example / "region.yaml").read_text(encoding="utf-8"))
    jamsa = next(m for m in region["municipalities"] if m["id"] == "jamsa")
    removed = jamsa["contacts"].pop(0)["email"]
    (example / "region.yaml").write_text(yaml.safe_dump(region, allow_unicode=True), "utf-8")
    phases.load(example, loaded)
    before = {p.name for p in (out / "outbox").glob("*.eml")}

    report = phases.run_invitations(helsinki("2025-10-02 08:00"), out, loaded)
    assert report.did["cancels"] == 1
    new = [p for p in (out / "outbox").glob("*.eml") if p.name not in before]
    msg = email.message_from_bytes(new[0].read_bytes(), policy=policy.default)
    assert msg["To"].addresses[0].addr_spec == removed
    cal = _calendar_part(msg)
    assert cal["METHOD"] == "CANCEL"
    # an uninvite: no STATUS (RFC 5546 3.2.5), the SEQUENCE everyone else has (0)
    uninvite = cal.walk("VEVENT")[0]
    assert "STATUS" not in uninvite
    assert uninvite["SEQUENCE"] == 0
    assert [str(a) for a in _list(uninvite.get("ATTENDEE"))] == [f"mailto:{removed}"]
    vevent = vobject.readOne(cal.to_ical().decode()).vevent
    assert not hasattr(vevent, "status") and int(vevent.sequence.value) == 0
    others = [m for m in _messages(out) if m["To"].addresses[0].addr_spec != removed]
    assert {_calendar_part(m).walk("VEVENT")[0]["SEQUENCE"] for m in others} == {0}

    # Now cancel the whole session: everyone still invited gets CANCEL.
    cycle = yaml.safe_load((example / "cycle.yaml").read_text(encoding="utf-8"))
    for s in cycle["sessions"]:
        if s["id"] == "2025-10-23-jamsa":
            s["status"] = "cancelled"
    (example / "cycle.yaml").write_text(yaml.safe_dump(cycle, allow_unicode=True), "utf-8")
    phases.load(example, loaded)
    before = {p.name for p in (out / "outbox").glob("*.eml")}
    report = phases.run_invitations(helsinki("2025-10-02 09:00"), out, loaded)
    assert report.did["cancels"] > 0
    assert report.did["requests"] == report.did["updates"] == 0
    for path in (out / "outbox").glob("*.eml"):
        if path.name not in before:  # the whole session: STATUS:CANCELLED, SEQUENCE up
            event = _calendar_part(on_the_wire(path.read_bytes())).walk("VEVENT")[0]
            assert (event["STATUS"], event["SEQUENCE"]) == ("CANCELLED", 1)
    assert phases.run_invitations(helsinki("2025-10-02 10:00"), out, loaded).sent == 0


def _list(value: object) -> list:
    return value if isinstance(value, list) else [value]


def test_a_removed_attendee_invited_again_gets_a_new_request(
    loaded: str, example: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    phases.run_invitations(FIRST_INVITES, out, loaded)
    original = (example / "region.yaml").read_text(encoding="utf-8")
    region = yaml.safe_load(original)
    jamsa = next(m for m in region["municipalities"] if m["id"] == "jamsa")
    removed = jamsa["contacts"].pop(0)["email"]
    (example / "region.yaml").write_text(yaml.safe_dump(region, allow_unicode=True), "utf-8")
    phases.load(example, loaded)
    assert phases.run_invitations(helsinki("2025-10-02 08:00"), out, loaded).did["cancels"] == 1
    (example / "region.yaml").write_text(original, "utf-8")
    phases.load(example, loaded)

    before = {p.name for p in (out / "outbox").glob("*.eml")}
    report = phases.run_invitations(helsinki("2025-10-03 08:00"), out, loaded)
    assert report.did["updates"] == report.sent == 1
    (path,) = [p for p in (out / "outbox").glob("*.eml") if p.name not in before]
    msg = on_the_wire(path.read_bytes())
    assert msg["To"].addresses[0].addr_spec == removed
    cal = _calendar_part(msg)
    event = cal.walk("VEVENT")[0]
    assert (cal["METHOD"], event["STATUS"], event["SEQUENCE"]) == ("REQUEST", "CONFIRMED", 0)
    assert event.decoded("DTSTAMP") == helsinki("2025-10-03 08:00")  # later than the CANCEL
    assert phases.run_invitations(helsinki("2025-10-03 09:00"), out, loaded).sent == 0


def test_reminder_is_sent_once_a_week_before(loaded: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    phases.run_invitations(FIRST_INVITES, out, loaded)
    week_before = helsinki("2025-10-16 07:00")
    first = phases.run_invitations(week_before, out, loaded)
    assert first.did["reminders"] > 0
    assert phases.run_invitations(helsinki("2025-10-17 07:00"), out, loaded).did["reminders"] == 0


def test_feeds_are_valid_calendars(loaded: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    phases.run_invitations(FIRST_INVITES, out, loaded)
    feeds = sorted((out / "calendars").glob("*.ics"))
    assert len(feeds) == 7  # one per group and one for the cycle
    whole = next(f for f in feeds if f.name == "2025-kaikki.ics")
    cal = icalendar.Calendar.from_ical(whole.read_bytes())
    assert len(cal.walk("VEVENT")) == 7
    assert "METHOD" not in cal
    for f in feeds:
        vobject.readOne(f.read_text(encoding="utf-8")).validate()


# --- every message of the autumn, as the demo sends them ---------------------------------


@pytest.fixture(scope="module")
def autumn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The example run from the first invitations to the feedback reminder (no rendering):
    every invitation, update, reminder and feedback notice the demo sends."""
    from hytetu.simulate import run_ticks

    base = tmp_path_factory.mktemp("autumn")
    url = load_copy(base)
    run_ticks(url, base / "out", until=helsinki("2025-12-14 00:00"))
    yield url, base / "out"
    db.dispose(url)


def _sent(url: str) -> list[tuple[str, str, bytes]]:
    with db.session_scope(url) as s:
        rows = s.scalars(select(db.OutgoingMessage).order_by(db.OutgoingMessage.id))
        return [(m.purpose, m.subject, m.raw) for m in rows]


def test_every_message_is_7bit_clean_and_reads_back_as_written(
    autumn: tuple[str, Path],
) -> None:
    url, out = autumn
    sent = _sent(url)
    assert {purpose for purpose, _, _ in sent} == {
        "invitation",
        "reminder",
        "feedback_open",
        "feedback_reminder",
    }
    files = sorted((out / "outbox").glob("*.eml"))
    assert len(files) == len(sent)
    assert {f.read_bytes() for f in files} == {raw for _, _, raw in sent}
    for purpose, subject, raw in sent:
        msg = on_the_wire(raw)  # 7-bit, no empty encoded word, strict parse
        assert msg["Subject"] == subject  # the text the template gave, word for word
        auto_submitted, suppress = AUTOMATIC_REPLIES[purpose]
        assert msg["Auto-Submitted"] == auto_submitted
        assert msg["X-Auto-Response-Suppress"] == suppress
        for part in msg.walk():
            if part.get_content_maintype() == "text":
                text = part.get_content()
                assert "=C3=" not in text and "\ufffd" not in text  # decoded, valid UTF-8
        calendars = [
            p.get_payload(decode=True)
            for p in msg.walk()
            if p.get_content_type() == "text/calendar"
        ]
        assert len(calendars) == (2 if purpose == "invitation" else 0)
        if calendars:
            assert calendars[0] == calendars[1]  # the inline part and kutsu.ics
            icalendar.Calendar.from_ical(calendars[0])
            vobject.readOne(calendars[0].decode("utf-8")).validate()


def test_no_subject_of_the_autumn_has_an_empty_encoded_word(autumn: tuple[str, Path]) -> None:
    """The reminders' subjects are the ones the email package's own folder broke."""
    subjects = [(purpose, subject) for purpose, subject, _ in _sent(autumn[0])]

    def stdlib_fold(subject: str) -> str:
        plain = EmailMessage(policy=policy.SMTP)
        plain["Subject"] = subject
        return plain.as_string()

    broken = [subject for _, subject in subjects if "=?utf-8?q??=" in stdlib_fold(subject)]
    assert len(broken) >= 11  # the data meets the bug: this test can fail
    for _, subject in subjects:
        assert on_the_wire(_raw_with_subject(subject))["Subject"] == subject


def _raw_with_subject(subject: str) -> bytes:
    from hytetu.mail import build_message

    return build_message(
        sender=("Keski-Suomen hyvinvointialue", "hyte@hyvaks.example"),
        to=[("Åsa Öhman", "asa.ohman@keuruu.example")],
        subject=subject,
        text="x\n",
        message_id="<x.hytetu@hyvaks.example>",
        date=helsinki("2025-10-02 07:00"),
        purpose="reminder",
    ).as_bytes()


def test_invitations_of_online_sessions_have_conference_and_an_alarm(
    autumn: tuple[str, Path],
) -> None:
    requests = 0
    for purpose, _, raw in _sent(autumn[0]):
        if purpose != "invitation":
            continue
        cal = _calendar_part(on_the_wire(raw))
        event = cal.walk("VEVENT")[0]
        vevent = vobject.readOne(cal.to_ical().decode()).vevent
        if cal["METHOD"] == "REQUEST":
            requests += 1
            assert str(event["CONFERENCE"]) == str(event["URL"])
            assert vevent.conference.params["FEATURE"] == ["AUDIO", "VIDEO"]
            (alarm,) = event.walk("VALARM")
            assert alarm.decoded("TRIGGER") == timedelta(minutes=-15)  # the default
            assert vevent.valarm.action.value == "DISPLAY"
    assert requests > 0


def test_the_cycles_alarm_setting_reaches_the_invitations(
    example: Path, sqlite_url: str, tmp_path: Path
) -> None:
    from conftest import edit

    edit(
        example,
        "cycle.yaml",
        "  invitation_lead_days: 21\n",
        "  invitation_lead_days: 21\n  session_alarm_minutes: 45\n",
    )
    phases.load(example, sqlite_url)
    phases.run_invitations(FIRST_INVITES, tmp_path / "a", sqlite_url)
    msg = _messages(tmp_path / "a")[0]
    (alarm,) = _calendar_part(msg).walk("VEVENT")[0].walk("VALARM")
    assert alarm.decoded("TRIGGER") == timedelta(minutes=-45)

    edit(example, "cycle.yaml", "session_alarm_minutes: 45", "session_alarm_minutes: 0")
    phases.load(example, sqlite_url)
    feeds = sorted((tmp_path / "a" / "calendars").glob("*.ics"))
    assert all(icalendar.Calendar.from_ical(f.read_bytes()).walk("VALARM") for f in feeds)
    phases.run_invitations(FIRST_INVITES, tmp_path / "b", sqlite_url)
    for f in sorted((tmp_path / "b" / "calendars").glob("*.ics")):
        assert not icalendar.Calendar.from_ical(f.read_bytes()).walk("VALARM")


def test_plain_html_and_description_say_the_same(loaded: str, tmp_path: Path) -> None:
    """The default texts (no ``texts:`` in cycle.yaml) in all three parts: Outlook shows
    the HTML, other clients the plain text, calendars the DESCRIPTION."""
    out = tmp_path / "out"
    phases.run_invitations(FIRST_INVITES, out, loaded)
    msg = email.message_from_bytes(
        sorted((out / "outbox").glob("*.eml"))[0].read_bytes(), policy=policy.strict
    )
    assert isinstance(msg, email.message.EmailMessage)
    html = msg.get_body(("html",)).get_content()
    parts = {
        "plain": msg.get_body(("plain",)).get_content(),
        "html": unescape(re.sub(r"<[^>]+>", " ", html)),
        "DESCRIPTION": str(_calendar_part(msg).walk("VEVENT")[0]["DESCRIPTION"]),
    }
    for name, text in parts.items():
        text = " ".join(text.split())
        for needle in (
            "kutsuu sinut hyvinvoinnin, terveyden ja turvallisuuden edistämisen neuvotteluun "
            "(laki sosiaali- ja terveydenhuollon järjestämisestä 612/2021, 6 § ja 7 §)",
            "Ohjelma",
            "HYTE-kerroin hyvinvointialueen ja kunnan yhdyspinnalla",
            "Keskustelun yhteenveto ja alueellisen hyvinvointisuunnitelman jatkovalmistelu",
            "Iäkkäiden toimintakyky vahvistuu, kaatumistapaturmat ja lonkkamurtumat vähenevät.",
            "Lisätietoja: Hyte-koordinaattori Sanna Lahtinen, puh. +358 40 000 1234",
        ):
            assert needle in text, f"{name}: {needle!r}"


def test_reminders_left_pending_by_a_crash_are_skipped_once_the_session_began(
    loaded: str, tmp_path: Path
) -> None:
    """The reminders of the 23.10. session were queued on 16.10. and the run died before
    sending them; the next tick runs on 24.10.: they are marked skipped with the reason,
    not sent a day late, and the rest of the queue still goes."""
    from sqlalchemy import select

    from hytetu import db, invitations
    from hytetu.state import cycle_view

    out = tmp_path / "out"
    phases.run_invitations(helsinki("2025-10-02 07:00"), out, loaded)
    with db.session_scope(loaded) as s:  # queued, then the process was killed
        result = invitations.send_invitations(cycle_view(s), helsinki("2025-10-16 07:00"))
    assert result.reminders > 0
    before = {p.name for p in (out / "outbox").glob("*.eml")}
    report = phases.run_invitations(helsinki("2025-10-24 07:00"), out, loaded)
    assert len(report.warnings) == result.reminders
    assert all("not sent: the session began at 23.10.2025 09:00" in w for w in report.warnings)
    with db.session_scope(loaded) as s:
        first = s.scalars(
            select(db.MeetingSession).filter_by(start=helsinki("2025-10-23 09:00"))
        ).one()
        rows = s.scalars(select(db.OutgoingMessage).filter_by(purpose="reminder")).all()
        of_first = [r for r in rows if f":{first.key}:" in r.dedupe_key]
        assert len(of_first) == result.reminders
        assert {r.state for r in of_first} == {"skipped"}
        assert all(r.last_error and "session began" in r.last_error for r in of_first)
        # the reminders due on 24.10. (for the 30.10. session) are sent as usual
        assert {r.state for r in rows if r not in of_first} <= {"sent"}
        skipped_ids = {r.message_id for r in of_first}
    new = [p for p in (out / "outbox").glob("*.eml") if p.name not in before]
    assert report.sent == len(new) and new
    for p in new:
        message = email.message_from_bytes(p.read_bytes(), policy=policy.strict)
        assert message["message-id"] not in skipped_ids
