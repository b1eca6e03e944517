"""What is stored about one person (GDPR art. 15, right of access): ``export_person``.

Everything the database holds about an e-mail address, as plain JSON-ready data: the
contact rows (name, organisation, role), the feedback responses given with that address
and their answers, the invitations and messages sent to it (subject, date, purpose, state;
not the stored copies), and the audit entries that name it. The address is compared
case-insensitively, always as a bound parameter. Retention (deleting old cycles' personal
data) is ``hytetu.feedback.purge_personal_data``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session

from hytetu import db
from hytetu.feedback import EMAIL_IN_TEXT

FORMAT = "hytetu-personal-data/1"


@dataclass
class PersonalData:
    email: str
    generated_at: str
    contacts: list[dict[str, Any]] = field(default_factory=list)
    feedback_responses: list[dict[str, Any]] = field(default_factory=list)
    invitations: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    audit_events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (
            self.contacts
            or self.feedback_responses
            or self.invitations
            or self.messages
            or self.audit_events
        )

    def counts(self) -> dict[str, int]:
        return {
            "contacts": len(self.contacts),
            "feedback_responses": len(self.feedback_responses),
            "invitations": len(self.invitations),
            "messages": len(self.messages),
            "audit_events": len(self.audit_events),
        }

    def as_dict(self) -> dict[str, Any]:
        return {"format": FORMAT} | asdict(self)

    def to_json(self) -> str:
        """UTF-8 JSON, non-ASCII letters (ä, ö, å) as they are."""
        return json.dumps(self.as_dict(), ensure_ascii=False, indent=2) + "\n"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value


def _contains(column: Any, needle: str) -> Any:
    """``lower(column) LIKE '%needle%'`` with % and _ in the address escaped, bound."""
    return func.lower(cast(column, String)).contains(needle, autoescape=True)


def _org_names(session: Session) -> dict[tuple[int, str], dict[str, str]]:
    names: dict[tuple[int, str], dict[str, str]] = {}
    for m in session.scalars(select(db.Municipality)):
        names[(m.region_id, m.key)] = m.name
    for st in session.scalars(select(db.Stakeholder)):
        names[(st.region_id, st.key)] = st.name
    return names


def export_person(session: Session, email: str, now: datetime | None = None) -> PersonalData:
    """Everything stored about ``email``; empty lists when nothing is."""
    address = email.strip().lower()
    if not address:
        raise ValueError("an e-mail address is needed")
    data = PersonalData(email=email.strip(), generated_at=_iso(now or db.utcnow()) or "")
    regions = {r.id: r.key for r in session.scalars(select(db.Region))}
    years = {c.id: c.year for c in session.scalars(select(db.Cycle))}
    orgs = _org_names(session)

    contacts = list(
        session.scalars(
            select(db.Contact)
            .where(func.lower(db.Contact.email) == address)
            .order_by(db.Contact.id)
        )
    )
    for c in contacts:
        data.contacts.append(
            {
                "name": c.name,
                "email": c.email,
                "organisation_key": c.org_key,
                "organisation": orgs.get((c.region_id, c.org_key), {}),
                "role": c.role,
                "language": c.language,
                "active": c.active,
                "region": regions.get(c.region_id),
            }
        )

    for r in session.scalars(
        select(db.FeedbackResponse)
        .where(func.lower(db.FeedbackResponse.respondent_email) == address)
        .order_by(db.FeedbackResponse.received_at, db.FeedbackResponse.id)
    ):
        data.feedback_responses.append(
            {
                "id": r.id,
                "cycle": years.get(r.cycle_id),
                "received_at": _iso(r.received_at),
                "channel": r.channel,
                "late": r.late,
                "email": r.respondent_email,
                "organisation": r.respondent_org,
                "respondent_type": r.respondent_type,
                "municipality": r.municipality_key,
                "municipality_group": r.group_key,
                "priority_area": r.priority_area_key,
                "service_area": r.service_area_key,
                "text": r.text,
            }
        )

    if contacts:
        ids = [c.id for c in contacts]
        for inv, session_key, cycle_id in session.execute(
            select(db.Invitation, db.MeetingSession.key, db.MeetingSession.cycle_id)
            .join(db.MeetingSession, db.MeetingSession.id == db.Invitation.session_id)
            .where(db.Invitation.contact_id.in_(ids))
            .order_by(db.Invitation.id)
        ):
            data.invitations.append(
                {
                    "cycle": years.get(cycle_id),
                    "session": session_key,
                    "method": inv.method,
                    "sequence": inv.sequence,
                    "updated_at": _iso(inv.updated_at),
                }
            )

    # The recipients list is JSON: narrow down in SQL, then compare exactly in Python.
    for m in session.scalars(
        select(db.OutgoingMessage)
        .where(_contains(db.OutgoingMessage.recipients, address))
        .order_by(db.OutgoingMessage.id)
    ):
        if address not in {x.lower() for x in m.recipients}:
            continue
        data.messages.append(
            {
                "cycle": years.get(m.cycle_id),
                "purpose": m.purpose,
                "subject": m.subject,
                "message_id": m.message_id,
                "state": m.state,
                "created_at": _iso(m.created_at),
                "sent_at": _iso(m.sent_at),
                "recipients": list(m.recipients),
            }
        )

    event = db.AuditEvent
    for e in session.scalars(
        select(event)
        .where(_contains(event.entity, address) | _contains(event.detail, address))
        .order_by(event.at, event.id)
    ):
        named = EMAIL_IN_TEXT.findall(e.entity + " " + _text(e.detail))
        if address not in {x.lower() for x in named}:
            continue
        data.audit_events.append(
            {
                "at": _iso(e.at),
                "actor": e.actor,
                "action": e.action,
                "entity": e.entity,
                "detail": e.detail,
            }
        )
    return data


def record_export(session: Session, data: PersonalData, actor: str = "hytetu") -> None:
    """Note in the audit log that an export was made: counts only, not the address."""
    counts: dict[str, Any] = dict(data.counts())
    db.audit(session, "personal_data.export", "access request", actor, **counts)


def write_export(data: PersonalData, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data.to_json(), encoding="utf-8")
