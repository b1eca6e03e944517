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
            mailbox = phases.run_read_mailbox(at, phases.region_out(out, key, regions), url, key)
            if mailbox.did.get("read"):
                done.append((at, "read_mailbox" if len(regions) == 1 else f"{key}: read_mailbox"))
            for phase in phases.due_phases(at, url, key):
                phases.run_phase(phase, at, phases.region_out(out, key, regions), url, key)
                done.append((at, phase if len(regions) == 1 else f"{key}: {phase}"))
    return done


# --- what comes back: replies to the invitations and to the registry letters -------------

#: Real-world samples of what a county's mailbox receives, as templates (tests/data/mail,
#: its README says how they are filled); the demo and the tests fill them alike.
SAMPLES = Path(__file__).resolve().parent.parent / "tests" / "data" / "mail"


def fill_sample(name: str, values: dict[str, str]) -> bytes:
    """The sample ``name`` (e.g. "bounce-postfix.eml") with its ``$placeholders`` filled,
    as the bytes a mailbox would hold (CRLF line ends)."""
    from string import Template

    text = Template((SAMPLES / name).read_text(encoding="utf-8")).safe_substitute(values)
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def _b64(text: str) -> str:
    import base64
    import textwrap

    return "\r\n".join(textwrap.wrap(base64.b64encode(text.encode()).decode(), 76))


def _q(text: str) -> str:
    from email.header import Header

    return Header(text, "utf-8", maxlinelen=900).encode()


