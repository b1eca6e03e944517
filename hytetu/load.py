"""Loading a validated config into the database: idempotent, in place, with a change log.

Loading the same config twice changes nothing. An edited config updates rows in place; what
disappeared from the config is marked inactive (never deleted: it may have been sent mail).
A moved or cancelled session gets its SEQUENCE raised so calendars replace the old entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hytetu import db, indicators
from hytetu.config import DEFAULT_LANGUAGE_KEY, Config, Municipality, Stakeholder, localized


@dataclass
class LoadResult:
    cycle_id: int
    changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def _norm(text: dict[str, str] | None, default: str) -> dict[str, str] | None:
    if text is None:
        return None
    return {default if k == DEFAULT_LANGUAGE_KEY else k: v for k, v in text.items()}


class _Upserter:
    def __init__(self, session: Session, result: LoadResult) -> None:
        self.session = session
        self.result = result

    def __call__(self, model: type[Any], key: dict[str, Any], values: dict[str, Any]) -> Any:
        row = self.session.scalars(select(model).filter_by(**key)).one_or_none()
        label = f"{model.__tablename__} {'/'.join(str(v) for v in key.values())}"
        if row is None:
            row = model(**key, **values)
            self.session.add(row)
            self.session.flush()
            self.result.changes.append(f"added {label}")
            return row
        changed = [k for k, v in values.items() if getattr(row, k) != v]
        for k in changed:
            setattr(row, k, values[k])
        if changed:
            self.result.changes.append(f"updated {label}: {', '.join(changed)}")
        return row

    def deactivate_missing(
        self, model: type[Any], region_filter: dict[str, Any], keep: set
    ) -> None:
        rows = self.session.scalars(select(model).filter_by(**region_filter, active=True))
        for row in rows:
            ident = (row.org_key, row.email) if model is db.Contact else row.key
            if ident not in keep:
                row.active = False
                self.result.changes.append(f"removed {model.__tablename__} {ident}")


def load_config_into_db(config: Config, session: Session, actor: str = "hytetu") -> LoadResult:
    """Write ``config`` into the database. Returns what changed; the caller commits.
    The indicator files are read and checked first: a bad one raises IndicatorError
    before anything is written."""
    data = indicators.read_folder(config)
    rf, cf = config.region_file, config.cycle_file
    lang = config.language
    region = session.scalars(select(db.Region).filter_by(key=rf.region.id)).one_or_none()
    result = LoadResult(cycle_id=0, warnings=[str(w) for w in data.warnings])
    up = _Upserter(session, result)
    region = up(
        db.Region,
        {"key": rf.region.id},
        {
            "name": _norm(rf.region.name, lang),
            "timezone": rf.region.timezone,
            "languages": list(rf.region.languages),
            "sender_name": localized(rf.region.sender.name, lang, lang),
            "sender_email": str(rf.region.sender.email),
        },
    )
    rid = {"region_id": region.id}

    municipalities = {}
    for m in rf.municipalities:
        municipalities[m.id] = up(
            db.Municipality,
            {**rid, "key": m.id},
            {"name": _norm(m.name, lang), "registry_email": str(m.registry), "active": True},
        )
    up.deactivate_missing(db.Municipality, rid, set(municipalities))

    groups = {}
    for g in rf.groups:
        row = up(
            db.MunicipalityGroup,
            {**rid, "key": g.id},
            {"name": _norm(g.name, lang), "active": True},
        )
        members = [municipalities[k] for k in g.municipalities]
        if {m.key for m in row.municipalities} != set(g.municipalities):
            row.municipalities = members
            result.changes.append(f"updated municipality_group {g.id}: municipalities")
        groups[g.id] = row
    up.deactivate_missing(db.MunicipalityGroup, rid, set(groups))

    stakeholders = set()
    for st in rf.stakeholders:
        up(
            db.Stakeholder,
            {**rid, "key": st.id},
            {
                "type": st.type,
                "name": _norm(st.name, lang),
                "municipality_keys": list(st.municipalities),
                "active": True,
            },
        )
        stakeholders.add(st.id)
    up.deactivate_missing(db.Stakeholder, rid, stakeholders)

    contacts = set()
    owners: list[Municipality | Stakeholder] = [*rf.municipalities, *rf.stakeholders]
    for owner in owners:
        for c in owner.contacts:
            email = str(c.email).lower()
            up(
                db.Contact,
                {**rid, "org_key": owner.id, "email": email},
                {"name": c.name, "role": c.role, "language": c.language, "active": True},
            )
            contacts.add((owner.id, email))
    up.deactivate_missing(db.Contact, rid, contacts)

    fb = cf.feedback
    cycle = up(
        db.Cycle,
        {**rid, "year": cf.cycle.year},
        {
            "title": _norm(cf.cycle.title, lang),
            "plan_period": cf.cycle.plan_period,
            "reference": cf.cycle.reference,
            "config_folder": str(config.folder.resolve()),
            "feedback_opens": fb.opens,
            "feedback_deadline": fb.deadline,
            "feedback_url": fb.url,
            "settings": {
                "invitation_lead_days": cf.cycle.invitation_lead_days,
                "session_reminder_days": cf.cycle.session_reminder_days,
                "session_reminders": cf.cycle.session_reminders,
                "session_alarm_minutes": cf.cycle.session_alarm_minutes,
                "common_threshold": cf.cycle.common_threshold,
                "feedback_reminder_days": fb.reminder_days,
                "mail": rf.mail.model_dump(),
                "dispatch": cf.dispatch.model_dump(),
                # What the region says and who it is, per language (state.CycleView reads
                # them): kept with the cycle, as ``mail`` is, so the schema stays as it was.
                "texts": {
                    "topic": _norm(cf.texts.topic, lang),
                    "law": _norm(cf.texts.law, lang),
                    "agenda": [_norm(t, lang) for t in cf.texts.agenda],
                    "background": [_norm(t, lang) for t in cf.texts.background],
                },
                "sender_name": _norm(rf.region.sender.name, lang),
                "contact": (
                    {
                        "name": _norm(rf.region.contact.name, lang),
                        "email": str(rf.region.contact.email),
                        "phone": rf.region.contact.phone,
                    }
                    if rf.region.contact
                    else None
                ),
                # Only those given: the others follow the region's languages.
                "municipality_languages": {
                    m.id: list(m.languages) for m in rf.municipalities if m.languages
                },
            },
        },
    )
    result.cycle_id = cycle.id
    cid = {"cycle_id": cycle.id}
    for i, pa in enumerate(cf.goal_matrix.priority_areas):
        up(db.PriorityArea, {**cid, "key": pa.id}, {"name": _norm(pa.name, lang), "position": i})
    for i, sa in enumerate(cf.goal_matrix.service_areas):
        up(db.ServiceArea, {**cid, "key": sa.id}, {"name": _norm(sa.name, lang), "position": i})
    for cell in cf.goal_matrix.cells:
        up(
            db.GoalCell,
            {**cid, "priority_area_key": cell.priority_area, "service_area_key": cell.service_area},
            {"goal": _norm(cell.goal, lang), "background": _norm(cell.background, lang)},
        )

    if indicators.store(session, cycle, config, data.values):
        result.changes.append(
            f"indicators: {len(cf.indicators.items)} indicators, {len(data.values)} values"
        )

    session_keys = set()
    for s in cf.sessions:
        existing = session.scalars(
            select(db.MeetingSession).filter_by(**cid, key=s.id)
        ).one_or_none()
        values = {
            "kind": s.kind,
            "group_id": groups[s.group].id if s.group else None,
            "title": _norm(s.title, lang),
            "start": s.start,
            "end": s.end,
            "online_url": s.online_url,
            "place": s.place,
            "invite_types": list(s.invite),
            "status": s.status,
        }
        calendar_fields = ("start", "end", "online_url", "place", "status", "title")
        moved = existing is not None and any(
            getattr(existing, k) != values[k] for k in calendar_fields
        )
        row = up(db.MeetingSession, {**cid, "key": s.id}, values)
        if moved:
            row.sequence += 1
        session_keys.add(s.id)
    for row in session.scalars(select(db.MeetingSession).filter_by(**cid)):
        if row.key not in session_keys and row.status != "cancelled":
            row.status = "cancelled"
            row.sequence += 1
            result.changes.append(f"cancelled session {row.key} (removed from the config)")

    session.flush()
    if result.changes:
        db.audit(
            session,
            "config.load",
            f"cycle {rf.region.id}/{cf.cycle.year}",
            actor,
            changes=result.changes,
        )
    return result
