"""Session notes in: the secretary's notes of one session become its findings (nostot).

Notes come as YAML or as the XLSX workbook ``write_template`` makes for a session (one
row per goal cell with the goal and background filled in, findings one per line). Both
become the same ``SessionNotes``. Importing is all or nothing and idempotent: a corrected
file replaces that session's findings and the result says what changed; the same file
again changes nothing. An edited goal text in a workbook is a warning, not an error: the
row's cell keys, not its goal text, say where the findings belong.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlalchemy import delete, select

from hytetu import db
from hytetu.config import _pydantic_problems
from hytetu.errors import NotesError, Problem
from hytetu.inputs import Limits, UnreadableFile, check_workbook, open_input, read_input, wrong_type
from hytetu.safe import protect_workbook
from hytetu.state import CycleView
from hytetu.yamlsource import (
    MAX_YAML_MB_VAR,
    YamlSyntaxError,
    control_problems,
    load_yaml,
    yaml_limits,
)

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
    warnings: list[str] = field(default_factory=list)


def parse_notes(path: Path, view: CycleView) -> SessionNotes:
    """Read and check a notes file against the cycle. Raises ``NotesError``."""
    try:
        doc = load_yaml(path)
    except YamlSyntaxError as e:
        raise NotesError(f"{path}: cannot read the notes", problems=[e.problem]) from None
    if controls := control_problems(doc):
        raise NotesError(f"{path}: the notes are invalid", problems=controls)
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
    """The file's bytes for YAML; for a workbook its cell values (saving again without a
    change gives the same digest)."""
    if path.suffix.lower() == ".xlsx":
        return workbook_digest(path)
    try:
        return hashlib.sha256(read_input(path, None, yaml_limits(), MAX_YAML_MB_VAR)).hexdigest()
    except (UnreadableFile, YamlSyntaxError) as e:  # the import itself reports why
        return hashlib.sha256(str(e).encode()).hexdigest()


def import_notes_file(view: CycleView, path: Path) -> NotesResult:
    """Check and import one notes file (YAML or XLSX); all or nothing. The caller's
    transaction commits."""
    warnings: list[str] = []
    wrong = wrong_type(path, None, (".xlsx", ".yaml", ".yml"))
    if wrong is not None:
        raise NotesError(f"{path}: cannot read the notes", problems=[wrong])
    if path.suffix.lower() == ".xlsx":
        parsed, problems = parse_workbook(path, view)
        warnings = [str(p) for p in problems]
    else:
        parsed = parse_notes(path, view)
    named_for = path.stem
    if named_for != parsed.session and named_for in {s.key for s in view.sessions()}:
        raise NotesError(
            f"{path}: the notes are for another session",
            problems=[
                Problem(
                    str(path),
                    None,
                    "session",
                    f"the file is named for {named_for!r} but holds the notes of "
                    f"{parsed.session!r}",
                )
            ],
        )
    result = import_notes(view, parsed, notes_digest(path))
    result.warnings = warnings
    return result


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
    """notes/<session>.xlsx when the secretary's workbook is there, else notes/<session>.yaml."""
    folder = Path(view.cycle.config_folder) / "notes"
    workbook = folder / f"{session_key}.xlsx"
    return workbook if workbook.exists() else folder / f"{session_key}.yaml"


# --- the XLSX notes template ----------------------------------------------------------


@dataclass(frozen=True)
class WorkbookNames:
    """The sheet and column names of the notes workbook in one language."""

    findings: str
    general: str
    attendees: str
    remarks: str
    findings_header: tuple[str, ...]
    general_header: str
    attendees_header: tuple[str, str, str]
    remarks_header: str

    @property
    def sheets(self) -> tuple[str, str, str, str]:
        return (self.findings, self.general, self.attendees, self.remarks)


