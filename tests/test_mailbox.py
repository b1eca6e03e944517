"""What comes back to the county's mailbox, read through the file transport's FolderReader:
RSVPs from Outlook, Google and Thunderbird, Postfix, Gmail and Exchange bounces, a delay
report, registry receipts in several wordings, out-of-office replies and hostile mail.

The samples are the templates in tests/data/mail, filled (hytetu.simulate.fill_sample)
with the Message-IDs and UIDs of the example year that the fixture below sends.
"""

from __future__ import annotations

import email
import json
import shutil
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest
from conftest import EXAMPLE, copy_sqlite, edit, helsinki
from sqlalchemy import func, select
from test_dispatch import copy_database

from hytetu import db, invitations, memos, phases
from hytetu.dispatch import report_rows
from hytetu.errors import MailboxError
from hytetu.inbox import FolderReader, IncomingMail
from hytetu.mailbox import attendance, counts, read_mailbox
from hytetu.replies import classify, diary_number
from hytetu.simulate import SAMPLES, fill_sample, invitation_values, letter_values, run_ticks
from hytetu.state import cycle_view

pytest_plugins = ["dovecot", "graph_server", "ews_server"]  # the real servers' fixtures

INVITED = "2025-10-10 07:00"  # invitations out, no reminder yet (the first is on 16.10.)
DISPATCHED = "2025-12-22 07:00"  # every memo approved and sent to the registries
SESSION = "2025-10-23-jamsa"


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """The example year as SQLite files: invited (before the first reminder) and
    dispatched (every memo approved and its letters sent through the file outbox)."""
    base = tmp_path_factory.mktemp("mailbox-year")
    shutil.copytree(EXAMPLE, base / "config")
    url = f"sqlite:///{base / 'hytetu.db'}"
    phases.load(base / "config", url)
    out = base / "out"
    run_ticks(url, out, until=helsinki(INVITED))
    copy_sqlite(url, base / "invited.db")
    run_ticks(url, out)
    with db.session_scope(url) as s:
        view = cycle_view(s)
        for v in memos.latest_versions(view):
            memos.decide(view, v.id, approve=True, actor="testi", at=helsinki("2025-12-21 12:00"))
    phases.run_phase("dispatch", helsinki(DISPATCHED), out, url)
    db.dispose(url)
    yield {"invited": base / "invited.db", "dispatched": base / "hytetu.db", "config": base}


def _copy(snapshot: Path, db_url: str) -> str:
    if db_url.startswith("sqlite"):
        copy_sqlite(snapshot, Path(db_url.removeprefix("sqlite:///")))
    else:
        copy_database(f"sqlite:///{snapshot}", db_url)
    return db_url


@pytest.fixture
def dispatched(snapshots: dict[str, Path], db_url: str) -> str:
    """The dispatched year, on SQLite and on PostgreSQL."""
    return _copy(snapshots["dispatched"], db_url)


@pytest.fixture
def invited(snapshots: dict[str, Path], db_url: str) -> str:
    return _copy(snapshots["invited"], db_url)


def _invitees(url: str, session_key: str = SESSION) -> list[str]:
    with db.session_scope(url) as s:
        view = cycle_view(s)
        session = next(x for x in view.sessions() if x.key == session_key)
        return [c.email for c in view.invitees(session)]


def _rsvp(url: str, template: str, address: str, partstat: str, at: str, text: str = "") -> bytes:
    with db.session_scope(url) as s:
        values = invitation_values(cycle_view(s), SESSION, address, partstat, helsinki(at), text)
    return fill_sample(template, values)


def _letters(url: str) -> list[db.OutgoingMessage]:
    with db.session_scope(url) as s:
        return list(
            s.scalars(
                select(db.OutgoingMessage).filter_by(purpose="memo").order_by(db.OutgoingMessage.id)
            )
        )


def _about_letter(url: str, template: str, row_id: int, at: str, reference: str = "") -> bytes:
    with db.session_scope(url) as s:
        return fill_sample(template, letter_values(cycle_view(s), row_id, helsinki(at), reference))


def _reader(tmp_path: Path, mails: dict[str, bytes]) -> FolderReader:
    inbox = tmp_path / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    for name, raw in mails.items():
        (inbox / name).write_bytes(raw)
    return FolderReader(inbox)


