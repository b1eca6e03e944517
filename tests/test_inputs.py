"""Every file a person gives hytetu, through the CLI (Typer's CliRunner): a missing,
unreadable, folder or wrong-type file, or a CSV with broken quoting, is refused with exit
code 2 and a message naming the file (and the row), never a traceback; nothing is written.

The tests may run as root, whom no file mode keeps out: then "unreadable" is the
PermissionError the operating system would raise, raised by ``Path.open`` for that file.
"""

from __future__ import annotations

import errno
import os
import re
import time
import zipfile
from collections.abc import Callable
from html import escape
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import func, select
from typer.testing import CliRunner

from bench.stress import comment, export_xlsx, spaces
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


# --- limits: oversized files and zip bombs ---------------------------------------------------

ROW = "{n};24.10.2025 9:12;Jämsän kaupunki;Kunta;Jämsä;;;Liikuntapaikkojen esteettömyys ensin;\n"


def set_import(folder: Path, **settings: object) -> None:
    """``feedback.import`` of the config's cycle.yaml set to ``settings`` (and no more)."""
    cycle = folder / "cycle.yaml"
    text = re.sub(r"  import:\n(    .*\n)*", "", cycle.read_text(encoding="utf-8"))
    lines = "".join(f"    {k}: {v}\n" for k, v in settings.items())
    assert text.count("  url: https://palaute") == 1
    text = text.replace("  url: https://palaute", f"  import:\n{lines}  url: https://palaute")
    cycle.write_text(text, encoding="utf-8")


def test_an_xlsx_that_unpacks_to_200_mb_is_refused_from_its_zip_directory(
    cli_db: str, tmp_path: Path
) -> None:
    bomb = export_xlsx(tmp_path / "vastaukset.xlsx", spaces(200))
    assert bomb.stat().st_size < 1024 * 1024
    started = time.monotonic()
    result = invoke("feedback", "import", str(bomb))
    refused(result, bomb, "xl/worksheets/sheet1.xml", "zip bomb", "refused unopened")
    assert time.monotonic() - started < 5
    assert responses(cli_db) == 0
    refused(invoke("notes", "import", str(bomb)), bomb, "zip bomb")


def test_an_xlsx_over_the_unpacked_limit_is_refused_naming_the_setting(
    cli_db: str, example: Path, tmp_path: Path
) -> None:
    big = export_xlsx(tmp_path / "vastaukset.xlsx", comment(3))
    set_import(example, max_unpacked_mb=2)
    result = invoke("feedback", "import", str(big))
    refused(result, big, "more than 2 MB", "max_unpacked_mb in feedback.import of cycle.yaml")
    assert responses(cli_db) == 0


def test_a_huge_xml_comment_in_a_sheet_is_refused_before_openpyxl_parses_it(
    cli_db: str, tmp_path: Path
) -> None:
    """Python's expat takes time in the square of a token's length (28 s for 20 MB): a
    token over 1 MB is refused by a linear scan before."""
    hostile = export_xlsx(tmp_path / "vastaukset.xlsx", comment(3))
    started = time.monotonic()
    result = invoke("feedback", "import", str(hostile))
    refused(result, hostile, "xl/worksheets/sheet1.xml", "an XML comment of", "refused unparsed")
    assert time.monotonic() - started < 5
    assert responses(cli_db) == 0


MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
DOC_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def shared_strings_xlsx(path: Path, rows: list[list[str]]) -> Path:
    """A workbook written the way Excel and Microsoft Forms write one: every text in
    xl/sharedStrings.xml, the sheet's cells pointing to them (openpyxl writes inline)."""
    strings: dict[str, int] = {}
    cells = []
    for r, row in enumerate(rows, 1):
        refs = "".join(
            f'<c r="{chr(65 + c)}{r}" t="s"><v>{strings.setdefault(v, len(strings))}</v></c>'
            for c, v in enumerate(row)
        )
        cells.append(f'<row r="{r}">{refs}</row>')
    shared = "".join(f"<si><t>{escape(v)}</t></si>" for v in strings)
    ct = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    parts = {
        "[Content_Types].xml": (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{ct}.sheet.main+xml"/>'
            f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{ct}.worksheet+xml"/>'
            f'<Override PartName="/xl/sharedStrings.xml" ContentType="{ct}.sharedStrings+xml"/>'
            "</Types>"
        ),
        "_rels/.rels": (
            f'<Relationships xmlns="{RELS}"><Relationship Id="rId1" Type="{DOC_RELS}/'
            'officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            f'<workbook xmlns="{MAIN}" xmlns:r="{DOC_RELS}"><sheets>'
            '<sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            f'<Relationships xmlns="{RELS}">'
            f'<Relationship Id="rId1" Type="{DOC_RELS}/worksheet" Target="worksheets/sheet1.xml"/>'
            f'<Relationship Id="rId2" Type="{DOC_RELS}/sharedStrings" Target="sharedStrings.xml"/>'
            "</Relationships>"
        ),
        "xl/worksheets/sheet1.xml": f'<worksheet xmlns="{MAIN}"><sheetData>{"".join(cells)}'
        "</sheetData></worksheet>",
        "xl/sharedStrings.xml": f'<sst xmlns="{MAIN}" uniqueCount="{len(strings)}">{shared}</sst>',
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, xml in parts.items():
            z.writestr(name, '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + xml)
    return path


def test_shared_strings_past_the_cell_limit_are_refused_before_they_are_loaded(
    cli_db: str, example: Path, tmp_path: Path
) -> None:
    """openpyxl loads all shared strings at once; they count as cells."""
    header = ["Vastausaika", "Kunta tai kuntaryhmä", "Näkemys"]
    rows = [header] + [
        ["24.10.2025 9:12", "Jämsä", f"Näkemys {n}: {os.urandom(8).hex()}"] for n in range(30_000)
    ]
    many = shared_strings_xlsx(tmp_path / "vastaukset.xlsx", rows)
    set_import(example, max_cells=20_000)
    result = invoke("feedback", "import", str(many))
    refused(result, many, "xl/sharedStrings.xml", "more than 20000 shared strings")
    assert responses(cli_db) == 0
    # the same way of writing, small: imports
    small = shared_strings_xlsx(tmp_path / "pieni.xlsx", rows[:3])
    result = invoke("feedback", "import", str(small))
    assert result.exit_code == 0, result.output
    assert responses(cli_db) == 2


def test_a_csv_over_the_size_or_row_limit_is_refused(
    cli_db: str, example: Path, tmp_path: Path
) -> None:
    export = tmp_path / "vastaukset.csv"
    with export.open("w", encoding="utf-8") as f:
        f.write(HEADER + "\n")
        block = "".join(ROW.format(n=n) for n in range(10_000))  # about 0.8 MB
        for _ in range(26):
            f.write(block)
    assert export.stat().st_size > 20 * 1024 * 1024
    refused(invoke("feedback", "import", str(export)), export, "too large", "the limit is 20 MB")
    # a device that never ends, under a CSV's name: read up to the limit, then refused
    endless = tmp_path / "endless.csv"
    endless.symlink_to("/dev/zero")
    refused(invoke("feedback", "import", str(endless)), endless, "more than 20 MB")

    export.write_text(HEADER + "\n" + "".join(ROW.format(n=n) for n in range(150)), "utf-8")
    set_import(example, max_rows=100)
    result = invoke("feedback", "import", str(export))
    refused(result, f"{export}:101:", "more than 100 rows", "max_rows in feedback.import")
    set_import(example, max_file_mb=0.005)
    refused(invoke("feedback", "import", str(export)), export, "max_file_mb in feedback.import")
    assert responses(cli_db) == 0


def test_a_config_file_over_the_yaml_limit_is_refused(
    example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYTETU_DATABASE_URL", f"sqlite:///{tmp_path / 'hytetu.db'}")
    region = example / "region.yaml"
    with region.open("a", encoding="utf-8") as f:
        for n in range(40_000):  # 3 MB of comments: a mistake, not a config
            f.write(f"# kunta {n}: Jyväskylä, Jämsä, Äänekoski, Kinnula, Kivijärvi, Petäjävesi\n")
    for command in ("validate", "load"):
        result = invoke(command, str(example))
        refused(result, region, "too large", "HYTETU_MAX_YAML_MB in the environment")
    monkeypatch.setenv("HYTETU_MAX_YAML_MB", "5")
    assert invoke("validate", str(example)).exit_code == 0