#: The workbook in Finnish and in Swedish. ``write_template`` writes the region's first
#: language; ``parse_workbook`` reads either (a secretary may have an older template).
WORKBOOK_NAMES = {
    "fi": WorkbookNames(
        findings="Nostot",
        general="Yleiset",
        attendees="Osallistujat",
        remarks="Järjestöt ja seurakunnat",
        findings_header=(
            "painopiste",
            "palvelualue",
            "Painopiste",
            "Palvelualue",
            "Tavoite",
            "Tausta",
            "Nostot (yksi per rivi)",
        ),
        general_header="Yleinen nosto",
        attendees_header=("Organisaatio", "Tyyppi", "Määrä"),
        remarks_header="Järjestöjen ja seurakuntien nosto",
    ),
    "sv": WorkbookNames(
        findings="Lyft",
        general="Allmänna",
        attendees="Deltagare",
        remarks="Organisationer och församlingar",
        findings_header=(
            "prioritering",
            "serviceområde",
            "Prioritering",
            "Serviceområde",
            "Mål",
            "Bakgrund",
            "Lyft (ett per rad)",
        ),
        general_header="Allmänt lyft",
        attendees_header=("Organisation", "Typ", "Antal"),
        remarks_header="Organisationernas och församlingarnas lyft",
    ),
}
_FI = WORKBOOK_NAMES["fi"]
FINDINGS_SHEET = _FI.findings
GENERAL_SHEET = _FI.general
ATTENDEES_SHEET = _FI.attendees
REMARKS_SHEET = _FI.remarks
MARKER_SHEET = "hytetu"
FORMAT = "hytetu-notes-1"
_FINDINGS_HEADER = _FI.findings_header
_BULLET = re.compile(r"^\s*(?:[•\-\*–·]|\d+[.)])\s+")


def workbook_names(language: str) -> WorkbookNames:
    return WORKBOOK_NAMES.get(language, _FI)


def goals_hash(view: CycleView, language: str | None = None) -> str:
    """The goal matrix's texts as the template showed them (in ``language``)."""
    _, _, cells = view.matrix()
    rows = sorted(
        (k[0], k[1], view.text(c.goal, language), view.text(c.background, language))
        for k, c in cells.items()
    )
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()


def write_template(
    view: CycleView, session_key: str, out: Path, language: str | None = None
) -> Path:
    """The notes workbook of one session, for the secretary to fill in during the meeting:
    sheets, columns and goal texts in ``language`` (default the region's first)."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, Protection

    session = next((s for s in view.sessions() if s.key == session_key), None)
    if session is None:
        keys = ", ".join(s.key for s in view.sessions())
        raise NotesError(
            f"unknown session {session_key!r}",
            problems=[Problem(str(out), None, "session", f"sessions are: {keys}")],
        )
    language = language or view.language
    if language not in view.region.languages:
        raise NotesError(
            f"no language {language!r} in the region",
            problems=[
                Problem(
                    str(out),
                    None,
                    "language",
                    f"the region's languages are {', '.join(view.region.languages)}",
                )
            ],
        )
    names = workbook_names(language)
    pas, sas, cells = view.matrix()
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = names.findings
    ws.append(list(names.findings_header))
    wrap = Alignment(wrap_text=True, vertical="top")
    for pa in pas:
        for sa in sas:
            cell = cells.get((pa.key, sa.key))
            if cell is None:
                continue
            ws.append(
                [
                    pa.key,
                    sa.key,
                    view.text(pa.name, language),
                    view.text(sa.name, language),
                    view.text(cell.goal, language),
                    view.text(cell.background, language),
                    None,
                ]
            )
            row = ws.max_row
            for c in ws[row]:
                c.alignment = wrap
            ws.cell(row, 7).protection = Protection(locked=False)
            ws.row_dimensions[row].height = 90
    for c in ws[1]:
        c.font = Font(bold=True)
    for letter, width in zip("ABCDEFG", (4, 4, 22, 22, 40, 30, 70), strict=True):
        ws.column_dimensions[letter].width = width
    ws.column_dimensions["A"].hidden = ws.column_dimensions["B"].hidden = True
    ws.protection.sheet = True  # goal texts are for reading; the findings column is open
    ws.freeze_panes = "C2"
    for title, header in (
        (names.general, [names.general_header]),
        (names.attendees, list(names.attendees_header)),
        (names.remarks, [names.remarks_header]),
    ):
        sheet = wb.create_sheet(title)
        sheet.append(header)
        for c in sheet[1]:
            c.font = Font(bold=True)
        sheet.column_dimensions["A"].width = 80 if len(header) == 1 else 40
    if session.attendees:
        attendees = wb[names.attendees]
        for a in session.attendees:
            attendees.append([a.get("organisation"), a.get("type"), a.get("count")])
    marker = wb.create_sheet(MARKER_SHEET)
    marker.append(["format", FORMAT])
    marker.append(["session", session.key])
    marker.append(["goals_sha256", goals_hash(view, language)])
    marker.append(["language", language])
    marker.sheet_state = "veryHidden"
    marker.protection.sheet = True
    protect_workbook(wb)  # names and texts starting with '=' etc. stay text, never formulas
    out.parent.mkdir(parents=True, exist_ok=True)
    wb.save(out)
    return out


#: A notes workbook is the template's few sheets; these bound a hostile or mistaken one.
LIMITS = Limits()


@contextmanager
def _workbook(path: Path) -> Iterator[Any]:
    """The workbook, read-only (streamed); its size and its zip's checked first."""
    from openpyxl import load_workbook

    def refused(problem: Problem) -> NotesError:
        return NotesError(f"{path}: cannot read the workbook", problems=[problem])

    try:
        handle = open_input(path)
    except UnreadableFile as e:
        raise refused(e.problem) from None
    with handle:
        try:
            check_workbook(handle, str(path), LIMITS)
            wb = load_workbook(handle, read_only=True, data_only=True)
        except UnreadableFile as e:
            raise refused(e.problem) from None
        except (zipfile.BadZipFile, KeyError, OSError, ValueError) as e:
            raise refused(
                Problem(str(path), None, "", f"not an XLSX workbook ({e.__class__.__name__})")
            ) from None
        try:
            for ws in wb.worksheets:
                ws.reset_dimensions()  # the rows as they are, not as the file claims
            yield wb
        finally:
            wb.close()