def _region_id(url: str) -> int:
    with db.session_scope(url) as s:
        return cycle_view(s).region.id


# --- classification alone: each sample, no database -------------------------------------

DUMMY = {
    "attendee": "anna.virtanen@kunta.example",
    "attendee_name": "Anna Virtanen",
    "organizer": "hyte@hyvaks.example",
    "organizer_name": "Keski-Suomen hyvinvointialue",
    "subject": "Kutsu: HYTE-neuvottelu 23.10.2025",
    "subject_q": "=?utf-8?q?Kutsu=3A_HYTE-neuvottelu_23=2E10=2E2025?=",
    "date": "Thu, 02 Oct 2025 09:15:00 +0300",
    "message_id": "<0123456789abcdef.hytetu@hyvaks.example>",
    "uid": "hytetu-2025-jamsa@hyvaks.example",
    "dtstart": "20251023T090000",
    "dtend": "20251023T120000",
    "dtstart_utc": "20251023T060000Z",
    "dtend_utc": "20251023T090000Z",
    "dtstamp": "20251002T061500Z",
    "sequence": "0",
    "calendar_base64": "",
    "text_base64": "",
    "county_domain": "hyvaks.example",
    "recipient": "kirjaamo@jamsa.example",
    "recipient_name": "Kirjaamo",
    "recipient_domain": "jamsa.example",
    "registry": "kirjaamo@jamsa.example",
    "registry_domain": "jamsa.example",
    "reference": "JAM/312/00.04.01/2026",
    "reference_slug": "JAM31200040120 26",
    "received_fi": "22.12.2025 klo 9.05",
}

KINDS = {
    "rsvp-outlook-accept.eml": ("rsvp", "ACCEPTED"),
    "rsvp-google-tentative.eml": ("rsvp", "TENTATIVE"),
    "rsvp-thunderbird-accept.eml": ("rsvp", "ACCEPTED"),
    "bounce-postfix.eml": ("bounce", None),
    "bounce-gmail.eml": ("bounce", None),
    "bounce-exchange-ndr.eml": ("bounce", None),
    "delayed-postfix.eml": ("delayed", None),
    "receipt-kirjaamo-fi.eml": ("auto_reply", None),  # a receipt once its sender is known
    "receipt-kirjaamo-asianumero.eml": ("auto_reply", None),
    "receipt-registratur-sv.eml": ("auto_reply", None),
    "receipt-kirjaamo-dnro.eml": ("other", None),  # a registrar's own reply, not automatic
    "ooo-outlook-fi.eml": ("auto_reply", None),
    "ooo-sv-franvaro.eml": ("auto_reply", None),
    "other-human-reply.eml": ("other", None),
}


def test_every_sample_has_an_expected_kind() -> None:
    templates = {p.name for p in SAMPLES.glob("*.eml")}
    assert templates == set(KINDS) | {"rsvp-outlook-decline-fi.eml"}


@pytest.mark.parametrize("name", sorted(KINDS))
def test_each_sample_is_recognised(name: str) -> None:
    kind, partstat = KINDS[name]
    c = classify(fill_sample(name, DUMMY))
    assert c.kind == kind, (name, c)
    if partstat:
        assert [(r.partstat, r.attendee, r.uid) for r in c.replies][:1] == [
            (partstat, DUMMY["attendee"], DUMMY["uid"])
        ]
    if kind in ("bounce", "delayed"):
        assert c.refers_to[0] == DUMMY["message_id"]  # the returned message's own
        (failure,) = c.failures
        assert failure.recipient == "kirjaamo@jamsa.example"
        assert failure.status.startswith("5." if kind == "bounce" else "4.")
    if name.startswith("receipt"):
        assert c.reference == DUMMY["reference"]


@pytest.mark.parametrize(
    ("text", "number"),
    [
        (
            "Asiakirjanne on vastaanotettu ja kirjattu diaarinumerolla JKL/1234/00.01.00/2026.",
            "JKL/1234/00.01.00/2026",
        ),
        ("Asianumero: 2026-00123", "2026-00123"),
        ("Vastaanotettu ja kirjattu, Dnro KEU 45/00.04.01/2026", "KEU 45/00.04.01/2026"),
        ("Asiatunnus: MUU/88/2026", "MUU/88/2026"),
        ("Det har registrerats med diarienummer KRS 2026/118.", "KRS 2026/118"),
        ("Ert ärende har fått dnr 12/2026", "12/2026"),
        ("Kiitos viestistänne, se käsitellään pian.", None),
    ],
)
def test_diary_numbers_as_registries_write_them(text: str, number: str | None) -> None:
    assert diary_number(text) == number


