"""The feedback window (palaute): open with a notice, remind before the deadline, close.

The deadline is a day in the region's time zone: a response at 23:59 on that day is on
time, one at 00:00 the next day is late. Late responses are kept, marked late.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

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
            "sender": view.region.sender_name,
        }

        def build(
            message_id: str, c: db.Contact = c, language: str = language, context: dict = context
        ):
            return build_message(
                sender=(view.region.sender_name, view.region.sender_email),
                to=[(c.name, c.email)],
                subject=view.render("feedback_notice_subject.txt.j2", language, context).strip(),
                text=view.render("feedback_notice.txt.j2", language, context),
                message_id=message_id,
                date=as_of,
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
# Messages to people (not to registries) whose stored copies carry names and addresses.
PERSONAL_PURPOSES = ("invitation", "reminder", "feedback_open", "feedback_reminder")


@dataclass
class PurgeResult:
    cycles: list[int]
    responses: int = 0
    messages: int = 0
    contacts: int = 0


def purge_personal_data(session: Session, older_than_years: int, now: datetime) -> PurgeResult:
    """Delete the personal data of cycles older than the retention, keeping what the
    compilation and memos were made of (texts, organisations, counts, findings).

    A cycle of year Y is purged when ``Y + older_than_years < now.year``. Cleared: the
    respondents' e-mail addresses, the organisation field of private residents, and the
    stored copies (body, recipients) of sent invitations and notices to people; the
    delivery log (Message-ID, subject, state) stays. Contacts no longer in the config
    (inactive) are anonymised; active contacts are the config's current data and stay.
    """
    if older_than_years < 0:
        raise ValueError("older_than_years must be 0 or more")
    old = [
        c.id
        for c in session.scalars(
            select(db.Cycle).where(db.Cycle.year + older_than_years < now.year)
        )
    ]
    result = PurgeResult(
        cycles=sorted(session.scalars(select(db.Cycle.year).where(db.Cycle.id.in_(old))))
    )
    if old:
        responses = db.FeedbackResponse
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
        messages = db.OutgoingMessage
        result.messages = session.execute(  # type: ignore[attr-defined]
            update(messages)
            .where(
                messages.cycle_id.in_(old),
                messages.purpose.in_(PERSONAL_PURPOSES),
                messages.state == "sent",
                messages.raw != b"",
            )
            .values(raw=b"", recipients=[])
        ).rowcount
    for contact in session.scalars(select(db.Contact).filter_by(active=False)):
        if not contact.email.endswith("@poistettu.invalid"):
            contact.name = "(poistettu)"
            contact.email = f"poistettu-{contact.id}@poistettu.invalid"
            result.contacts += 1
    db.audit(
        session,
        "personal_data.purge",
        f"older than {older_than_years} years",
        cycles=result.cycles,
        responses=result.responses,
        messages=result.messages,
        contacts=result.contacts,
    )
    return result
