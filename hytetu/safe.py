"""Neutralising user text where another program would read it as code.

One place for the rules every export follows: a spreadsheet cell that begins with a formula
character (CSV injection, OWASP), and characters no one-line field or text file should
carry (control characters that break e-mail headers, iCalendar lines or PostgreSQL).
"""

from __future__ import annotations

import re
from typing import Any

#: A spreadsheet (Excel, LibreOffice, Google Sheets) runs a cell starting with one of
#: these as a formula: ``=HYPERLINK(...)``, ``@SUM(...)``, ``+cmd|...``, a tab or CR first.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

#: C0 controls except tab, LF and CR, DEL and the C1 controls: never meant in a text.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

#: Everything ``str.splitlines`` (and so the ``email`` package) takes for a line break.
LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+")


def csv_cell(value: Any) -> Any:
    """``value`` for a CSV cell: text starting with a formula character gets a leading
    apostrophe, which spreadsheets show as text and never run."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_row(row: dict[str, Any]) -> dict[str, Any]:
    return {key: csv_cell(value) for key, value in row.items()}


def protect_workbook(workbook: Any) -> None:
    """Make every text cell of an openpyxl workbook that starts with a formula character a
    plain string with Excel's quote prefix (what typing an apostrophe first does), so it is
    stored as text, shown unchanged and not run even when the cell is edited."""
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.value.startswith(FORMULA_START):
                    cell.data_type = "s"
                    cell.quotePrefix = True


def one_line(value: str) -> str:
    """A single line: every kind of line break (and tab) becomes a space, other control
    characters go; for e-mail headers, display names and iCalendar parameters."""
    return CONTROL.sub("", LINE_BREAKS.sub(" ", value.replace("\t", " ")))


def plain_text(value: str) -> str:
    """Text that may span lines: line breaks become ``\\n``, other control characters go."""
    return CONTROL.sub("", LINE_BREAKS.sub(_newlines, value))


def _newlines(match: re.Match[str]) -> str:
    run = match.group()
    return "\n" * max(run.count("\n") + run.count("\r") - run.count("\r\n"), 1)
