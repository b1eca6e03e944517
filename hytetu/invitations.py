"""Session invitations: who gets a REQUEST, an update, a CANCEL or a reminder, as of a time.

Each decision is recorded in ``invitation`` and each message goes through the outbox, so a
re-run with nothing changed sends nothing.

SEQUENCE is one per session (``session.sequence``), the same in every message about it:
it goes up when the session changes for everyone (moved, another place or link, cancelled;
RFC 5546 2.1.4), never for one attendee. Removing an attendee sends them a CANCEL at the
session's SEQUENCE, with no STATUS (RFC 5546 3.2.5), and inviting them again sends a
REQUEST at it too; calendars order messages of equal SEQUENCE by DTSTAMP (RFC 5546 2.1.5),
which is the later send. The others' entries stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from hytetu import db, followup
from hytetu.calendar import Attendee, CalendarEvent, build_calendar, session_uid
from hytetu.config import DEFAULT_ALARM_MINUTES
from hytetu.mail import build_message
from hytetu.outbox import enqueue
from hytetu.state import CycleView


@dataclass
class InvitationResult:
    requests: int = 0
    updates: int = 0
    cancels: int = 0
    reminders: int = 0

    @property
    def total(self) -> int:
        return self.requests + self.updates + self.cancels + self.reminders


def _event(view: CycleView, s: db.MeetingSession, language: str) -> CalendarEvent:
    title = view.text(view.cycle.title, language)
    return CalendarEvent(
        uid=session_uid(view.cycle.year, s.key, view.region.sender_email),
        sequence=s.sequence,
        start=s.start,
        end=s.end,
        summary=f"{view.session_title(s, language)}: {title}",
        description=view.render("invitation.txt.j2", language, _context(view, s, language, None)),
        organizer_name=view.sender_name(language),
        organizer_email=view.region.sender_email,
        url=s.online_url,
        location=s.place,
        cancelled=s.status == "cancelled",
        alarm_minutes=view.cycle.settings.get("session_alarm_minutes", DEFAULT_ALARM_MINUTES),
    )


def _context(
    view: CycleView, s: db.MeetingSession, language: str, contact: db.Contact | None
) -> dict:
    """What every part of an invitation says (the plain text, the HTML and the calendar's
    DESCRIPTION render from it, so all say the same)."""
    pas, sas, cells = view.matrix()
    texts = view.texts(language)
    return {
        "region": view.text(view.region.name, language),
        "topic": texts["topic"],
        "law": texts["law"],
        "agenda": texts["agenda"],
        "contact": view.contact(language),
        "cycle_title": view.text(view.cycle.title, language),
        "plan_period": view.cycle.plan_period or "",
        "session_title": view.session_title(s, language),
        "start": view.local(s.start),
        "end": view.local(s.end),
        "online_url": s.online_url,
        "place": s.place,
        "cancelled": s.status == "cancelled",
        "priority_areas": [
            {
                "name": view.text(pa.name, language),
                "goals": [
                    {
                        "service_area": view.text(sa.name, language),
                        "goal": view.text(cells[(pa.key, sa.key)].goal, language),
                    }
                    for sa in sas
                    if (pa.key, sa.key) in cells
                ],
            }
            for pa in pas
        ],
        "feedback_deadline": view.cycle.feedback_deadline,
        "feedback_url": view.cycle.feedback_url,
        "last_year": _last_year(view, s, language),
        "recipient": contact.name if contact else "",
        "method": "CANCEL" if s.status == "cancelled" else "REQUEST",
        "kind": "invite",
        "sender": view.sender_name(language),
    }


def _last_year(view: CycleView, s: db.MeetingSession, language: str) -> dict[str, Any] | None:
    """What the session's group raised last year, per priority area and service area, in
    its own words (``hytetu.followup``); None for a first cycle, a group new this year or
    the provider forum."""
    last = followup.last_year(view) if s.group is not None else None
    if last is None or s.group is None:
        return None
    emphases = followup.group_emphases(view, last, s.group.key)
    if not emphases:
        return None
    pas, sas, _ = view.matrix()
    areas = []
    for pa in pas:
        items = [
            {"service_area": view.text(sa.name, language), "texts": [e.text for e in found]}
            for sa in sas
            if (found := emphases.get(f"{pa.key}/{sa.key}"))
        ]
        if items:
            areas.append({"name": view.text(pa.name, language), "items": items})
    return {"year": last.year, "priority_areas": areas}


@dataclass(frozen=True)
class Action:
    session: db.MeetingSession
    contact: db.Contact
    kind: str  # request | update | cancel | reminder


def _reminder_key(view: CycleView, s: db.MeetingSession, c: db.Contact) -> str:
    return f"reminder:{view.cycle.id}:{s.key}:{c.email}"


def plan_invitations(view: CycleView, as_of: datetime) -> list[Action]:
    """What is due ``as_of``: new invitations, updates, cancellations and reminders."""
    lead = timedelta(days=int(view.cycle.settings.get("invitation_lead_days", 21)))
    remind = timedelta(days=int(view.cycle.settings.get("session_reminder_days", 7)))
    sent = set(
        view.session.scalars(
            select(db.OutgoingMessage.dedupe_key).filter_by(
                cycle_id=view.cycle.id, purpose="reminder"
            )
        )
    )
    actions: list[Action] = []
    today = view.local(as_of).date()
    for s in view.sessions():
        session_day = view.local(s.start).date()
        # Lead and reminder times are calendar days in the region's zone: the daily tick
        # sends them on that day whatever time of day it runs.
        if today < session_day - lead or as_of >= s.end:
            continue
        invitees = view.invitees(s) if s.status == "scheduled" else []
        invited_ids = {c.id for c in invitees}
        known = {
            inv.contact_id: inv
            for inv in view.session.scalars(select(db.Invitation).filter_by(session_id=s.id))
        }
        answers = _answers(view, s)
        for contact_id, inv in known.items():
            if contact_id not in invited_ids and inv.method == "REQUEST":
                actions.append(Action(s, view.session.get_one(db.Contact, contact_id), "cancel"))
        for c in invitees:
            held = known.get(c.id)
            if held is None:
                actions.append(Action(s, c, "request"))
            elif held.method != "REQUEST" or held.sequence < s.sequence:
                actions.append(Action(s, c, "update"))
            elif (
                today >= session_day - remind
                and as_of < s.start
                and _reminder_key(view, s, c) not in sent
                and _wants_reminder(view, answers.get(c.id))
            ):
                actions.append(Action(s, c, "reminder"))
    return actions


def _answers(view: CycleView, s: db.MeetingSession) -> dict[int, str]:
    """contact id -> their answer (PARTSTAT) to the session's invitation, read from the
    mailbox (hytetu.mailbox)."""
    return dict(
        view.session.execute(
            select(db.Rsvp.contact_id, db.Rsvp.partstat).filter_by(session_id=s.id)
        ).all()
    )


def _wants_reminder(view: CycleView, answer: str | None) -> bool:
    """cycle.yaml's ``session_reminders``: ``unanswered`` (default) reminds only those who
    have not answered; ``all`` everyone but those who declined. Nobody who declined (or
    passed the invitation on) is reminded."""
    if answer in ("DECLINED", "DELEGATED"):
        return False
    return answer is None or view.cycle.settings.get("session_reminders") == "all"


def send_invitations(view: CycleView, as_of: datetime) -> InvitationResult:
    """Queue the REQUEST / CANCEL / reminder messages that are due ``as_of``."""
    result = InvitationResult()
    attendees_of: dict[int, list[Attendee]] = {}  # per session: every invitation lists them
    calendars: dict[tuple, bytes] = {}  # the same .ics for every invitee of a session
    for a in plan_invitations(view, as_of):
        s, c = a.session, a.contact
        if a.kind == "reminder":
            _remind(view, s, c, as_of)
            result.reminders += 1
            continue
        if a.kind == "cancel":
            _send(view, s, c, "CANCEL", [Attendee(c.name, c.email)], as_of, calendars)
            inv = view.session.scalars(
                select(db.Invitation).filter_by(session_id=s.id, contact_id=c.id)
            ).one()
            inv.method, inv.sequence, inv.updated_at = "CANCEL", s.sequence, db.utcnow()
            result.cancels += 1
            continue
        if s.id not in attendees_of:
            attendees_of[s.id] = [Attendee(x.name, x.email) for x in view.invitees(s)]
        _send(view, s, c, "REQUEST", attendees_of[s.id], as_of, calendars)
        if a.kind == "request":
            view.session.add(
                db.Invitation(
                    session_id=s.id, contact_id=c.id, sequence=s.sequence, method="REQUEST"
                )
            )
            result.requests += 1
        else:
            inv = view.session.scalars(
                select(db.Invitation).filter_by(session_id=s.id, contact_id=c.id)
            ).one()
            inv.method, inv.sequence, inv.updated_at = "REQUEST", s.sequence, db.utcnow()
            result.updates += 1
        view.session.flush()
    return result


def _send(
    view: CycleView,
    s: db.MeetingSession,
    c: db.Contact,
    method: str,
    attendees: list[Attendee],
    as_of: datetime,
    calendars: dict[tuple, bytes],
) -> None:
    language = c.language or view.language
    sequence = s.sequence
    key = (s.id, method, sequence, language, tuple(attendees))
    if key not in calendars:
        calendars[key] = build_calendar(
            [_event(view, s, language)],
            method=method,
            timezone=view.region.timezone,
            attendees=attendees,
            stamp=as_of,
        )
    ics = calendars[key]
    context = _context(view, s, language, c)
    context["method"] = method
    subject_key = "cancel" if method == "CANCEL" else ("update" if s.sequence else "invite")
    context["kind"] = subject_key
    subject = view.render("invitation_subject.txt.j2", language, context).strip()

    def build(message_id: str):
        return build_message(
            sender=(view.sender_name(language), view.region.sender_email),
            to=[(c.name, c.email)],
            subject=subject,
            text=view.render("invitation.txt.j2", language, context),
            html=view.render("invitation.html.j2", language, context),
            calendar=ics,
            calendar_method=method,
            message_id=message_id,
            date=as_of,
            purpose="invitation",
            language=language,
        )

    enqueue(
        view.session,
        cycle_id=view.cycle.id,
        dedupe_key=_invite_key(view, s, c, sequence, method),
        purpose="invitation",
        sender_email=view.region.sender_email,
        build=build,
    )


def _invite_key(
    view: CycleView, s: db.MeetingSession, c: db.Contact, sequence: int, method: str
) -> str:
    """The outbox key of an invitation or cancellation. An attendee removed and invited
    again gets a second REQUEST (and a second CANCEL) at the same SEQUENCE: numbered by how
    many such went before, so the key stays the same for a re-run and differs for a new
    message."""
    key = f"invite:{view.cycle.id}:{s.key}:{c.email}:{sequence}:{method}"
    earlier = view.session.scalar(
        select(func.count())
        .select_from(db.OutgoingMessage)
        .where(
            db.OutgoingMessage.cycle_id == view.cycle.id,
            db.OutgoingMessage.purpose == "invitation",
            db.OutgoingMessage.dedupe_key.startswith(key, autoescape=True),
        )
    )
    return f"{key}#{earlier}" if earlier else key


def _remind(view: CycleView, s: db.MeetingSession, c: db.Contact, as_of: datetime) -> None:
    language = c.language or view.language
    context = _context(view, s, language, c) | {"kind": "reminder", "method": "REQUEST"}

    def build(message_id: str):
        return build_message(
            sender=(view.sender_name(language), view.region.sender_email),
            to=[(c.name, c.email)],
            subject=view.render("invitation_subject.txt.j2", language, context).strip(),
            text=view.render("reminder.txt.j2", language, context),
            message_id=message_id,
            date=as_of,
            purpose="reminder",
            language=language,
        )

    enqueue(
        view.session,
        cycle_id=view.cycle.id,
        dedupe_key=_reminder_key(view, s, c),
        purpose="reminder",
        sender_email=view.region.sender_email,
        build=build,
    )


def feeds(view: CycleView, as_of: datetime) -> dict[str, bytes]:
    """Subscribable .ics feeds: one per municipality group and one for the whole cycle."""
    language = view.language
    sessions = view.sessions()
    events = {s.key: _event(view, s, language) for s in sessions}
    out = {
        "kaikki" if language == "fi" else "alla": build_calendar(
            list(events.values()),
            method=None,
            timezone=view.region.timezone,
            stamp=as_of,
            name=view.text(view.cycle.title),
        )
    }
    for s in sessions:
        if s.group is not None:
            out[s.group.key] = build_calendar(
                [events[s.key]],
                method=None,
                timezone=view.region.timezone,
                stamp=as_of,
                name=f"{view.text(view.cycle.title)}: {view.text(s.group.name)}",
            )
    return out