# --- the mailbox read into the database -----------------------------------------------------


def _mix(url: str) -> tuple[dict[str, bytes], list[str], list[db.OutgoingMessage]]:
    """The mailbox after a year: RSVPs from Outlook, Google and Thunderbird, an
    out-of-office, a person's reply, a bounce, a delay report and four registries' receipts
    (MIX_COUNTS), about the dispatched year at ``url``. Returns the mails by file name, the
    invitees of SESSION, and the first six memo letters."""
    people = _invitees(url)
    letters = _letters(url)
    bounced, delayed, *received = letters[:6]
    mails = {
        "01.eml": _rsvp(url, "rsvp-outlook-accept.eml", people[0], "ACCEPTED", "2025-10-02 09:00"),
        "02.eml": _rsvp(
            url, "rsvp-outlook-decline-fi.eml", people[1], "DECLINED", "2025-10-02 10:00"
        ),
        "03.eml": _rsvp(
            url, "rsvp-google-tentative.eml", people[2], "TENTATIVE", "2025-10-03 08:00"
        ),
        "04.eml": _rsvp(
            url, "rsvp-thunderbird-accept.eml", people[3], "ACCEPTED", "2025-10-03 09:00"
        ),
        "05.eml": _rsvp(url, "ooo-outlook-fi.eml", people[4], "", "2025-10-02 07:05", "Lomalla."),
        "06.eml": _rsvp(url, "other-human-reply.eml", people[5], "", "2025-10-04 12:00"),
        "10.eml": _about_letter(url, "bounce-postfix.eml", bounced.id, "2025-12-22 07:02"),
        "11.eml": _about_letter(url, "delayed-postfix.eml", delayed.id, "2025-12-22 11:00"),
        "12.eml": _about_letter(
            url,
            "receipt-kirjaamo-fi.eml",
            received[0].id,
            "2025-12-22 07:10",
            "JAM/312/00.04.01/2026",
        ),
        "13.eml": _about_letter(
            url, "receipt-kirjaamo-asianumero.eml", received[1].id, "2025-12-22 08:00", "2026-00123"
        ),
        "14.eml": _about_letter(
            url, "receipt-kirjaamo-dnro.eml", received[2].id, "2025-12-23 10:00", "KEU 45/2026"
        ),
        "15.eml": _about_letter(
            url, "receipt-registratur-sv.eml", received[3].id, "2025-12-22 09:00", "KRS 2026/118"
        ),
    }
    return mails, people, letters[:6]


MIX_COUNTS = {"rsvp": 4, "auto_reply": 1, "other": 1, "bounce": 1, "delayed": 1, "receipt": 4}