def _sheet_rows(path: Path, ws: Any, min_row: int = 1) -> Iterator[tuple[Any, ...]]:
    """The values of ``ws``'s rows from ``min_row``, refusing a sheet past the limits."""
    cells = 0
    for r, row in enumerate(ws.iter_rows(min_row=min_row, values_only=True), start=min_row):
        cells += len(row)
        if r > LIMITS.rows or cells > LIMITS.cells:
            what = f"{LIMITS.rows} rows" if r > LIMITS.rows else f"{LIMITS.cells} cells"
            raise NotesError(
                f"{path}: cannot read the workbook",
                problems=[Problem(str(path), r, ws.title, f"more than {what}: not notes")],
            )
        yield row


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def workbook_digest(path: Path) -> str:
    try:
        with _workbook(path) as wb:
            values = {
                ws.title: [[_text(v) for v in row] for row in _sheet_rows(path, ws)]
                for ws in wb.worksheets
            }
    except NotesError as e:  # unreadable: the import itself reports why
        return hashlib.sha256(str(e).encode()).hexdigest()
    return hashlib.sha256(json.dumps(values, ensure_ascii=False).encode()).hexdigest()


def parse_workbook(path: Path, view: CycleView) -> tuple[SessionNotes, list[Problem]]:
    """Read and check a notes workbook. Returns the notes and warnings; raises
    ``NotesError`` with a problem per bad row (file, row, sheet and column)."""
    with _workbook(path) as wb:
        return _parse_workbook(path, wb, view)


