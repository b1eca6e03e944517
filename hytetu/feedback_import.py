"""Form exports in: Webropol- and Microsoft-Forms-style CSV and XLSX files become feedback
responses (palautteet).

All or nothing: every row is checked first and any problem (named by file, row and column)
stops the import before anything is written. Re-importing a file, or a later export that
repeats earlier answers, adds nothing: each response has a content fingerprint. Fully empty
rows are skipped (exports often end with some); a row with content but no text is an error.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

from sqlalchemy import select

from hytetu import db, feedback
from hytetu.config import FeedbackImport, ImportField
from hytetu.errors import FeedbackImportError, Problem
from hytetu.inputs import (
    Limits,
    UnreadableFile,
    check_workbook,
    open_input,
    read_input,
    wrong_type,
)
from hytetu.safe import FORMULA_START
from hytetu.state import CycleView

FEEDBACK_FOLDER = "feedback"
SUFFIXES = (".csv", ".xlsx")
MAX_PROBLEMS = 100
LIMITS = {"organisation": 300, "email": 320}
DEFAULT_LIMIT = 200

# Who answers: the stored id, and the words a form may use for it (fi, sv, en).
RESPONDENT_TYPES: dict[str, tuple[str, ...]] = {
    "municipality": ("kunta", "kaupunki", "kommun", "stad"),
    "ngo": ("järjestö", "yhdistys", "organisation", "förening", "ngo"),
    "parish": ("seurakunta", "församling"),
    "employment_area": ("työllisyysalue", "sysselsättningsområde", "employment area"),
    "company": ("yritys", "palveluntuottaja", "företag", "tjänsteproducent"),
    "county_unit": ("hyvinvointialue", "välfärdsområde", "county"),
    "public_body": ("muu julkinen toimija", "annan offentlig aktör", "public body"),
    "resident": ("asukas", "kuntalainen", "invånare", "resident"),
    "other": ("muu", "annan", "other"),
}
# Values of the municipality column that mean "no one municipality".
WHOLE_REGION = ("koko alue", "koko hyvinvointialue", "koko maakunta", "hela området", "")
# Microsoft Forms writes this in the e-mail column of anonymous forms.
ANONYMOUS = ("anonymous", "anonyymi", "anonym")

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Finnish forms write the day first with dots (24.10.2025 9.12): never ambiguous.
_TIME_FORMATS = (
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y %H.%M.%S",
    "%d.%m.%Y %H.%M",
    "%d.%m.%Y klo %H.%M",
)
# With slashes the order is the export's language's: 10/24/2025 (US) or 24/10/2025 (UK).
_SLASH_TIMES = ("%H:%M:%S", "%H:%M", "%I:%M:%S %p", "%I:%M %p")
_SLASH_ORDERS = {"mdy": ("%m/%d/%Y", "month/day/year"), "dmy": ("%d/%m/%Y", "day/month/year")}
_SLASHED = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{4})\b")
_FIELDS: tuple[str, ...] = get_args(ImportField)
_REQUIRED = ("received_at", "text")


@dataclass
class ParsedResponse:
    row: int
    received_at: datetime
    text: str
    organisation: str | None = None
    respondent_type: str | None = None
    municipality_key: str | None = None
    group_key: str | None = None
    priority_area_key: str | None = None
    service_area_key: str | None = None
    email: str | None = None

    def fingerprint(self) -> str:
        parts = [
            "export",
            self.received_at.astimezone(UTC).isoformat(),
            self.organisation or "",
            self.municipality_key or self.group_key or "",
            self.text,
            (self.email or "").lower(),
        ]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


@dataclass
class ImportResult:
    file: str
    rows: int = 0
    added: int = 0
    duplicates: int = 0
    empty_rows: int = 0
    late: int = 0
    #: how the file's dates were read, when the file had to show it (10/24/2025)
    dates: str = ""
    problems: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "rows": self.rows,
            "added": self.added,
            "duplicates": self.duplicates,
            "empty_rows": self.empty_rows,
            "late": self.late,
            **({"dates": self.dates} if self.dates else {}),
        }


def _norm(value: str) -> str:
    return " ".join(unicodedata.normalize("NFC", value).split()).casefold()


# --- reading files ------------------------------------------------------------------


def _fail(display: str, line: int | None, column: str, message: str) -> FeedbackImportError:
    return _refused(display, Problem(display, line, column, message))


def _refused(display: str, problem: Problem) -> FeedbackImportError:
    return FeedbackImportError(f"{display}: cannot import the feedback", problems=[problem])


def _decode(data: bytes, display: str) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, or Windows-1252 (cp1252)."""
    if data.startswith(b"PK\x03\x04"):
        raise _fail(display, 1, "", "this is an XLSX (zip) file, not CSV: save it as .xlsx")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as e:
            raise _fail(display, _line_of(data, e.start), "", "broken UTF-16 text") from None
    if b"\x00" in data:
        raise _fail(
            display,
            _line_of(data, data.index(b"\x00")),
            "",
            "binary content (a NUL byte): not a CSV text file; export the form as CSV or XLSX",
        )
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as e:
            bad = e
            continue
        control = re.search(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]", text)
        if control:
            line = text.count("\n", 0, control.start()) + 1
            raise _fail(
                display,
                line,
                "",
                f"binary content (control character {ord(control.group()):#04x}): "
                "not a CSV text file; export the form as CSV or XLSX",
            )
        return text
    raise _fail(
        display,
        _line_of(data, bad.start),
        "",
        f"byte {data[bad.start]:#04x} is not text in UTF-8 or Windows-1252: not a CSV text file",
    )


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _read_csv(data: bytes, display: str, limits: Limits) -> list[tuple[int, list[Any]]]:
    text = _decode(data, display)
    first = text.split("\n", 1)[0]
    delimiter = max(";,\t", key=first.count)
    # strict: a quote that is never closed is an error, not a cell holding the rest of the file
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[tuple[int, list[Any]]] = []
    starts: list[int] = []  # the line of the file each row starts on
    counter = _Counter(display, limits)
    try:
        for number, row in enumerate(reader, start=1):
            counter.add(number, len(row))
            rows.append((number, row))
            starts.append(reader.line_num - sum(c.count("\n") for c in row))
    except csv.Error as e:
        if str(e) == "unexpected end of data":
            raise _fail(display, len(rows) + 1, "", _UNCLOSED) from None
        raise _fail(
            display,
            len(rows) + 1,
            "",
            f"not readable as CSV (line {reader.line_num} of the file): {e}; a quote that "
            "ends a quoted cell must be followed by the delimiter or the end of the line",
        ) from None
    fields = len(rows[0][1]) if rows else 0
    for (number, row), start in zip(rows, starts, strict=True):
        merged = _merged_line(row, delimiter, fields)
        if merged is not None:
            raise _fail(
                display,
                number,
                "",
                f"a quoted cell of this row (line {start} of the file) runs on over line "
                f"{start + merged}, which reads like a row of its own: the quotes are "
                "unbalanced and rows would be merged; fix the quoting (a quote inside a cell "
                "is written twice) or export the form again",
            )
    return rows


