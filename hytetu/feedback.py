"""The feedback window (palaute): open with a notice, remind before the deadline, close.

The deadline is a day in the region's time zone: a response at 23:59 on that day is on
time, one at 00:00 the next day is late. Late responses are kept, marked late.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hytetu import db
from hytetu.mail import build_message
from hytetu.outbox import enqueue
from hytetu.state import CycleView


def opens_at(view: CycleView) -> datetime:
    return datetime.combine(view.cycle.feedback_opens, time(0), view.tz)


def closes_at(view: CycleView) -> datetime:
    """The first instant after the deadline day."""
    return datetime.combine(view.cycle.feedback_deadline + timedelta(days=1), time(0), view.tz)


def reminder_at(view: CycleView) -> datetime:
    days = int(view.cycle.settings.get("feedback_reminder_days", 7))
    return closes_at(view) - timedelta(days=days)


def is_late(view: CycleView, received_at: datetime) -> bool:
    return received_at >= closes_at(view)


@dataclass
class WindowResult:
    action: str  # opened | reminded | closed | nothing
    notices: int = 0


def _notify(view: CycleView, kind: str, as_of: datetime) -> int:
    count = 0
    for c in view.contacts():
        language = c.language or view.language
        context = {
            "kind": kind,
            "recipient": c.name,
            "region": view.text(view.region.name, language),
            "cycle_title": view.text(view.cycle.title, language),
            "plan_period": view.cycle.plan_period or "",
            "deadline": view.cycle.feedback_deadline,
            "url": view.cycle.feedback_url,
            "topic": view.texts(language)["topic"],
            "contact": view.contact(language),
            "sender": view.sender_name(language),
        }

        def build(
            message_id: str, c: db.Contact = c, language: str = language, context: dict = context
        ):
            return build_message(
                sender=(view.sender_name(language), view.region.sender_email),
                to=[(c.name, c.email)],
                subject=view.render("feedback_notice_subject.txt.j2", language, context).strip(),
                text=view.render("feedback_notice.txt.j2", language, context),
                message_id=message_id,
                date=as_of,
                purpose="feedback_open" if kind == "open" else "feedback_reminder",
                language=language,
            )

        _, created = enqueue(
            view.session,
            cycle_id=view.cycle.id,
            dedupe_key=f"feedback-{kind}:{view.cycle.id}:{c.email}",
            purpose=f"feedback_{kind}",
            sender_email=view.region.sender_email,
            build=build,
        )
        count += created
    return count


def open_window(view: CycleView, as_of: datetime) -> WindowResult:
    """Record the window as open and queue the notice to every contact (once)."""
    if as_of < opens_at(view) or view.cycle.feedback_opened_at is not None:
        return WindowResult("nothing")
    view.cycle.feedback_opened_at = as_of
    if as_of >= closes_at(view):
        # A first tick after the deadline (downtime): telling people they may respond
        # until a day that has passed would only mislead. Record it, send nothing.
        db.audit(
            view.session,
            "feedback.open",
            f"cycle {view.cycle.year}",
            notices=0,
            note="opened after the deadline; no notices sent",
        )
        return WindowResult("opened", 0)
    notices = _notify(view, "open", as_of)
    db.audit(view.session, "feedback.open", f"cycle {view.cycle.year}", notices=notices)
    return WindowResult("opened", notices)


def remind(view: CycleView, as_of: datetime) -> WindowResult:
    if view.cycle.feedback_opened_at is None or not reminder_at(view) <= as_of < closes_at(view):
        return WindowResult("nothing")
    notices = _notify(view, "reminder", as_of)
    return WindowResult("reminded" if notices else "nothing", notices)


def close_window(view: CycleView, as_of: datetime) -> WindowResult:
    """Freeze the window at the deadline; responses after it are marked late."""
    if as_of < closes_at(view) or view.cycle.feedback_closed_at is not None:
        return WindowResult("nothing")
    view.cycle.feedback_closed_at = closes_at(view)
    view.session.execute(
        update(db.FeedbackResponse)
        .where(
            db.FeedbackResponse.cycle_id == view.cycle.id,
            db.FeedbackResponse.received_at >= closes_at(view),
        )
        .values(late=True)
    )
    db.audit(view.session, "feedback.close", f"cycle {view.cycle.year}")
    return WindowResult("closed")


# --- personal data ------------------------------------------------------------------

# Respondent types whose "organisation" field may hold a private person's name.
PRIVATE_TYPES = ("resident",)
# Letters to the municipal registries (kirjaamo): organisational addresses, the record of
# the dispatch; kept. Every other message went to a person and its copy is purged.
REGISTRY_PURPOSES = ("memo",)
REDACTED = "(poistettu)"
EMAIL_IN_TEXT = re.compile(r"[^\s@<>\"'(),;:/]+@[^\s@<>\"'(),;:/]+\.[A-Za-z0-9-]+")


@dataclass
class PurgeResult:
    cycles: list[int]
    responses: int = 0
    messages: int = 0
    contacts: int = 0
    audit_events: int = 0
    compilations: int = 0
    #: the addresses taken out of the database (lowercase): the copies outside it
    #: (files, Prefect's artifacts) are purged by them (``hytetu.privacy.purge_copies``)
    addresses: set[str] = field(default_factory=set)


def purge_personal_data(session: Session, older_than_years: int, now: datetime) -> PurgeResult:
    """Delete the personal data of cycles older than the retention, keeping what the
    compilation and memos were made of (texts, organisations, counts, findings).

    A cycle of year Y is purged when ``Y + older_than_years < now.year``. In those cycles:
    the respondents' e-mail addresses; the organisation field of private residents (it may
    be their name), also inside stored compilations; of every message to a person (all but
    the registry letters) the stored copy, the recipients, the error text and the
    address-bearing dedupe key, a message never sent being marked failed. The delivery log
    (Message-ID, subject, purpose, state, time) stays. Contacts no longer in the config
    (inactive) and not invited in any kept cycle are anonymised; active contacts are the
    config's current data and stay. E-mail addresses are blanked in audit entries from
    before the first kept year, and an anonymised contact's address in every entry.
    Findings, compilations, memo versions and the feedback texts are not touched.
    Idempotent: a second run changes nothing.
    """
    if older_than_years < 0:
        raise ValueError("older_than_years must be 0 or more")
    first_kept_year = now.year - older_than_years
    old = list(session.scalars(select(db.Cycle.id).where(db.Cycle.year < first_kept_year)))
    result = PurgeResult(
        cycles=sorted(session.scalars(select(db.Cycle.year).where(db.Cycle.id.in_(old))))
    )
    if old:
        responses = db.FeedbackResponse
        result.addresses |= {
            a.lower()
            for a in session.scalars(
                select(responses.respondent_email).where(
                    responses.cycle_id.in_(old), responses.respondent_email.is_not(None)
                )
            )
            if a
        }
        result.responses = session.execute(  # type: ignore[attr-defined]
            update(responses)
            .where(responses.cycle_id.in_(old), responses.respondent_email.is_not(None))
            .values(respondent_email=None)
        ).rowcount
        session.execute(
            update(responses)
            .where(responses.cycle_id.in_(old), responses.respondent_type.in_(PRIVATE_TYPES))
            .values(respondent_org=None)
        )
        for compilation in session.scalars(
            select(db.Compilation).where(db.Compilation.cycle_id.in_(old))
        ):
            scrubbed = _scrub_compilation(compilation.result)
            if scrubbed is not None:
                compilation.result = scrubbed
                result.compilations += 1
        messages = db.OutgoingMessage
        for message in session.scalars(
            select(messages).where(
                messages.cycle_id.in_(old),
                messages.purpose.not_in(REGISTRY_PURPOSES),
                messages.dedupe_key.not_like("purged:%"),
            )
        ):
            result.addresses |= {a.lower() for a in message.recipients}
            message.raw, message.recipients, message.receipt = b"", [], None
            message.dedupe_key = f"purged:{message.id}"
            if message.state == "sent":
                message.last_error = None
            else:  # never to be sent now: without a copy it could not be
                message.state, message.last_error = "failed", "personal data purged"
            result.messages += 1
    invited_in_kept = (
        select(db.Invitation.contact_id)
        .join(db.MeetingSession, db.MeetingSession.id == db.Invitation.session_id)
        .join(db.Cycle, db.Cycle.id == db.MeetingSession.cycle_id)
        .where(db.Cycle.year >= first_kept_year)
    )
    gone: set[str] = set()
    for contact in session.scalars(
        select(db.Contact).where(
            db.Contact.active.is_(False),
            db.Contact.email.not_like("%@poistettu.invalid"),
            db.Contact.id.not_in(invited_in_kept),
        )
    ):
        gone.add(contact.email.lower())
        result.addresses.add(contact.email.lower())
        contact.name = REDACTED
        contact.email = f"poistettu-{contact.id}@poistettu.invalid"
        result.contacts += 1
    boundary = datetime(first_kept_year, 1, 1, tzinfo=now.tzinfo)
    for event in session.scalars(select(db.AuditEvent)):
        everything = event.at < boundary

        def blank(match: re.Match[str], everything: bool = everything) -> str:
            address = match.group(0)
            if address.endswith("@poistettu.invalid"):
                return address
            return REDACTED if everything or address.lower() in gone else address

        entity = EMAIL_IN_TEXT.sub(blank, event.entity)
        detail = _redact(event.detail, lambda text: EMAIL_IN_TEXT.sub(blank, text))
        if entity != event.entity or detail != event.detail:
            event.entity, event.detail = entity, detail
            result.audit_events += 1
    db.audit(
        session,
        "personal_data.purge",
        f"older than {older_than_years} years",
        cycles=result.cycles,
        responses=result.responses,
        messages=result.messages,
        contacts=result.contacts,
        audit_events=result.audit_events,
        compilations=result.compilations,
    )
    return result


def _redact(value: Any, fix: Callable[[str], str]) -> Any:
    """``value`` (JSON: dicts, lists, strings) with ``fix`` applied to every string."""
    if isinstance(value, str):
        return fix(value)
    if isinstance(value, list):
        return [_redact(v, fix) for v in value]
    if isinstance(value, dict):
        return {k: _redact(v, fix) for k, v in value.items()}
    return value


def _scrub_compilation(result: dict[str, Any]) -> dict[str, Any] | None:
    """The compilation without residents' "organisation" (a name), or None if it has none."""
    changed = False

    def walk(value: Any) -> Any:
        nonlocal changed
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            if value.get("respondent_type") in PRIVATE_TYPES and value.get("organisation"):
                changed = True
                value = value | {"organisation": None}
            return {k: walk(v) for k, v in value.items()}
        return value

    scrubbed = walk(result)
    return scrubbed if changed else None
