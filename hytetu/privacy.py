"""What is stored about one person (GDPR art. 15, right of access): ``export_person``.

Everything the database holds about an e-mail address, as plain JSON-ready data: the
contact rows (name, organisation, role), the feedback responses given with that address
and their answers, the invitations and messages sent to it (subject, date, purpose, state;
not the stored copies), and the audit entries that name it. The address is compared
case-insensitively, always as a bound parameter. Retention (deleting old cycles' personal
data) is ``hytetu.feedback.purge_personal_data`` in the database, then ``purge_copies``
for the copies outside it (the output folder, the form exports, Prefect's artifacts).
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
from hytetu.feedback import EMAIL_IN_TEXT, REGISTRY_PURPOSES, PurgeResult

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


# --- retention outside the database ---------------------------------------------------------


@dataclass
class CopiesPurged:
    """What ``purge_copies`` removed outside the database, and what it could not reach."""

    messages: list[str] = field(default_factory=list)  # .eml files deleted
    calendars: list[str] = field(default_factory=list)  # .ics feeds deleted
    exports: list[str] = field(default_factory=list)  # form exports deleted
    artifacts: int = 0  # Prefect artifacts deleted
    artifacts_checked: int = 0
    warnings: list[str] = field(default_factory=list)


def purge_copies(
    session: Session,
    out: Path,
    purged: PurgeResult,
    first_kept_year: int,
    now: datetime,
    prefect: bool = True,
) -> CopiesPurged:
    """After ``purge_personal_data``: the copies of the purged data outside the database.

    Deleted, not redacted: each is a copy whose content the database keeps as far as
    retention allows, and a redacted mail, feed or export would be a forgery of the
    original. In ``out`` (searched below it, for every region): the ``.eml`` files of the
    messages whose stored copy was purged (found by their Message-ID header; registry
    letters stay, as in the database) and the calendar feeds ``calendars/<year>-*.ics``
    of the purged cycles (their sessions are years past). In a purged cycle's config
    folder ``feedback/``: the exports imported for that cycle only; any other file there
    is reported, not touched, and so is a config folder under git (its history keeps
    them). In Prefect: every artifact that names a purged address, or that was made
    before ``first_kept_year`` and names any address but a registry's (Prefect's logs
    cannot be deleted through its API: reported)."""
    done = CopiesPurged()
    out = Path(out)
    messages = db.OutgoingMessage
    gone_ids = set(
        session.scalars(select(messages.message_id).where(messages.dedupe_key.like("purged:%")))
    )
    if out.is_dir():
        for path in sorted(out.rglob("*.eml")):
            if _message_id(path) in gone_ids:
                path.unlink(missing_ok=True)
                done.messages.append(str(path))
    old = list(session.scalars(select(db.Cycle).where(db.Cycle.year < first_kept_year)))
    if out.is_dir():
        for cycle in old:
            for path in sorted(out.rglob(f"calendars/{cycle.year}-*.ics")):
                path.unlink(missing_ok=True)
                done.calendars.append(str(path))
    _purge_exports(session, old, done)
    if prefect:
        registry = {
            a.lower()
            for m in session.scalars(
                select(messages).where(messages.purpose.in_(REGISTRY_PURPOSES))
            )
            for a in m.recipients
        }
        boundary = datetime(first_kept_year, 1, 1, tzinfo=now.tzinfo)
        _purge_artifacts(purged.addresses - _kept_addresses(session, old), registry, boundary, done)
    else:
        done.warnings.append("Prefect's artifacts were not checked (--no-prefect)")
    return done


def _message_id(path: Path) -> str | None:
    from email.parser import BytesHeaderParser
    from email.policy import default

    try:
        with path.open("rb") as f:
            headers = BytesHeaderParser(policy=default).parse(f)
    except (OSError, ValueError):
        return None
    value = headers.get("message-id")
    return str(value).strip() if value else None


def _kept_addresses(session: Session, old: list[db.Cycle]) -> set[str]:
    """Addresses the database still holds: the config's active contacts and everything
    of the kept cycles (an artifact naming one of them is not purged for it)."""
    old_ids = [c.id for c in old]
    kept = {a.lower() for a in session.scalars(select(db.Contact.email)) if a}
    responses = db.FeedbackResponse
    kept |= {
        a.lower()
        for a in session.scalars(
            select(responses.respondent_email).where(responses.cycle_id.not_in(old_ids))
        )
        if a
    }
    for recipients in session.scalars(
        select(db.OutgoingMessage.recipients).where(db.OutgoingMessage.cycle_id.not_in(old_ids))
    ):
        kept |= {a.lower() for a in recipients}
    return kept


def _purge_exports(session: Session, old: list[db.Cycle], done: CopiesPurged) -> None:
    from hytetu.errors import FeedbackImportError
    from hytetu.feedback_import import FEEDBACK_FOLDER, SUFFIXES, file_digest

    imports = db.FeedbackImport
    old_ids = {c.id for c in old}
    kept_digests = set(
        session.scalars(select(imports.sha256).where(imports.cycle_id.not_in(old_ids)))
    )
    kept_folders = {
        str(Path(c.config_folder).resolve())
        for c in session.scalars(select(db.Cycle).where(db.Cycle.id.not_in(old_ids)))
    }
    for cycle in old:
        folder = Path(cycle.config_folder) / FEEDBACK_FOLDER
        if not folder.is_dir():
            continue
        imported = set(session.scalars(select(imports.sha256).filter_by(cycle_id=cycle.id)))
        shared = str(Path(cycle.config_folder).resolve()) in kept_folders
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            if path.suffix.lower() not in SUFFIXES:
                continue
            try:
                digest = file_digest(path)
            except FeedbackImportError:  # unreadable: reported below, the purge goes on
                digest = ""
            if digest in kept_digests:
                continue
            if digest in imported and not shared:
                path.unlink(missing_ok=True)
                done.exports.append(str(path))
            else:
                done.warnings.append(
                    f"{path}: not removed (not an export imported for the purged cycle "
                    f"{cycle.year} alone); delete it if it holds personal data"
                )
        git = next((p for p in (folder, *folder.parents) if (p / ".git").exists()), None)
        if git is not None and done.exports:
            done.warnings.append(
                f"{git} is a git repository: the deleted exports stay in its history until "
                "it is rewritten (e.g. git filter-repo --invert-paths --path feedback/...)"
            )


def _purge_artifacts(
    purged: set[str], registry: set[str], boundary: datetime, done: CopiesPurged
) -> None:
    import asyncio

    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        done.warnings.append(
            "no Prefect API is configured (PREFECT_API_URL): Prefect's artifacts were not "
            "checked; run the purge again with it set to the server the flows ran on (the "
            "demo's runs are in its local Prefect home: `prefect server start`)"
        )
        return
    try:
        asyncio.run(_purge_artifacts_async(purged, registry, boundary, done))
    except Exception as e:  # no server, or a refusal: the database purge still stands
        done.warnings.append(
            f"Prefect's artifacts not reached ({type(e).__name__}: {str(e)[:200]}); run "
            "the purge again where the Prefect API (PREFECT_API_URL) answers"
        )
        return
    done.warnings.append(
        "Prefect's flow-run logs cannot be deleted through its API on their own: delete "
        "the purged cycles' flow runs (with their logs) in the UI or with "
        "`prefect flow-run delete ID`"
    )


async def _purge_artifacts_async(
    purged: set[str], registry: set[str], boundary: datetime, done: CopiesPurged
) -> None:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        offset, doomed = 0, []
        while True:
            page = await client.read_artifacts(limit=200, offset=offset)
            if not page:
                break
            offset += len(page)
            for artifact in page:
                done.artifacts_checked += 1
                text = _text(artifact.data) + " " + (artifact.description or "")
                named = {a.lower() for a in EMAIL_IN_TEXT.findall(text)}
                created = artifact.created
                early = created is not None and created < boundary
                if named & purged or (early and named - registry):
                    doomed.append(artifact.id)
        for artifact_id in doomed:
            await client.delete_artifact(artifact_id)
            done.artifacts += 1