_UNCLOSED = (
    "a quote opened on this row is never closed: the rest of the file would be read as one "
    "cell; fix the quoting (a quote inside a cell is written twice) or export again"
)


def _merged_line(row: list[str], delimiter: str, fields: int) -> int | None:
    """The line (counted from the record's first) on which a quoted cell of ``row``
    swallows what reads as a row of its own: split at the delimiter (with the cells after
    it, on the cell's last line) it has the header's number of values, one of them a time.
    Answers over several lines are normal; a line of them that is a whole row is not."""
    if fields < 2:
        return None
    offset = 0
    for k, cell in enumerate(row):
        lines = cell.split("\n")
        for i, line in enumerate(lines[1:], start=1):
            parts = line.split(delimiter)
            after = len(row) - k - 1 if i == len(lines) - 1 else 0
            if len(parts) + after == fields and any(_naive_time(p) for p in parts):
                return offset + i
        offset += len(lines) - 1
    return None


class _Counter:
    """Refuses a file once it passes the row or cell limit, before more is read."""

    def __init__(self, display: str, limits: Limits) -> None:
        self.display, self.limits, self.cells = display, limits, 0

    def add(self, row: int, cells: int) -> None:
        self.cells += cells
        limits = self.limits
        if row > limits.rows:
            raise _fail(
                self.display,
                row,
                "",
                f"more than {limits.rows} rows, the limit{limits.hint('max_rows')}; "
                "split the export or raise the limit",
            )
        if self.cells > limits.cells:
            raise _fail(
                self.display,
                row,
                "",
                f"more than {limits.cells} cells by this row, the limit"
                f"{limits.hint('max_cells')}; split the export or raise the limit",
            )


