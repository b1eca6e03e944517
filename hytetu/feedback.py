"""The feedback window (palaute): open with a notice, remind before the deadline, close.

The deadline is a day in the region's time zone: a response at 23:59 on that day is on
time, one at 00:00 the next day is late. Late responses are kept, marked late.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import update

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