def test_rsvps_bounces_receipts_and_auto_replies_are_each_handled_once(
    dispatched: str, tmp_path: Path
) -> None:
    url = dispatched
    mails, people, letters = _mix(url)
    bounced, delayed, *received = letters
    reader = _reader(tmp_path, mails)
    report = read_mailbox(url, reader, _region_id(url))
    assert dict(report.counts) == MIX_COUNTS
    assert not report.errors
    # Handled mail moved aside, never deleted; the human reply left where it was.
    assert sorted(p.name for p in (tmp_path / "inbox").glob("*.eml")) == ["06.eml"]
    assert len(list((tmp_path / "inbox" / "handled").glob("*.eml"))) == 11

    with db.session_scope(url) as s:
        view = cycle_view(s)
        answers = {
            c.email: r.partstat
            for r, c in s.execute(
                select(db.Rsvp, db.Contact).join(db.Contact, db.Contact.id == db.Rsvp.contact_id)
            ).all()
        }
        assert answers == {
            people[0]: "ACCEPTED",
            people[1]: "DECLINED",
            people[2]: "TENTATIVE",
            people[3]: "ACCEPTED",
        }
        rows = report_rows(s, view.cycle.id)
        by_id = {int(r["row_id"]): r for r in rows}
        assert by_id[bounced.id]["state"] == "bounced"
        assert (
            "5.1.1" in by_id[bounced.id]["error"] and "User unknown" in by_id[bounced.id]["error"]
        )
        assert by_id[delayed.id]["state"] == "sent"  # a delay is not a failure, but noted
        assert s.get_one(db.OutgoingMessage, delayed.id).delayed_at is not None
        assert [by_id[m.id]["registry_reference"] for m in received] == [
            "JAM/312/00.04.01/2026",
            "2026-00123",
            "KEU 45/2026",
            "KRS 2026/118",
        ]
        assert all(by_id[m.id]["receipt_at"] for m in received)
        # The out-of-office reply counts nowhere: not a receipt, not an answer.
        assert people[4] not in answers
        table = attendance(s, view.cycle.id)
        session_rows = [r for r in table if r["session"] == SESSION]
        assert sum(r["accepted"] for r in session_rows) == 2
        assert sum(r["declined"] for r in session_rows) == 1
        assert sum(r["tentative"] for r in session_rows) == 1
        assert sum(r["no_answer"] for r in session_rows) == len(people) - 4
        before = s.scalar(select(func.count()).select_from(db.IncomingMessage))

    # A re-run handles nothing twice: the one left is skipped by its key.
    again = read_mailbox(url, FolderReader(tmp_path / "inbox"), _region_id(url))
    assert again.read == 0 and again.skipped == 1
    with db.session_scope(url) as s:
        assert s.scalar(select(func.count()).select_from(db.IncomingMessage)) == before
        assert counts(s)["other"] == 1


class CrashingReader(FolderReader):
    """Dies after storing a message and before marking it (a crash, a dropped link)."""

    def mark_handled(self, key: str) -> None:
        raise ConnectionResetError("the server went away")


def test_a_crash_between_handling_and_marking_marks_on_the_rerun_without_handling_again(
    dispatched: str, tmp_path: Path
) -> None:
    url = dispatched
    people = _invitees(url)
    reader = _reader(
        tmp_path,
        {"a.eml": _rsvp(url, "rsvp-outlook-accept.eml", people[0], "ACCEPTED", "2025-10-02 09:00")},
    )
    first = read_mailbox(url, CrashingReader(reader.folder), _region_id(url))
    assert first.counts["rsvp"] == 1 and "not marked handled" in first.errors[0]
    assert (tmp_path / "inbox" / "a.eml").exists()
    with db.session_scope(url) as s:
        (answer,) = s.scalars(select(db.Rsvp)).all()
        first_incoming = answer.incoming_message_id
    second = read_mailbox(url, FolderReader(reader.folder), _region_id(url))
    assert second.read == 0 and second.remarked == 1
    assert not (tmp_path / "inbox" / "a.eml").exists()
    with db.session_scope(url) as s:
        (answer,) = s.scalars(select(db.Rsvp)).all()
        assert answer.incoming_message_id == first_incoming
        assert s.scalar(select(func.count()).select_from(db.IncomingMessage)) == 1


def test_the_latest_answer_wins_whatever_order_the_mailbox_gives(
    dispatched: str, tmp_path: Path
) -> None:
    url = dispatched
    person = _invitees(url)[0]
    later = _rsvp(url, "rsvp-outlook-decline-fi.eml", person, "DECLINED", "2025-10-15 08:00")
    earlier = _rsvp(url, "rsvp-outlook-accept.eml", person, "ACCEPTED", "2025-10-02 09:00")
    read_mailbox(url, _reader(tmp_path, {"1.eml": later, "2.eml": earlier}), _region_id(url))
    with db.session_scope(url) as s:
        (answer,) = s.scalars(select(db.Rsvp)).all()
        assert answer.partstat == "DECLINED"