def _read_xlsx(path: Path, display: str, limits: Limits) -> list[tuple[int, list[Any]]]:
    from openpyxl import load_workbook

    try:
        handle = open_input(path, display)
    except UnreadableFile as e:
        raise _refused(display, e.problem) from None
    with handle:
        try:
            check_workbook(handle, display, limits)
        except UnreadableFile as e:
            raise _refused(display, e.problem) from None
        try:
            book = load_workbook(handle, read_only=True, data_only=False)
        except (zipfile.BadZipFile, KeyError, OSError, ValueError) as e:
            raise _fail(display, None, "", f"not an XLSX workbook ({type(e).__name__})") from None
        except Exception as e:  # openpyxl raises its own InvalidFileException and friends
            raise _fail(display, None, "", f"not an XLSX workbook ({type(e).__name__})") from None
        try:
            sheet = book.worksheets[0]
            sheet.reset_dimensions()  # the rows as they are, not as the file's header claims
            counter = _Counter(display, limits)
            rows: list[tuple[int, list[Any]]] = []
            for i, row in enumerate(sheet.iter_rows(values_only=True), 1):
                counter.add(i, len(row))
                rows.append((i, list(row)))
            return rows
        finally:
            book.close()


def read_rows(
    path: Path, display: str | None = None, limits: Limits | None = None
) -> list[tuple[int, list[Any]]]:
    """(row number, cells) of the first sheet or the CSV; row 1 is normally the header
    (in a CSV the number is the line the record starts on). A file over ``limits`` is
    refused before it is parsed, or as soon as it passes the row or cell limit."""
    display = display or str(path)
    limits = limits or FeedbackImport().limits()
    wrong = wrong_type(path, display, (*SUFFIXES, ".txt"))
    if wrong is not None:
        raise _refused(display, wrong)
    if path.suffix.lower() == ".xlsx":
        return _read_xlsx(path, display, limits)
    try:
        data = read_input(path, display, limits, "max_file_mb")
    except UnreadableFile as e:
        raise _refused(display, e.problem) from None
    return _read_csv(data, display, limits)


# --- checking rows ------------------------------------------------------------------


class _Lookups:
    """Names and ids of the cycle's municipalities, groups and goal-matrix areas."""

    def __init__(self, view: CycleView) -> None:
        s, rid = view.session, view.region.id
        self.municipalities = _names(s.scalars(select(db.Municipality).filter_by(region_id=rid)))
        self.groups = _names(s.scalars(select(db.MunicipalityGroup).filter_by(region_id=rid)))
        pas, sas, _ = view.matrix()
        self.priority_areas = _names(pas)
        self.service_areas = _names(sas)
        self.whole_region = {_norm(w) for w in WHOLE_REGION} | {
            _norm(n) for n in view.region.name.values()
        }
        self.types = {_norm(k): k for k in RESPONDENT_TYPES} | {
            _norm(word): k for k, words in RESPONDENT_TYPES.items() for word in words
        }