def _stamp(at: datetime) -> str:
    from datetime import UTC

    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def reply_calendar(values: dict[str, str], partstat: str) -> str:
    """An iTIP REPLY as a calendar client writes it (for the ``invite.ics`` attachments)."""
    lines = [
        "BEGIN:VCALENDAR",
        "PRODID:-//hytetu tests//reply//FI",
        "VERSION:2.0",
        "METHOD:REPLY",
        "BEGIN:VEVENT",
        f"UID:{values['uid']}",
        f"DTSTAMP:{values['dtstamp']}",
        f"DTSTART:{values['dtstart_utc']}",
        f"DTEND:{values['dtend_utc']}",
        f"SEQUENCE:{values['sequence']}",
        f"ORGANIZER:mailto:{values['organizer']}",
        f"ATTENDEE;PARTSTAT={partstat};CN={values['attendee_name']}:mailto:{values['attendee']}",
        f"SUMMARY:{values['subject']}",
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
    return "\r\n".join(lines)


def invitation_values(
    view: CycleView,
    session_key: str,
    contact_email: str,
    partstat: str,
    at: datetime,
    text: str = "",
) -> dict[str, str]:
    """The placeholders of an RSVP (or an auto-reply to the invitation) from ``contact``
    about ``session_key``, answering the invitation hytetu sent them."""
    from email.utils import format_datetime

    from sqlalchemy import select

    from hytetu import db
    from hytetu.calendar import session_uid

    s = next(x for x in view.sessions() if x.key == session_key)
    c = next(x for x in view.contacts() if x.email == contact_email)
    sent = view.session.scalars(
        select(db.OutgoingMessage)
        .where(
            db.OutgoingMessage.purpose == "invitation",
            db.OutgoingMessage.dedupe_key.startswith(
                f"invite:{view.cycle.id}:{s.key}:{c.email}:", autoescape=True
            ),
        )
        .order_by(db.OutgoingMessage.id.desc())
    ).first()
    subject = sent.subject if sent else view.session_title(s)
    values = {
        "attendee": c.email,
        "attendee_name": c.name,
        "organizer": view.region.sender_email,
        "organizer_name": view.sender_name(),
        "subject": subject,
        "subject_q": _q(subject),
        "date": format_datetime(at),
        "message_id": sent.message_id if sent else "",
        "uid": session_uid(view.cycle.year, s.key, view.region.sender_email),
        "dtstart": view.local(s.start).strftime("%Y%m%dT%H%M%S"),
        "dtend": view.local(s.end).strftime("%Y%m%dT%H%M%S"),
        "dtstart_utc": _stamp(s.start),
        "dtend_utc": _stamp(s.end),
        "dtstamp": _stamp(at),
        "sequence": str(s.sequence),
        "text_base64": _b64(text or f"{c.name}: {partstat.lower()}"),
    }
    values["calendar_base64"] = _b64(reply_calendar(values, partstat))
    return values


def letter_values(
    view: CycleView, row_id: int, at: datetime, reference: str = ""
) -> dict[str, str]:
    """The placeholders of a bounce or a registry's receipt of the outbox row ``row_id``."""
    from email.utils import format_datetime

    from hytetu import db

    m = view.session.get_one(db.OutgoingMessage, row_id)
    recipient = m.recipients[0]
    return {
        "organizer": view.region.sender_email,
        "organizer_name": view.sender_name(),
        "county_domain": view.region.sender_email.rsplit("@", 1)[-1],
        "recipient": recipient,
        "recipient_name": "Kirjaamo",
        "recipient_domain": recipient.rsplit("@", 1)[-1],
        "registry": recipient,
        "registry_domain": recipient.rsplit("@", 1)[-1],
        "subject": m.subject,
        "subject_q": _q(m.subject),
        "date": format_datetime(at),
        "message_id": m.message_id,
        "reference": reference,
        "reference_slug": "".join(ch for ch in reference if ch.isalnum())[:40] or "x",
        "received_fi": f"{view.local(at):%d.%m.%Y klo %H.%M}",
    }


#: The demo's simulated replies: who answers the first session's invitation, and how.
DEMO_RSVPS = (
    ("rsvp-outlook-accept.eml", "ACCEPTED"),
    ("rsvp-outlook-decline-fi.eml", "DECLINED"),
    ("rsvp-google-tentative.eml", "TENTATIVE"),
    ("rsvp-thunderbird-accept.eml", "ACCEPTED"),
    ("ooo-outlook-fi.eml", ""),
)
#: How the registries word their receipts, and how their diary numbers look.
DEMO_RECEIPTS = (
    ("receipt-kirjaamo-fi.eml", "{key}/{n}/00.01.00/{year}"),
    ("receipt-kirjaamo-asianumero.eml", "{year}-{n:05d}"),
    ("receipt-kirjaamo-dnro.eml", "{key} {n}/00.04.01/{year}"),
)


def write_replies(url: str | None, out: Path, at: datetime) -> list[str]:
    """The demo's mailbox at ``at``: once invitations went out, a few contacts answer the
    first session's (accept, decline, tentative, from Outlook, Google, Thunderbird) and
    one is out of office; once memo letters went out, the first registry's address
    bounces (a Postfix DSN) and the others send receipts with their diary numbers. Each
    is written once, as .eml files in ``out/inbox``; returns the files written."""
    from sqlalchemy import select

    from hytetu import db
    from hytetu.state import cycle_view

    inbox = out / "inbox"
    written: list[str] = []
    with db.session_scope(url) as s:
        view = cycle_view(s)
        M = db.OutgoingMessage
        sent = list(
            s.scalars(
                select(M)
                .where(M.cycle_id == view.cycle.id, M.state == "sent")
                .where(M.purpose.in_(("invitation", "memo")))
                .order_by(M.id)
            )
        )
        invitations = [m for m in sent if m.purpose == "invitation"]
        letters = [m for m in sent if m.purpose == "memo" and "#" not in m.dedupe_key]
        # Once per cycle: the markers carry the year, so a second year's demo gets its own.
        rsvps, receipts = inbox / f".rsvps-{view.cycle.year}", inbox / f".letters-{view.cycle.year}"
        if invitations and not rsvps.exists():
            session_key = invitations[0].dedupe_key.split(":")[2]
            emails = [
                m.dedupe_key.split(":")[3]
                for m in invitations
                if m.dedupe_key.split(":")[2] == session_key
            ]
            for i, ((template, partstat), address) in enumerate(
                zip(DEMO_RSVPS, emails, strict=False)
            ):
                when = at + timedelta(hours=1 + i)
                text = "Olen lomalla 1.12. asti. Viestejä ei lueta." if not partstat else ""
                values = invitation_values(view, session_key, address, partstat, when, text)
                written.append(
                    _write(
                        inbox,
                        f"{view.cycle.year}-{i:02d}-{template}",
                        fill_sample(template, values),
                    )
                )
            _write(inbox, rsvps.name, b"")
        if letters and not receipts.exists():
            dead = letters[0].recipients[0]  # a registry address that no longer exists
            for i, m in enumerate(letters):
                when = at + timedelta(hours=2, minutes=i)
                if m.recipients[0] == dead:
                    values = letter_values(view, m.id, when)
                    name = "bounce-postfix.eml"
                else:
                    name, form = DEMO_RECEIPTS[(i - 1) % len(DEMO_RECEIPTS)]
                    key = m.dedupe_key.split(":", 2)[2][:3].upper()
                    reference = form.format(key=key, n=100 + i, year=view.cycle.year + 1)
                    values = letter_values(view, m.id, when, reference)
                written.append(
                    _write(
                        inbox, f"{view.cycle.year}-{100 + i:03d}-{name}", fill_sample(name, values)
                    )
                )
            _write(inbox, receipts.name, b"")
    return written


def _write(folder: Path, name: str, data: bytes) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return str(path)
