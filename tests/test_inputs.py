"""Every file a person gives hytetu, through the CLI (Typer's CliRunner): a missing,
unreadable, folder or wrong-type file, or a CSV with broken quoting, is refused with exit
code 2 and a message naming the file (and the row), never a traceback; nothing is written.

The tests may run as root, whom no file mode keeps out: then "unreadable" is the
PermissionError the operating system would raise, raised by ``Path.open`` for that file.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import func, select
from typer.testing import CliRunner

from hytetu import db
from hytetu.cli import app

HEADER = (
    "Vastaustunniste;Vastausaika;Organisaatio;Vastaajan tyyppi;Kunta tai kuntaryhmä;"
    "Painopiste;Palvelualue;Näkemys;Sähköposti"
)


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(app, list(args))
    # anything but typer.Exit means the CLI crashed (CliRunner hides the traceback)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    return result


def refused(result: Result, path: Path | str, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert str(path) in result.output
    for word in words:
        assert word in result.output, result.output


@pytest.fixture
def unreadable(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], Path]:
    """Makes a file unreadable: mode 000, and for root (who reads it anyway) the
    PermissionError of ``open``."""
    blocked: set[Path] = set()
    real_open = Path.open

    def guarded_open(self: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if self.absolute() in blocked:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

    def make(path: Path) -> Path:
        path.chmod(0)
        if os.access(path, os.R_OK):
            blocked.add(path.absolute())
            monkeypatch.setattr(Path, "open", guarded_open)
        return path

    return make


@pytest.fixture
def cli_db(loaded: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HYTETU_DATABASE_URL", loaded)
    return loaded


def responses(url: str) -> int:
    with db.session_scope(url) as s:
        return s.scalar(select(func.count()).select_from(db.FeedbackResponse)) or 0


# --- feedback import ------------------------------------------------------------------------


def test_feedback_import_refuses_a_missing_unreadable_folder_or_wrong_type_file(
    cli_db: str, tmp_path: Path, unreadable: Callable[[Path], Path]
) -> None:
    good = f"{HEADER}\n1;24.10.2025 9:12;Jämsän kaupunki;Kunta;Jämsä;;;Hyvä;\n"
    locked = tmp_path / "locked.csv"
    locked.write_text(good, encoding="utf-8")
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    cases = {
        tmp_path / "missing.csv": "file not found",
        unreadable(locked): "Permission denied",
        folder: "Is a directory",
        tmp_path / "missing.xlsx": "file not found",
        tmp_path / "in-a-file.csv" / "x.csv": "file not found",
    }
    (tmp_path / "in-a-file.csv").write_text("x")
    wrong = {
        "export.pdf": (b"%PDF-1.7\n", "unknown file type ('.pdf')"),
        "export": (good.encode(), "unknown file type (no extension)"),
        "fake.xlsx": (good.encode(), "not an XLSX workbook"),
        "image.csv": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary content"),
        "workbook.csv": (b"PK\x03\x04" + b"\x00" * 30, "this is an XLSX (zip) file"),
    }
    for name, (data, message) in wrong.items():
        (tmp_path / name).write_bytes(data)
        cases[tmp_path / name] = message
    for path, message in cases.items():
        refused(invoke("feedback", "import", str(path)), path, message)
    assert responses(cli_db) == 0


def test_a_csv_whose_quote_is_never_closed_is_refused_naming_its_row(
    cli_db: str, tmp_path: Path
) -> None:
    export = tmp_path / "export.csv"
    export.write_text(
        f"{HEADER}\n"
        "1;24.10.2025 9:12;Jämsän kaupunki;Kunta;Jämsä;;;Hyvä alku;a@jamsa.example\n"
        '2;25.10.2025 9:12;Keuruun kaupunki;Kunta;Keuruu;;;"Quote never closed;\n'
        "3;26.10.2025 9:12;Multian kunta;Kunta;Multia;;;Kolmas;\n",
        encoding="utf-8",
    )
    result = invoke("feedback", "import", str(export))
    refused(result, f"{export}:3:", "never closed")
    assert responses(cli_db) == 0


def test_a_csv_whose_unbalanced_quotes_would_merge_rows_is_refused_naming_the_row(
    cli_db: str, tmp_path: Path
) -> None:
    """The quote opened in row 3 is closed in what was row 4: a CSV reader makes one row of
    the two (2 imported out of 3, before). Refused, with the row and the line."""
    export = tmp_path / "export.csv"
    export.write_text(
        f"{HEADER}\n"
        "1;24.10.2025 9:12;Jämsän kaupunki;Kunta;Jämsä;;;Hyvä alku;a@jamsa.example\n"
        '2;25.10.2025 9:12;Keuruun kaupunki;Kunta;Keuruu;;;"Alkaa lainausmerkillä;\n'
        '3;26.10.2025 9:12;Multian kunta;Kunta;Multia;;;Ja loppuu tähän";\n',
        encoding="utf-8",
    )
    result = invoke("feedback", "import", str(export))
    refused(result, f"{export}:3:", "line 4", "rows would be merged")
    assert responses(cli_db) == 0
    # a quote closed with text after it (not the delimiter) is broken quoting too
    export.write_text(
        f'{HEADER}\n1;24.10.2025 9:12;"Jämsän" kaupunki;Kunta;Jämsä;;;Hyvä;\n', encoding="utf-8"
    )
    refused(invoke("feedback", "import", str(export)), f"{export}:2:", "not readable as CSV")


def test_answers_over_several_lines_still_import(cli_db: str, tmp_path: Path) -> None:
    """A quoted answer may hold line breaks, even lines with the delimiter in them."""
    export = tmp_path / "export.csv"
    export.write_text(
        f"{HEADER}\n"
        '1;24.10.2025 9:12;Jämsän kaupunki;Kunta;Jämsä;;;"Kolme asiaa:\n'
        "1) liikunta; 2) harrastukset; 3) kerhot\n"
        'Kiitos!";a@jamsa.example\n'
        "2;25.10.2025 9:12;Keuruun kaupunki;Kunta;Keuruu;;;Toinen;\n",
        encoding="utf-8",
    )
    result = invoke("feedback", "import", str(export))
    assert result.exit_code == 0, result.output
    assert "2 added" in result.output
    assert responses(cli_db) == 2


# --- session notes --------------------------------------------------------------------------


def test_notes_import_refuses_a_missing_unreadable_folder_or_wrong_type_file(
    cli_db: str, example: Path, tmp_path: Path, unreadable: Callable[[Path], Path]
) -> None:
    notes = example / "notes"
    yaml_file = next(notes.glob("*.yaml"))
    locked = tmp_path / yaml_file.name
    locked.write_bytes(yaml_file.read_bytes())
    (tmp_path / "folder.yaml").mkdir()
    (tmp_path / "notes.txt").write_bytes(yaml_file.read_bytes())
    (tmp_path / "notes.csv").write_text("a;b\n1;2\n")
    (tmp_path / "notes.xlsx").write_bytes(yaml_file.read_bytes())
    (tmp_path / "image.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    cases = {
        tmp_path / "missing.yaml": "file not found",
        tmp_path / "missing.xlsx": "file not found",
        unreadable(locked): "Permission denied",
        tmp_path / "folder.yaml": "Is a directory",
        tmp_path / "notes.txt": "unknown file type ('.txt')",
        tmp_path / "notes.csv": "unknown file type ('.csv')",
        tmp_path / "notes.xlsx": "not an XLSX workbook",
        tmp_path / "image.yaml": "not UTF-8",
    }
    for path, message in cases.items():
        refused(invoke("notes", "import", str(path)), path, message)


# --- validate and load a config -------------------------------------------------------------


@pytest.mark.parametrize("command", ["validate", "load"])
def test_a_config_that_cannot_be_read_is_refused_naming_the_file(
    command: str,
    example: Path,
    tmp_path: Path,
    unreadable: Callable[[Path], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HYTETU_DATABASE_URL", f"sqlite:///{tmp_path / 'hytetu.db'}")
    region, cycle = example / "region.yaml", example / "cycle.yaml"
    refused(invoke(command, str(tmp_path / "nowhere")), tmp_path / "nowhere", "file not found")
    (tmp_path / "notes.pdf").write_bytes(b"%PDF-1.7\n")
    refused(invoke(command, str(tmp_path / "notes.pdf")), tmp_path / "notes.pdf", "not a config")
    text = cycle.read_bytes()
    cycle.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00")
    refused(invoke(command, str(example)), cycle, "not UTF-8")
    cycle.unlink()
    cycle.mkdir()
    refused(invoke(command, str(example)), cycle, "Is a directory")
    cycle.rmdir()
    cycle.write_bytes(text)
    unreadable(region)
    refused(invoke(command, str(example)), region, "Permission denied")
    url = f"sqlite:///{tmp_path / 'hytetu.db'}"
    if (tmp_path / "hytetu.db").exists():  # migrated, perhaps, but nothing loaded
        with db.session_scope(url) as s:
            assert s.scalars(select(db.Region)).first() is None
        db.dispose(url)