def _parse_workbook(path: Path, wb: Any, view: CycleView) -> tuple[SessionNotes, list[Problem]]:
    file = str(path)
    problems: list[Problem] = []
    warnings: list[Problem] = []

    def err(row: int | None, where: str, message: str) -> None:
        problems.append(Problem(file, row, where, message))

    if MARKER_SHEET not in wb.sheetnames:
        err(
            None,
            "",
            "not a hytetu notes workbook (its hidden marker sheet is missing); "
            "make one with: hytetu notes template SESSION --out FILE",
        )
        raise NotesError(f"{path}: the notes are invalid", problems=problems)
    marker = {
        _text(r[0]): _text(r[1] if len(r) > 1 else None)
        for r in _sheet_rows(path, wb[MARKER_SHEET])
        if r
    }
    session_key = marker.get("session", "")
    if session_key not in {s.key for s in view.sessions()}:
        err(None, f"{MARKER_SHEET}!B2", f"unknown session {session_key!r}")
    # The workbook's language: the marker's, else the one whose findings sheet it has.
    language = marker.get("language") or next(
        (lang for lang, n in WORKBOOK_NAMES.items() if n.findings in wb.sheetnames), "fi"
    )
    names = workbook_names(language)
    FINDINGS_SHEET, GENERAL_SHEET, ATTENDEES_SHEET, REMARKS_SHEET = names.sheets  # noqa: N806
    missing = [t for t in names.sheets if t not in wb.sheetnames]
    if missing:
        err(
            None,
            "",
            f"wrong sheets: missing {', '.join(repr(m) for m in missing)}; "
            f"the workbook has {', '.join(repr(n) for n in wb.sheetnames if n != MARKER_SHEET)}",
        )
        raise NotesError(f"{path}: the notes are invalid", problems=problems)
    if marker.get("goals_sha256") and marker["goals_sha256"] != goals_hash(
        view, language if "language" in marker else None
    ):
        warnings.append(
            Problem(
                file,
                None,
                MARKER_SHEET,
                "the goal matrix has changed since this template was made; check the rows",
                "warning",
            )
        )

    _, _, cells = view.matrix()
    findings: dict[tuple[str, str], list[str]] = {}
    ws = wb[FINDINGS_SHEET]
    header = tuple(_text(v) for v in next(ws.iter_rows(max_row=1, values_only=True), ()))
    if header[:7] != names.findings_header:
        err(
            1,
            f"{FINDINGS_SHEET}!1",
            f"unexpected columns {list(header)}; expected {list(names.findings_header)}",
        )
    for r, row in enumerate(_sheet_rows(path, ws, 2), start=2):
        row = tuple(row) + (None,) * (7 - len(row))
        pa, sa, goal, items = _text(row[0]), _text(row[1]), _text(row[4]), _text(row[6])
        if not (pa or sa or items):
            continue
        cell = cells.get((pa, sa))
        if cell is None:
            err(r, f"{FINDINGS_SHEET}!A{r}:B{r}", f"no goal-matrix cell {pa!r} × {sa!r}")
            continue
        if goal and goal != view.text(cell.goal, language):
            warnings.append(
                Problem(
                    file,
                    r,
                    f"{FINDINGS_SHEET}!E{r}",
                    "the goal text was edited; the template has "
                    f"{view.text(cell.goal, language)!r}",
                    "warning",
                )
            )
        for line in items.splitlines():
            text = _BULLET.sub("", line).strip()
            if len(text) > 2000:
                err(r, f"{FINDINGS_SHEET}!G{r}", "a finding is longer than 2000 characters")
            elif text:
                findings.setdefault((pa, sa), []).append(text)

    def column(title: str) -> list[str]:
        out = []
        for r, row in enumerate(_sheet_rows(path, wb[title], 2), start=2):
            text = _text(row[0] if row else None)
            if len(text) > 2000:
                err(r, f"{title}!A{r}", "longer than 2000 characters")
            elif text:
                out.append(text)
        return out

    general, remarks = column(GENERAL_SHEET), column(REMARKS_SHEET)
    attendees = []
    for r, row in enumerate(_sheet_rows(path, wb[ATTENDEES_SHEET], 2), start=2):
        row = tuple(row) + (None,) * (3 - len(row))
        org, kind, count = _text(row[0]), _text(row[1]) or "other", row[2]
        if not org and count in (None, ""):
            continue
        if not org:
            err(r, f"{ATTENDEES_SHEET}!A{r}", "the organisation is missing")
            continue
        try:
            n = 1 if count in (None, "") else int(str(count).strip())
            if n < 0:
                raise ValueError
        except ValueError:
            err(r, f"{ATTENDEES_SHEET}!C{r}", f"the count {count!r} is not a whole number")
            continue
        attendees.append(Attendee(organisation=org, type=kind, count=n))
    if not problems and not (findings or general or remarks):
        err(None, "", "the workbook is empty: no findings, general notes or remarks")
    if problems:
        raise NotesError(f"{path}: the notes are invalid", problems=problems)
    notes = SessionNotes(
        session=session_key,
        attendees=attendees,
        general=general,
        findings=[
            CellNotes(priority_area=pa, service_area=sa, items=items)
            for (pa, sa), items in findings.items()
        ],
        stakeholder_remarks=remarks,
    )
    return notes, warnings


def session_of(path: Path, view: CycleView) -> str:
    """The session a notes file is for (for messages before importing)."""
    if path.suffix.lower() == ".xlsx":
        return parse_workbook(path, view)[0].session
    return parse_notes(path, view).session
