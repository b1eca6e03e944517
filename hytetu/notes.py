"""Session notes in: the secretary's notes of one session become its findings (nostot).

Importing is all or nothing and idempotent: a corrected file replaces that session's
findings and the result says what changed; the same file again changes nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlalchemy import delete, select

from hytetu import db
from hytetu.config import _pydantic_problems
from hytetu.errors import NotesError
from hytetu.state import CycleView
from hytetu.yamlsource import YamlSyntaxError, load_yaml

Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Attendee(_Model):
    organisation: Line
    type: str = "other"
    count: int = Field(1, ge=0)


class CellNotes(_Model):
    priority_area: str
    service_area: str
    items: list[Line] = []


class SessionNotes(_Model):
    session: str
    attendees: list[Attendee] = []
    general: list[Line] = []
    findings: list[CellNotes] = []
    stakeholder_remarks: list[Line] = []


@dataclass
class NotesResult:
    session_key: str
    changed: bool
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def parse_notes(path: Path, view: CycleView) -> SessionNotes:
    """Read and check a notes file against the cycle. Raises ``NotesError``."""
    try:
        doc = load_yaml(path)
    except YamlSyntaxError as e:
        raise NotesError(f"{path}: cannot read the notes", problems=[e.problem]) from None
    try:
        notes = SessionNotes.model_validate(doc.data if doc.data is not None else {})
    except ValidationError as e:
        raise NotesError(
            f"{path}: the notes are invalid", problems=_pydantic_problems(doc, e)
        ) from None
    problems = []
    keys = {s.key for s in view.sessions()}
    if notes.session not in keys:
        problems.append(doc.problem(("session",), f"unknown session {notes.session!r}"))
    pas, sas, cells = view.matrix()
    for i, cell in enumerate(notes.findings):
        if (cell.priority_area, cell.service_area) not in cells:
            problems.append(
                doc.problem(
                    ("findings", i),
                    f"no goal-matrix cell {cell.priority_area} × {cell.service_area} "
                    f"(priority areas: {', '.join(p.key for p in pas)}; "
                    f"service areas: {', '.join(s.key for s in sas)})",
                )
            )
    if problems:
        raise NotesError(f"{path}: the notes are invalid", problems=problems)
    return notes


def _rows(notes: SessionNotes) -> list[tuple[str, str | None, str | None, str]]:
    rows: list[tuple[str, str | None, str | None, str]] = [
        ("general", None, None, t) for t in notes.general
    ]
    for cell in notes.findings:
        rows += [("cell", cell.priority_area, cell.service_area, t) for t in cell.items]
    rows += [("stakeholder", None, None, t) for t in notes.stakeholder_remarks]
    return rows


def notes_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def import_notes_file(view: CycleView, path: Path) -> NotesResult:
    """Check and import one notes file; all or nothing. The caller's transaction commits."""
    return import_notes(view, parse_notes(path, view), notes_digest(path))


def import_notes(view: CycleView, notes: SessionNotes, digest: str) -> NotesResult:
    """Replace the session's findings with ``notes``."""
    session_row = view.session.scalars(
        select(db.MeetingSession).filter_by(cycle_id=view.cycle.id, key=notes.session)
    ).one()
    if session_row.notes_hash == digest:
        return NotesResult(notes.session, changed=False)
    old = [
        f.text
        for f in view.session.scalars(select(db.Finding).filter_by(session_id=session_row.id))
    ]
    view.session.execute(delete(db.Finding).where(db.Finding.session_id == session_row.id))
    rows = _rows(notes)
    for position, (kind, pa, sa, text) in enumerate(rows):
        view.session.add(
            db.Finding(
                session_id=session_row.id,
                kind=kind,
                priority_area_key=pa,
                service_area_key=sa,
                text=text,
                position=position,
            )
        )
    session_row.notes_hash = digest
    session_row.attendees = [a.model_dump() for a in notes.attendees]
    new = [r[3] for r in rows]
    result = NotesResult(
        notes.session,
        changed=True,
        added=[t for t in new if t not in old],
        removed=[t for t in old if t not in new],
    )
    db.audit(
        view.session,
        "notes.import",
        f"session {notes.session}",
        added=len(result.added),
        removed=len(result.removed),
    )
    view.session.flush()
    return result


def notes_path(view: CycleView, session_key: str) -> Path:
    return Path(view.cycle.config_folder) / "notes" / f"{session_key}.yaml"