def test_hostile_mail_is_recorded_and_skipped_and_the_rest_still_read(
    dispatched: str, tmp_path: Path
) -> None:
    url = dispatched
    person = _invitees(url)[0]
    good = _rsvp(url, "rsvp-thunderbird-accept.eml", person, "ACCEPTED", "2025-10-03 09:00")
    nested = b"Content-Type: text/plain\r\n\r\nbottom\r\n"
    for depth in range(400):
        nested = (
            f"Message-ID: <bomb{depth}@evil.example>\r\n".encode()
            + b"Content-Type: message/rfc822\r\n\r\n"
            + nested
        )
    bad_ics = (
        b"From: x@evil.example\r\nMessage-ID: <badics@evil.example>\r\n"
        b"Content-Type: text/calendar; method=REPLY\r\n\r\nBEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n"
        b"ATTENDEE;PARTSTAT=ACCEPTED:mailto:x@evil.example\r\nDTSTAMP:notadate\r\n"
    )
    html_only = (
        b"From: Someone <someone@evil.example>\r\nMessage-ID: <html@evil.example>\r\n"
        b"Subject: Diaarinumero 1\r\nContent-Type: text/html\r\n\r\n"
        b'<img src="https://evil.example/track.gif"><a href="https://evil.example">x</a>\r\n'
    )
    broken = (
        b"From: \xff\xfe <@@>\r\nMessage-ID: <broken@evil.example>\r\nContent-Type: "
        b'multipart/mixed; boundary="never"\r\n\r\n--nope\r\n\x00\x01garbage'
    )
    huge = b"From: big@evil.example\r\n\r\n" + b"x" * (10 * 1024 * 1024 + 1)
    mails = {
        "1-nested.eml": nested,
        "2-badics.eml": bad_ics,
        "3-html.eml": html_only,
        "4-broken.eml": broken,
        "5-huge.eml": huge,
        "9-good.eml": good,
    }
    report = read_mailbox(url, _reader(tmp_path, mails), _region_id(url))
    assert report.counts["rsvp"] == 1  # the good one, after every bad one
    assert report.counts["unreadable"] + report.counts["other"] == 4  # the huge one not fetched
    with db.session_scope(url) as s:
        stored = {m.key: m for m in s.scalars(select(db.IncomingMessage))}
        assert "5-huge.eml" not in stored
        assert stored["2-badics.eml"].kind == "unreadable"
        assert stored["2-badics.eml"].message_id == "<badics@evil.example>"
        assert "calendar" in stored["2-badics.eml"].detail["error"]
        assert stored["3-html.eml"].kind == "other"  # not a receipt: not from a registry
        assert s.scalar(select(func.count()).select_from(db.Rsvp)) == 1


class DownReader(FolderReader):
    def fetch(self):  # type: ignore[override]
        raise ConnectionRefusedError(111, "Connection refused")
        yield IncomingMail("", b"")  # pragma: no cover


def test_a_mailbox_that_cannot_be_read_is_a_clear_error_of_its_own(
    dispatched: str, tmp_path: Path
) -> None:
    with pytest.raises(MailboxError, match="folder:.*Connection refused") as caught:
        read_mailbox(dispatched, DownReader(tmp_path / "inbox"), _region_id(dispatched))
    assert caught.value.mailbox.startswith("folder:")


# --- what the coordinator does with it --------------------------------------------------------


@pytest.mark.parametrize("remind", ["unanswered", "all"])
def test_reminders_go_to_those_who_have_not_answered_and_never_to_those_who_declined(
    invited: str, tmp_path: Path, remind: str
) -> None:
    url = invited
    people = _invitees(url)
    mails = {
        "1.eml": _rsvp(url, "rsvp-outlook-accept.eml", people[0], "ACCEPTED", "2025-10-02 09:00"),
        "2.eml": _rsvp(
            url, "rsvp-outlook-decline-fi.eml", people[1], "DECLINED", "2025-10-02 10:00"
        ),
        "3.eml": _rsvp(
            url, "rsvp-google-tentative.eml", people[2], "TENTATIVE", "2025-10-03 08:00"
        ),
    }
    read_mailbox(url, _reader(tmp_path, mails), _region_id(url))
    with db.session_scope(url) as s:
        cycle = cycle_view(s).cycle
        cycle.settings = {**cycle.settings, "session_reminders": remind}
    with db.session_scope(url) as s:
        view = cycle_view(s)
        due = invitations.plan_invitations(view, helsinki("2025-10-16 07:00"))
        reminded = {
            a.contact.email for a in due if a.kind == "reminder" and a.session.key == SESSION
        }
    expected = set(people) - {people[1]}
    if remind == "unanswered":
        expected -= {people[0], people[2]}
    assert reminded == expected


