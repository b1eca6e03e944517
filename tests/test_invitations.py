"""Invitations as participants receive them: REQUEST, update, CANCEL, reminders, once each."""

from __future__ import annotations

import email
import re
from email import policy
from html import unescape
from pathlib import Path

import icalendar
import vobject
import yaml
from conftest import helsinki

from hytetu import phases

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
    assert cal.walk("VEVENT")[0]["STATUS"] == "CANCELLED"

    # Now cancel the whole session: everyone still invited gets CANCEL.
    cycle = yaml.safe_load((example / "cycle.yaml").read_text(encoding="utf-8"))
    for s in cycle["sessions"]:
        if s["id"] == "2025-10-23-jamsa":
            s["status"] = "cancelled"
    (example / "cycle.yaml").write_text(yaml.safe_dump(cycle, allow_unicode=True), "utf-8")
    phases.load(example, loaded)
    report = phases.run_invitations(helsinki("2025-10-02 09:00"), out, loaded)
    assert report.did["cancels"] > 0
    assert report.did["requests"] == report.did["updates"] == 0
    assert phases.run_invitations(helsinki("2025-10-02 10:00"), out, loaded).sent == 0


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