def _names(rows: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in rows:
        out[_norm(r.key)] = r.key
        for name in (r.name or {}).values():
            out.setdefault(_norm(name), r.key)
    return out


def _header_index(
    header: list[Any], mapping: FeedbackImport
) -> tuple[dict[str, tuple[int, str]], list[str]]:
    """Which column holds each field: {field: (index, header text)} and the missing ones."""
    positions: dict[str, int] = {}
    for i, cell in enumerate(header):
        if cell is not None and str(cell).strip():
            positions.setdefault(_norm(str(cell).lstrip("\ufeff")), i)
    found: dict[str, tuple[int, str]] = {}
    missing = []
    for name in _FIELDS:
        alternatives = getattr(mapping, name)
        hit = next((a for a in alternatives if _norm(a) in positions), None)
        if hit is not None:
            found[name] = (positions[_norm(hit)], str(header[positions[_norm(hit)]]).strip())
        elif name in _REQUIRED or name not in mapping.optional:
            missing.append(name)
    return found, missing


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _naive_time(value: Any, order: str | None = "any") -> datetime | None:
    """A cell's text read as a time in one of the formats form services export; slashed
    dates only in ``order`` (``_formats``)."""
    text = " ".join(_cell_text(value).split())
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    for fmt in _formats(order):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _formats(order: str | None) -> tuple[str, ...]:
    """The formats tried: the declared one alone (``%...``), or the dotted ones and, with
    ``order`` mdy/dmy, the slashed ones in that order (both with ``any``)."""
    if order and "%" in order:
        return (order,)
    orders = list(_SLASH_ORDERS) if order == "any" else [order] if order else []
    slashed = [f"{_SLASH_ORDERS[o][0]} {t}" for o in orders for t in _SLASH_TIMES]
    return (*_TIME_FORMATS, *slashed)


def _date_order(
    display: str, rows: list[tuple[int, Any]], column: str, mapping: FeedbackImport
) -> tuple[str | None, str]:
    """How the file writes its times: the declared ``date_format``, or for slashed dates
    the order its days over 12 show (mdy or dmy), and a note saying so. Refuses a file
    whose slashed dates read two ways and show no order, or show both."""
    if mapping.date_format:
        return mapping.date_format, f"times read as {mapping.date_format!r} (date_format)"
    evidence: dict[str, tuple[int, str]] = {}
    ambiguous: tuple[int, str] | None = None
    slashed = False
    for number, value in rows:
        text = _cell_text(value).strip()
        m = _SLASHED.match(text) if not isinstance(value, datetime) else None
        if not m:
            continue
        slashed = True
        first, second = int(m[1]), int(m[2])
        if first > 12:
            evidence.setdefault("dmy", (number, text))
        elif second > 12:
            evidence.setdefault("mdy", (number, text))
        elif first != second and ambiguous is None:
            ambiguous = (number, text)
    hint = (
        "set feedback.import.date_format in cycle.yaml, e.g. '%m/%d/%Y %I:%M %p' (US) or "
        "'%d/%m/%Y %H:%M'"
    )
    if len(evidence) == 2:
        (r1, t1), (r2, t2) = evidence["dmy"], evidence["mdy"]
        raise FeedbackImportError(
            f"{display}: cannot import the feedback; nothing was imported",
            problems=[
                Problem(
                    display,
                    r2,
                    column,
                    f"the dates are written two ways: {t1!r} (row {r1}) is day/month/year, "
                    f"{t2!r} is month/day/year; {hint}",
                )
            ],
        )
    if evidence:
        order, (row, text) = next(iter(evidence.items()))
        return order, f"dates read as {_SLASH_ORDERS[order][1]} (row {row}: {text!r})"
    if ambiguous is not None:
        row, text = ambiguous
        raise _fail(
            display,
            row,
            column,
            f"ambiguous date {text!r}: month/day/year or day/month/year? No date in the "
            f"file has a day over 12 to tell; {hint}",
        )
    # no slashed dates, or only ones that read the same both ways (10/10/2025)
    return ("mdy" if slashed else None), ""


def _parse_time(value: Any, view: CycleView, order: str | None = None) -> datetime | None:
    moment = value if isinstance(value, datetime) else _naive_time(value, order)
    if moment is None:
        return None
    # Form services export local wall-clock times: the region's zone.
    return moment.replace(tzinfo=view.tz) if moment.tzinfo is None else moment


def parse_export(
    view: CycleView, path: Path, mapping: FeedbackImport, display: str | None = None
) -> tuple[list[ParsedResponse], int, str]:
    """Check every row of an export; return the responses, the number of empty rows and
    how its dates were read ("" when nothing needed saying). Raises
    ``FeedbackImportError`` listing every problem (row, column) found."""
    display = display or str(path)
    rows = read_rows(path, display, mapping.limits())
    nonempty = [(n, cells) for n, cells in rows if any(_cell_text(c).strip() for c in cells)]
    if not nonempty:
        raise _fail(display, None, "", "the file has no header row and no responses")
    header_row, header = nonempty[0]
    columns, missing = _header_index(header, mapping)
    if missing:
        shown = ", ".join(repr(str(c).strip()) for c in header if c is not None)[:300]
        missing_columns = [
            Problem(
                display,
                header_row,
                " / ".join(getattr(mapping, name)),
                f"missing column for {name.replace('_', ' ')}: none of "
                f"{', '.join(repr(a) for a in getattr(mapping, name))} is in the header "
                f"(columns: {shown}); fix the file, or feedback.import in cycle.yaml "
                f"(name the column under {name}"
                + ("" if name in _REQUIRED else f", or add {name} to optional")
                + ")",
            )
            for name in missing
        ]
        raise FeedbackImportError(
            f"{display}: cannot import the feedback", problems=missing_columns
        )

    at, column = columns["received_at"]
    order, dates = _date_order(
        display,
        [(n, cells[at] if at < len(cells) else None) for n, cells in rows if n > header_row],
        column,
        mapping,
    )
    lookups = _Lookups(view)
    problems: list[Problem] = []
    parsed: list[ParsedResponse] = []
    empty = 0
    for number, cells in (r for r in rows if r[0] > header_row):
        values = {name: cells[i] if i < len(cells) else None for name, (i, _) in columns.items()}
        if not any(_cell_text(v).strip() for v in values.values()):
            empty += 1
            continue
        row_problems: list[Problem] = []

        def problem(
            name: str, message: str, number: int = number, out: list[Problem] = row_problems
        ) -> None:
            out.append(Problem(display, number, columns[name][1], message))

        texts: dict[str, str] = {}
        for name, value in values.items():
            if isinstance(value, datetime):
                continue
            text = _cell_text(value)
            stripped = text.strip()
            if stripped[:1] in FORMULA_START or text[:1] in FORMULA_START:
                start = (stripped or text)[:1]
                problem(
                    name,
                    f"starts with {start!r}: a spreadsheet would run the cell as a formula "
                    "(formula injection); remove or reword the start of the cell",
                )
                continue
            limit = mapping.max_text if name == "text" else LIMITS.get(name, DEFAULT_LIMIT)
            if len(stripped) > limit:
                problem(name, f"too long: {len(stripped)} characters, at most {limit}")
                continue
            texts[name] = stripped
        received = values.get("received_at")
        moment = _parse_time(received, view, order) if _cell_text(received).strip() else None
        if not _cell_text(received).strip():
            problem("received_at", "the time of the response is empty")
        elif moment is None:
            problem(
                "received_at",
                f"not a date and time: {_cell_text(received)[:40]!r} "
                + (
                    f"(date_format is {mapping.date_format!r})"
                    if mapping.date_format
                    else "(e.g. 19.12.2025 23:59 or 2025-12-19T23:59)"
                ),
            )
        if "text" in texts and not texts["text"]:
            problem("text", "the text of the response is empty")
        item = ParsedResponse(
            row=number,
            received_at=moment or datetime.now(view.tz),
            text=texts.get("text", ""),
            organisation=texts.get("organisation") or None,
        )
        kind = texts.get("respondent_type")
        if kind:
            if _norm(kind) in lookups.types:
                item.respondent_type = lookups.types[_norm(kind)]
            else:
                problem(
                    "respondent_type",
                    f"unknown respondent type {kind!r} (use one of "
                    f"{', '.join(RESPONDENT_TYPES)} or their Finnish or Swedish names)",
                )
        place = texts.get("municipality")
        if place is not None and _norm(place) not in lookups.whole_region:
            if _norm(place) in lookups.municipalities:
                item.municipality_key = lookups.municipalities[_norm(place)]
            elif _norm(place) in lookups.groups:
                item.group_key = lookups.groups[_norm(place)]
            else:
                problem("municipality", f"unknown municipality or group {place!r}")
        for name, table, attr in (
            ("priority_area", lookups.priority_areas, "priority_area_key"),
            ("service_area", lookups.service_areas, "service_area_key"),
        ):
            value = texts.get(name)
            if value:
                if _norm(value) in table:
                    setattr(item, attr, table[_norm(value)])
                else:
                    known = ", ".join(sorted(set(table.values())))
                    problem(name, f"unknown {name.replace('_', ' ')} {value!r} ({known})")
        address = texts.get("email")
        if address and _norm(address) not in ANONYMOUS:
            if _EMAIL.match(address):
                item.email = address
            else:
                problem("email", f"not an e-mail address: {address[:60]!r}")
        if row_problems:
            problems.extend(row_problems)
        else:
            parsed.append(item)
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise FeedbackImportError(
            f"{display}: cannot import the feedback; nothing was imported",
            problems=problems[:MAX_PROBLEMS],
        )
    return parsed, empty, dates


# --- importing ----------------------------------------------------------------------


def file_digest(path: Path) -> str:
    """The SHA-256 of the file's bytes, read in pieces (an oversized export is refused by
    the import, not here)."""
    try:
        with open_input(path) as f:
            digest = hashlib.sha256()
            while chunk := f.read(1 << 20):
                digest.update(chunk)
            return digest.hexdigest()
    except UnreadableFile as e:
        raise _refused(str(path), e.problem) from None


def import_file(
    view: CycleView, path: Path, mapping: FeedbackImport | None = None, display: str | None = None
) -> ImportResult:
    """Check and import one export; all or nothing. The caller's transaction commits."""
    path = Path(path)
    display = display or str(path)
    mapping = mapping or mapping_for(view)
    parsed, empty, dates = parse_export(view, path, mapping, display)
    result = ImportResult(display, rows=len(parsed), empty_rows=empty, dates=dates)
    known = set(
        view.session.scalars(
            select(db.FeedbackResponse.fingerprint).filter_by(cycle_id=view.cycle.id)
        )
    )
    for item in parsed:
        fp = item.fingerprint()
        if fp in known:
            result.duplicates += 1
            continue
        known.add(fp)
        late = feedback.is_late(view, item.received_at)
        view.session.add(
            db.FeedbackResponse(
                cycle_id=view.cycle.id,
                fingerprint=fp,
                respondent_org=item.organisation,
                respondent_type=item.respondent_type,
                respondent_email=item.email,
                municipality_key=item.municipality_key,
                group_key=item.group_key,
                priority_area_key=item.priority_area_key,
                service_area_key=item.service_area_key,
                text=item.text,
                received_at=item.received_at,
                channel="export",
                late=late,
            )
        )
        result.added += 1
        result.late += late
    digest = file_digest(path)
    seen = view.session.scalars(
        select(db.FeedbackImport).filter_by(cycle_id=view.cycle.id, sha256=digest)
    ).first()
    if seen is None:
        view.session.add(
            db.FeedbackImport(
                cycle_id=view.cycle.id,
                filename=path.name[:300],
                sha256=digest,
                rows=result.rows,
                added=result.added,
            )
        )
    view.session.flush()
    db.audit(view.session, "feedback.import", path.name[:200], **result.as_dict())
    return result


def mapping_for(view: CycleView) -> FeedbackImport:
    """The column mapping of the cycle's config folder (the defaults if it has none)."""
    from hytetu.config import load_config

    folder = Path(view.cycle.config_folder)
    if not (folder / "cycle.yaml").exists():
        return FeedbackImport()
    return load_config(folder).cycle_file.feedback.import_


def export_files(view: CycleView) -> list[Path]:
    """The exports waiting in the config folder's feedback/ folder, by name."""
    folder = Path(view.cycle.config_folder) / FEEDBACK_FOLDER
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)


def changed_exports(view: CycleView) -> list[Path]:
    """Exports whose content has not been imported yet."""
    done = set(
        view.session.scalars(select(db.FeedbackImport.sha256).filter_by(cycle_id=view.cycle.id))
    )
    return [p for p in export_files(view) if file_digest(p) not in done]