def test_a_bounced_letter_fails_dispatch_status_and_a_corrected_address_resends_only_it(
    snapshots: dict[str, Path], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from hytetu.cli import app

    url = copy_sqlite(snapshots["dispatched"], tmp_path / "hytetu.db")
    config = tmp_path / "config"
    shutil.copytree(snapshots["config"] / "config", config)
    with db.session_scope(url) as s:
        s.execute(db.Cycle.__table__.update().values(config_folder=str(config)))
    letters = _letters(url)
    first = letters[0]
    address = first.recipients[0]
    to_same = [m for m in letters if m.recipients[0] == address]
    mails = {
        f"{i}.eml": _about_letter(url, "bounce-exchange-ndr.eml", m.id, "2025-12-22 07:05")
        for i, m in enumerate(to_same)
    }
    mails["r.eml"] = _about_letter(
        url, "receipt-kirjaamo-fi.eml", letters[-1].id, "2025-12-22 07:10", "JKL/1/00.01/2026"
    )
    read_mailbox(url, _reader(tmp_path, mails), _region_id(url))

    runner = CliRunner()
    env = {"HYTETU_DATABASE_URL": url}
    result = runner.invoke(app, ["dispatch", "status", "--csv", str(tmp_path / "s.csv")], env=env)
    assert result.exit_code == 1, result.output
    assert "RESOLVER.ADR.RecipientNotFound" in result.output
    assert "region.yaml: municipalities[" in result.output and "].registry" in result.output
    assert "JKL/1/00.01/2026" in result.output
    assert "JKL/1/00.01/2026" in (tmp_path / "s.csv").read_text(encoding="utf-8")

    # The dispatch phase reports it, and resends nothing while the address is the same.
    out = tmp_path / "out"
    assert "dispatch" in phases.due_phases(helsinki("2025-12-23 07:00"), url)
    report = phases.run_dispatch(helsinki("2025-12-23 07:00"), out, url)
    assert report.sent == 0 and len(report.did["bounced"]) == len(to_same)
    assert "region.yaml" in report.failed[0]

    # The coordinator corrects the address in region.yaml and reloads: only those go again.
    municipality = first.dedupe_key.split(":")[2]
    new = f"kirjaamo.uusi@{municipality}.example"
    edit(config, "region.yaml", f"registry: {address}", f"registry: {new}")
    phases.load(config, url)
    report = phases.run_dispatch(helsinki("2025-12-23 08:00"), out, url)
    assert report.sent == len(to_same) and not report.failed
    after = _letters(url)
    assert len(after) == len(letters) + len(to_same)
    for old, resent in zip(to_same, after[len(letters) :], strict=True):
        assert resent.replaces_id == old.id and resent.recipients == [new]
        msg = email.message_from_bytes(resent.raw, policy=policy.default)
        assert msg["Message-ID"] != old.message_id
        assert msg["In-Reply-To"] == old.message_id
        assert old.message_id in msg["References"]
        assert msg["Subject"] == old.subject
    sent_files = list((out / "outbox").glob("*.eml"))
    assert len(sent_files) == len(to_same)
    result = runner.invoke(app, ["dispatch", "status"], env=env)
    assert result.exit_code == 0, result.output
    # A second run sends nothing more.
    assert phases.run_dispatch(helsinki("2025-12-23 09:00"), out, url).sent == 0
    assert "dispatch" not in phases.due_phases(helsinki("2025-12-24 07:00"), url)


def test_the_tick_reads_the_mailbox_first(snapshots: dict[str, Path], tmp_path: Path) -> None:
    """run_ticks (the in-process tick) reads the inbox before the day's phases."""
    url = copy_sqlite(snapshots["invited"], tmp_path / "hytetu.db")
    person = _invitees(url)[1]
    _reader(
        tmp_path / "out",
        {
            "d.eml": _rsvp(
                url, "rsvp-outlook-decline-fi.eml", person, "DECLINED", "2025-10-11 08:00"
            )
        },
    )
    done = run_ticks(url, tmp_path / "out", until=helsinki("2025-10-16 07:00"))
    assert done[0][1] == "read_mailbox"
    with db.session_scope(url) as s:
        reminders = s.scalars(select(db.OutgoingMessage.dedupe_key).filter_by(purpose="reminder"))
        assert not [k for k in reminders if k.endswith(f":{person}")]


def test_rsvp_command_shows_the_answers_per_organisation(dispatched: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hytetu.cli import app

    url = dispatched
    people = _invitees(url)
    mails = {
        "1.eml": _rsvp(
            url, "rsvp-outlook-decline-fi.eml", people[0], "DECLINED", "2025-10-02 09:00"
        )
    }
    read_mailbox(url, _reader(tmp_path, mails), _region_id(url))
    result = CliRunner().invoke(app, ["rsvp", "--all"], env={"HYTETU_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert "23.10.2025" in result.output and "Jämsä" in result.output
    with db.session_scope(url) as s:
        org = s.scalars(select(db.Contact.org_key).filter_by(email=people[0])).one()
    line = next(x for x in result.output.splitlines()[2:] if x.strip().startswith(org + " "))
    assert line.split()[-2] == "1"  # declined


def test_a_newer_version_sent_to_that_registry_ends_the_old_letters_bounce(
    snapshots: dict[str, Path], tmp_path: Path
) -> None:
    url = copy_sqlite(snapshots["dispatched"], tmp_path / "hytetu.db")
    first = _letters(url)[0]
    bounce = _about_letter(url, "bounce-postfix.eml", first.id, "2025-12-22 07:05")
    read_mailbox(url, _reader(tmp_path, {"b.eml": bounce}), _region_id(url))
    out = tmp_path / "out"
    assert phases.run_dispatch(helsinki("2025-12-22 08:00"), out, url).did["bounced"]
    with db.session_scope(url) as s:  # a corrected memo, approved: version 2
        old = s.get_one(db.MemoVersion, first.memo_version_id)
        s.add(
            db.MemoVersion(
                memo_id=old.memo_id,
                number=old.number + 1,
                content_hash="corrected",
                compilation_id=old.compilation_id,
                html=old.html,
                pdf=old.pdf,
                filename=old.filename.replace(".pdf", "-v2.pdf"),
                annex_filename=old.annex_filename,
                annex_pdf=old.annex_pdf,
                annex_csv=old.annex_csv,
                status="approved",
            )
        )
    report = phases.run_dispatch(helsinki("2025-12-23 08:00"), out, url)
    assert report.sent > 0 and not report.did["bounced"]
    assert "dispatch" not in phases.due_phases(helsinki("2025-12-24 07:00"), url)


# --- what the coordinator sees in the Prefect UI ---------------------------------------


@pytest.mark.prefect
def test_the_flows_leave_the_attendance_and_the_bounce_for_the_coordinator(
    prefect_api: None, snapshots: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through real flow runs on a Prefect API: the read-mailbox flow's attendance
    artifact counts an answer before the session, and the dispatch flow's failure artifact
    tells the coordinator which field of which file to fix after a bounce."""
    from conftest import prefect_artifacts

    from flows.dispatch import dispatch_memos
    from flows.read_mailbox import read_mailbox as read_mailbox_flow

    out = tmp_path / "out"
    url = copy_sqlite(snapshots["invited"], tmp_path / "invited.db")
    monkeypatch.setenv("HYTETU_DATABASE_URL", url)
    accepting = _invitees(url)[0]
    (out / "inbox").mkdir(parents=True)
    (out / "inbox" / "a.eml").write_bytes(
        _rsvp(url, "rsvp-outlook-accept.eml", accepting, "ACCEPTED", "2025-10-10 09:00")
    )
    state = read_mailbox_flow(as_of="2025-10-11 07:00", out_dir=str(out), return_state=True)
    assert state.is_completed()
    artifacts = {a.key: a for a in prefect_artifacts([state.state_details.flow_run_id])}
    markdown = artifacts["hytetu-attendance"].data
    assert "Ilmoittautumiset / Anmälningar" in markdown and "23.10.2025" in markdown
    table = artifacts["hytetu-attendance-table"].data
    rows = json.loads(table) if isinstance(table, str) else table
    assert sum(int(r["hyväksynyt / accepterat"]) for r in rows) == 1
    assert sum(int(r["ei vastausta / inget svar"]) for r in rows) > 0

    url = copy_sqlite(snapshots["dispatched"], tmp_path / "dispatched.db")
    monkeypatch.setenv("HYTETU_DATABASE_URL", url)
    first = _letters(url)[0]
    read_mailbox(
        url,
        _reader(
            tmp_path / "b",
            {"b.eml": _about_letter(url, "bounce-postfix.eml", first.id, "2025-12-22 08:00")},
        ),
        _region_id(url),
    )
    state = dispatch_memos(as_of="2025-12-23 07:00", out_dir=str(out), return_state=True)
    artifacts = {a.key: a for a in prefect_artifacts([state.state_details.flow_run_id])}
    bounced = artifacts["hytetu-dispatch-bounced"].data
    assert "region.yaml" in bounced and "registry" in bounced
    assert first.recipients[0] in bounced


def test_a_bounced_summary_to_an_ngo_names_the_contacts_field_not_a_registry(
    loaded: str,
) -> None:
    from hytetu.dispatch import bounce_message

    with db.session_scope(loaded) as s:
        view = cycle_view(s)
        letter = db.OutgoingMessage(
            dedupe_key="memo:1:stakeholder:keski-suomen-jarjestoverkosto",
            recipients=["elina.raty@jarjestoverkosto.example"],
            subject="Koonti",
            bounce_reason="5.1.1 user unknown",
        )
        text = bounce_message(view, letter)
    assert "stakeholders[keski-suomen-jarjestoverkosto].contacts[].email" in text
    assert "registry" not in text and "5.1.1 user unknown" in text


# --- the same mix from the real servers: Dovecot, and the Graph and EWS endpoints --------


@pytest.mark.parametrize("server", ["imap", "graph", "ews"])
def test_the_mix_reads_the_same_from_dovecot_and_the_graph_and_ews_endpoints(
    server: str, request: pytest.FixtureRequest, snapshots: dict[str, Path], tmp_path: Path
) -> None:
    """The year's mailbox delivered into Dovecot (IMAP APPEND), the local Graph endpoint
    and the local EWS endpoint (both speak the wire format; Exchange cannot run here), read
    through the reader the transport would use: every kind recognised as from the folder,
    nothing handled twice on the next tick, nothing deleted."""
    from ews_server import settings as ews_settings
    from test_readers import MAILBOX, graph_reader, imap_reader

    from hytetu.inbox import InboxSettings
    from hytetu.readers_ews import EwsReader

    url = copy_sqlite(snapshots["dispatched"], tmp_path / "hytetu.db")
    mails, _, _ = _mix(url)
    raws = [mails[name] for name in sorted(mails)]
    if server == "imap":
        dovecot = request.getfixturevalue("dovecot")
        dovecot.append(raws)
        reader = lambda: imap_reader(dovecot)  # noqa: E731
        kept = lambda: sum(dovecot.counts().values())  # noqa: E731
    elif server == "graph":
        graph = request.getfixturevalue("graph_server")
        for raw in raws:
            graph.deliver(raw)
        reader = lambda: graph_reader(graph, tmp_path)  # noqa: E731
        kept = lambda: len(graph.in_folder("inbox"))  # noqa: E731
    else:
        request.getfixturevalue("secrets")
        exchange, port = request.getfixturevalue("exchange")
        for raw in raws:
            exchange.deliver(raw)
        reader = lambda: EwsReader(ews_settings(port, sender=MAILBOX), InboxSettings())  # noqa: E731
        kept = lambda: len(exchange.in_folder("AAMk-inbox"))  # noqa: E731

    first = reader()
    try:
        report = read_mailbox(url, first, _region_id(url))
    finally:
        first.close()
    assert dict(report.counts) == MIX_COUNTS and not report.errors
    with db.session_scope(url) as s:
        rows = {r["state"] for r in report_rows(s, cycle_view(s).cycle.id)}
        assert "bounced" in rows
        assert s.scalar(select(func.count()).select_from(db.Rsvp)) == 4
    second = reader()
    try:
        again = read_mailbox(url, second, _region_id(url))
    finally:
        second.close()
    assert again.read == 0 and not again.errors  # the next tick handles nothing again
    assert kept() == len(raws)  # nothing deleted
