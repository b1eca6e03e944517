"""Importing form exports: encodings, formats, duplicates, and every kind of bad input
named by file, row and column with nothing half-imported."""

from __future__ import annotations

import csv
import io
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import EXAMPLE, helsinki
from openpyxl import Workbook
from sqlalchemy import func, select
from typer.testing import CliRunner

from hytetu import db, feedback_import, phases
from hytetu.errors import FeedbackImportError
from hytetu.state import cycle_view

FOLDER = EXAMPLE / "feedback"
WEBROPOL = FOLDER / "webropol-vastaukset.csv"
FORMS = FOLDER / "forms-vastaukset.xlsx"


@pytest.fixture
def loaded(loaded_copy: str) -> str:
    """A private copy of the loaded example (its config folder is shared: read only)."""
    return loaded_copy


def example_rows() -> list[list[str]]:
    text = WEBROPOL.read_bytes().decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8", delimiter: str = ";"):
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def write_xlsx(path: Path, rows: list[list[object]]) -> Path:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    book.save(path)
    return path


def count(url: str) -> int:
    with db.session_scope(url) as s:
        return s.scalar(select(func.count()).select_from(db.FeedbackResponse)) or 0


def do_import(url: str, path: Path) -> feedback_import.ImportResult:
    with db.session_scope(url) as s:
        return feedback_import.import_file(cycle_view(s), path)


def test_example_exports_import_with_late_marks_and_ids(db_url: str, example: Path) -> None:
    phases.load(example, db_url)
    webropol = do_import(db_url, example / "feedback" / WEBROPOL.name)
    forms = do_import(db_url, example / "feedback" / FORMS.name)
    assert (webropol.added, webropol.late, forms.added, forms.late) == (36, 3, 8, 1)
    with db.session_scope(db_url) as s:
        rows = list(s.scalars(select(db.FeedbackResponse)))
        jamsa = next(r for r in rows if r.respondent_org == "Jämsän kaupunki")
        assert (jamsa.municipality_key, jamsa.respondent_type) == ("jamsa", "municipality")
        assert (jamsa.priority_area_key, jamsa.service_area_key) == (
            "arjen-turvallisuus",
            "ikaantyneet",
        )
        assert jamsa.respondent_email == "hyte@jamsa.example" and jamsa.channel == "export"
        by_group = [r for r in rows if r.group_key]
        assert {r.group_key for r in by_group} >= {"viitasaari-pihtipudas-kinnula"}
        # Microsoft Forms writes "anonymous" for anonymous answers: no address stored.
        assert not any(r.respondent_email == "anonymous" for r in rows)
        kivijarvi = next(r for r in rows if "tasapainoryhmät" in r.text)
        assert kivijarvi.received_at == helsinki("2025-11-06 09:44:02").astimezone(UTC)


@pytest.mark.parametrize(
    ("kind", "encoding"),
    [
        ("csv", "utf-8"),
        ("csv", "utf-8-sig"),
        ("csv", "cp1252"),
        ("csv-comma", "utf-8"),
        ("xlsx", None),
    ],
)
def test_each_encoding_and_format(loaded: str, tmp_path: Path, kind: str, encoding: str) -> None:
    rows = example_rows()
    if kind == "xlsx":
        path = write_xlsx(tmp_path / "export.xlsx", rows)
    else:
        path = write_csv(
            tmp_path / "export.csv", rows, encoding, "," if kind == "csv-comma" else ";"
        )
    result = do_import(loaded, path)
    assert (result.added, result.late) == (36, 3)
    with db.session_scope(loaded) as s:
        orgs = set(s.scalars(select(db.FeedbackResponse.respondent_org)))
        assert {"Jämsän kaupunki", "Äänekosken kaupunki", "Petäjäveden kunta"} <= orgs
        texts = list(s.scalars(select(db.FeedbackResponse.text)))
        assert any("Äitini kaatui kotona" in t for t in texts)


def test_reimport_adds_nothing_and_a_longer_export_adds_only_new(
    loaded: str, tmp_path: Path
) -> None:
    first = do_import(loaded, WEBROPOL)
    again = do_import(loaded, WEBROPOL)
    assert (first.added, again.added, again.duplicates) == (36, 0, 36)
    rows = example_rows()
    rows.append(
        ["1099", "18.12.2025 10:00", "Multian kunta", "Kunta", "Multia", "", "", "Uusi.", ""]
    )
    later = do_import(loaded, write_csv(tmp_path / "later.csv", rows, "utf-8-sig"))
    assert (later.added, later.duplicates) == (1, 36)
    assert count(loaded) == 37


def test_empty_rows_are_skipped(loaded: str, tmp_path: Path) -> None:
    rows = example_rows()
    rows[3:3] = [[], ["", "", "", "", "", "", "", "", ""]]
    rows.append([";;"])
    result = do_import(loaded, write_csv(tmp_path / "gaps.csv", rows))
    assert (result.added, result.empty_rows) == (36, 3)


def _set(rows: list[list[str]], row: int, column: str, value: str) -> list[list[str]]:
    rows[row - 1][rows[0].index(column)] = value
    return rows


BAD = [
    pytest.param(
        lambda r: _set(r, 4, "Kunta tai kuntaryhmä", "Atlantis"),
        (4, "Kunta tai kuntaryhmä", "unknown municipality or group 'Atlantis'"),
        id="unknown-municipality",
    ),
    *[
        pytest.param(
            lambda r, c=c: _set(r, 5, "Näkemys", f'{c}HYPERLINK("http://x.example")'),
            (5, "Näkemys", f"starts with {c!r}: a spreadsheet would run the cell as a formula"),
            id=f"formula-{c}",
        )
        for c in "=+-@"
    ],
    pytest.param(
        lambda r: _set(r, 6, "Organisaatio", "  =1+1"),
        (6, "Organisaatio", "starts with '='"),
        id="formula-after-spaces",
    ),
    pytest.param(
        lambda r: _set(r, 7, "Näkemys", "pitkä " * 1000),
        (7, "Näkemys", "too long: 5999 characters, at most 5000"),
        id="over-long-text",
    ),
    pytest.param(
        lambda r: _set(r, 8, "Näkemys", "   "),
        (8, "Näkemys", "the text of the response is empty"),
        id="empty-text",
    ),
    pytest.param(
        lambda r: _set(r, 9, "Vastausaika", "eilen"),
        (9, "Vastausaika", "not a date and time: 'eilen'"),
        id="bad-time",
    ),
    pytest.param(
        lambda r: _set(r, 10, "Painopiste", "Ruokavalio"),
        (10, "Painopiste", "unknown priority area 'Ruokavalio'"),
        id="unknown-priority-area",
    ),
    pytest.param(
        lambda r: _set(r, 11, "Vastaajan tyyppi", "Marsilainen"),
        (11, "Vastaajan tyyppi", "unknown respondent type 'Marsilainen'"),
        id="unknown-type",
    ),
    pytest.param(
        lambda r: _set(r, 12, "Sähköposti", "ei osoite"),
        (12, "Sähköposti", "not an e-mail address"),
        id="bad-email",
    ),
    pytest.param(
        lambda r: [[c for i, c in enumerate(row) if i != 7] for row in r],
        (
            1,
            "Näkemys / Din synpunkt / Your view",
            "missing column for text: none of 'Näkemys', 'Din synpunkt', 'Your view'",
        ),
        id="missing-column",
    ),
]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize(("change", "expected"), BAD)
def test_bad_input_names_row_and_column_and_imports_nothing(
    loaded: str, tmp_path: Path, fmt: str, change, expected: tuple[int, str, str]
) -> None:
    rows = change(example_rows())
    path = (
        write_csv(tmp_path / "bad.csv", rows, "utf-8-sig")
        if fmt == "csv"
        else write_xlsx(tmp_path / "bad.xlsx", rows)
    )
    with pytest.raises(FeedbackImportError) as info:
        do_import(loaded, path)
    line, column, message = expected
    problem = info.value.problems[0]
    assert (problem.file, problem.line, problem.field) == (str(path), line, column)
    assert message in problem.message
    assert f"{path}:{line}: {column}: " in str(info.value)
    assert count(loaded) == 0


def test_every_bad_row_is_listed(loaded: str, tmp_path: Path) -> None:
    rows = _set(_set(example_rows(), 3, "Kunta tai kuntaryhmä", "Atlantis"), 20, "Näkemys", "@x")
    with pytest.raises(FeedbackImportError) as info:
        do_import(loaded, write_csv(tmp_path / "two.csv", rows))
    assert [(p.line, p.field) for p in info.value.problems] == [
        (3, "Kunta tai kuntaryhmä"),
        (20, "Näkemys"),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (bytes(range(256)) * 4, "binary content (a NUL byte)"),
        (b"Vastausaika;N\xe4kemys\r\n1.12.2025 10:00;\x81\x8d\x8f\r\n", "byte 0x81 is not text"),
        (b"Vastausaika;Text\r\n1.12.2025 10:00;ok\x07\x1b\r\n", "control character 0x07"),
        (FORMS.read_bytes(), "this is an XLSX (zip) file, not CSV"),
    ],
    ids=["random-bytes", "undecodable", "control-characters", "xlsx-renamed"],
)
def test_binary_file_renamed_csv(loaded: str, tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "vastaukset.csv"
    path.write_bytes(content)
    with pytest.raises(FeedbackImportError) as info:
        do_import(loaded, path)
    assert message in info.value.problems[0].message
    assert info.value.problems[0].line is not None
    assert count(loaded) == 0


def test_text_renamed_xlsx_is_refused(loaded: str, tmp_path: Path) -> None:
    path = tmp_path / "vastaukset.xlsx"
    path.write_bytes(WEBROPOL.read_bytes())
    with pytest.raises(FeedbackImportError, match="not an XLSX workbook"):
        do_import(loaded, path)


def test_xlsx_formula_cell_is_refused(loaded: str, tmp_path: Path) -> None:
    rows: list[list[object]] = [list(r) for r in example_rows()]
    rows[2][rows[0].index("Organisaatio")] = '=HYPERLINK("http://x.example","klikkaa")'
    with pytest.raises(FeedbackImportError) as info:
        do_import(loaded, write_xlsx(tmp_path / "f.xlsx", rows))
    assert (info.value.problems[0].line, info.value.problems[0].field) == (3, "Organisaatio")


@pytest.mark.parametrize(
    ("received", "late", "utc"),
    [
        ("19.12.2025 23:59", False, datetime(2025, 12, 19, 21, 59, tzinfo=UTC)),
        ("20.12.2025 00:00", True, datetime(2025, 12, 19, 22, 0, tzinfo=UTC)),
        ("2025-12-19T23:59:59+02:00", False, datetime(2025, 12, 19, 21, 59, 59, tzinfo=UTC)),
        ("12/20/2025 12:00:30 AM", True, datetime(2025, 12, 19, 22, 0, 30, tzinfo=UTC)),
    ],
)
def test_deadline_in_helsinki_winter_time(
    loaded: str, tmp_path: Path, received: str, late: bool, utc: datetime
) -> None:
    rows = [
        example_rows()[0],
        ["1", received, "Jämsän kaupunki", "Kunta", "Jämsä", "", "", "x", ""],
    ]
    do_import(loaded, write_csv(tmp_path / "edge.csv", rows))
    with db.session_scope(loaded) as s:
        row = s.scalars(select(db.FeedbackResponse)).one()
        assert (row.late, row.received_at) == (late, utc)


def test_custom_column_mapping_from_cycle_yaml(sqlite_url: str, example: Path) -> None:
    cycle = example / "cycle.yaml"
    cycle.write_text(
        cycle.read_text(encoding="utf-8").replace(
            "  url: https://palaute.hyvaks.example/hytetu-2025\n",
            "  url: https://palaute.hyvaks.example/hytetu-2025\n"
            "  import:\n    text: [Vapaa palaute]\n    received_at: Aikaleima\n"
            # a form that asks only for a view: every other column may be missing
            "    optional: [organisation, respondent_type, municipality, priority_area,"
            " service_area, email]\n",
        ),
        encoding="utf-8",
    )
    phases.load(example, sqlite_url)
    rows = [["Aikaleima", "Vapaa palaute"], ["1.12.2025 10:00", "Toimiva malli."]]
    assert do_import(sqlite_url, write_csv(example / "x.csv", rows)).added == 1


def test_import_phase_is_due_when_an_export_changes(
    sqlite_url: str, example: Path, tmp_path: Path
) -> None:
    loaded = sqlite_url
    phases.load(example, loaded)
    assert "import_feedback" not in phases.due_phases(helsinki("2025-10-22 07:00"), loaded)
    assert "import_feedback" in phases.due_phases(helsinki("2025-10-23 07:00"), loaded)
    report = phases.run_phase("import_feedback", helsinki("2025-10-23 07:00"), tmp_path, loaded)
    assert report.did["files"][WEBROPOL.name]["added"] == 36
    assert report.did["files"][FORMS.name]["added"] == 8
    assert "import_feedback" not in phases.due_phases(helsinki("2025-10-24 07:00"), loaded)
    with db.session_scope(loaded) as s:
        folder = Path(cycle_view(s).cycle.config_folder) / "feedback"
    rows = example_rows()
    rows.append(["1100", "21.12.2025 9:00", "", "Asukas", "Laukaa", "", "", "Myöhässä.", ""])
    write_csv(folder / WEBROPOL.name, rows, "utf-8-sig")
    after = helsinki("2025-12-22 07:00")
    due = phases.due_phases(after, loaded)
    assert "import_feedback" in due and "compile" in due
    report = phases.run_phase("import_feedback", after, tmp_path, loaded)
    assert report.did["files"][WEBROPOL.name] | {} == {
        "file": report.did["files"][WEBROPOL.name]["file"],
        "rows": 37,
        "added": 1,
        "duplicates": 36,
        "empty_rows": 0,
        "late": 1,
    }


def test_cli_imports_and_reports_errors(loaded: str, tmp_path: Path, monkeypatch) -> None:
    from hytetu.cli import app

    monkeypatch.setenv("HYTETU_DATABASE_URL", loaded)
    result = CliRunner().invoke(app, ["feedback", "import", str(WEBROPOL)])
    assert result.exit_code == 0, result.output
    assert "36 added (3 late), 0 already imported" in result.output
    bad = write_csv(tmp_path / "bad.csv", _set(example_rows(), 4, "Kunta tai kuntaryhmä", "X"))
    result = CliRunner().invoke(app, ["feedback", "import", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:4: Kunta tai kuntaryhmä: unknown municipality or group 'X'" in result.output
    assert os.environ["HYTETU_DATABASE_URL"] == loaded


# --- how dates are read, and columns the mapping names --------------------------------------

FORMS_HEADER = ["ID", "Start time", "Completion time", "Email", "Kunta tai kuntaryhmä", "Näkemys"]


def forms_rows(*times: str) -> list[list[object]]:
    """A Microsoft Forms export in US English: times as text, month first."""
    return [FORMS_HEADER] + [
        [n, t, t, "anonymous", "Jämsä", f"Näkemys {n}: liikuntapaikat lähemmäs kouluja."]
        for n, t in enumerate(times, 1)
    ]


def received(url: str) -> list[datetime]:
    with db.session_scope(url) as s:
        q = select(db.FeedbackResponse.received_at).order_by(db.FeedbackResponse.id)
        return [t.astimezone(UTC) for t in s.scalars(q)]


def test_us_dates_are_read_month_first_when_a_day_over_12_shows_it(
    loaded: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export = write_csv(
        tmp_path / "forms.csv", forms_rows("11/3/2025 9:12 AM", "10/24/2025 4:05 PM"), "utf-8-sig"
    )
    result = do_import(loaded, export)
    assert result.added == 2
    assert result.dates == "dates read as month/day/year (row 3: '10/24/2025 4:05 PM')"
    assert result.as_dict()["dates"] == result.dates
    assert received(loaded) == [helsinki("2025-11-03 09:12"), helsinki("2025-10-24 16:05")]
    from hytetu.cli import app

    monkeypatch.setenv("HYTETU_DATABASE_URL", loaded)
    again = CliRunner().invoke(app, ["feedback", "import", str(export)])
    assert "2 already imported" in again.output
    assert "; dates read as month/day/year (row 3: '10/24/2025 4:05 PM')" in again.output


def test_day_first_slashed_dates_are_read_day_first(loaded: str, tmp_path: Path) -> None:
    export = write_xlsx(tmp_path / "forms.xlsx", forms_rows("3/11/2025 09:12", "24/10/2025 16:05"))
    result = do_import(loaded, export)
    assert result.dates == "dates read as day/month/year (row 3: '24/10/2025 16:05')"
    assert received(loaded) == [helsinki("2025-11-03 09:12"), helsinki("2025-10-24 16:05")]


def test_finnish_dates_need_no_evidence(loaded: str, tmp_path: Path) -> None:
    export = write_csv(tmp_path / "w.csv", forms_rows("3.11.2025 9.12", "1.12.2025 klo 10.00"))
    result = do_import(loaded, export)
    assert (result.added, result.dates) == (2, "")
    assert received(loaded) == [helsinki("2025-11-03 09:12"), helsinki("2025-12-01 10:00")]


def test_a_file_whose_dates_read_both_ways_is_refused_naming_column_and_row(
    loaded: str, tmp_path: Path
) -> None:
    export = write_csv(tmp_path / "forms.csv", forms_rows("11/3/2025 9:12 AM", "12/1/2025 8:00 AM"))
    with pytest.raises(FeedbackImportError) as e:
        do_import(loaded, export)
    (problem,) = e.value.problems
    assert (problem.line, problem.field) == (2, "Completion time")
    assert "ambiguous date '11/3/2025 9:12 AM'" in problem.message
    assert "date_format" in problem.message
    mixed = write_csv(tmp_path / "mixed.csv", forms_rows("10/24/2025 9:12", "25/10/2025 9:12"))
    with pytest.raises(FeedbackImportError, match="written two ways"):
        do_import(loaded, mixed)
    assert count(loaded) == 0


def test_the_declared_date_format_reads_an_ambiguous_file(sqlite_url: str, example: Path) -> None:
    cycle = example / "cycle.yaml"
    text = cycle.read_text(encoding="utf-8")
    cycle.write_text(
        text.replace(
            "  url: https", "  import:\n    date_format: '%m/%d/%Y %I:%M %p'\n  url: https"
        ),
        encoding="utf-8",
    )
    phases.load(example, sqlite_url)
    export = write_csv(example / "forms.csv", forms_rows("11/3/2025 9:12 AM", "12/1/2025 8:00 AM"))
    result = do_import(sqlite_url, export)
    assert result.dates == "times read as '%m/%d/%Y %I:%M %p' (date_format)"
    assert received(sqlite_url) == [helsinki("2025-11-03 09:12"), helsinki("2025-12-01 08:00")]
    # a time written otherwise is a row's error, naming the format
    other = write_csv(example / "other.csv", forms_rows("3.11.2025 9.12"))
    with pytest.raises(FeedbackImportError, match="date_format is '%m/%d/%Y %I:%M %p'"):
        do_import(sqlite_url, other)
    # a format that cannot read a date is refused with the config
    cycle.write_text(
        text.replace("  url: https", "  import:\n    date_format: '%H:%M'\n  url: https"),
        encoding="utf-8",
    )
    from hytetu.config import load_config
    from hytetu.errors import ConfigError

    with pytest.raises(ConfigError, match="date_format.*needs the day, month and year"):
        load_config(example)


def test_a_missing_municipality_column_is_an_error_listing_the_columns(
    sqlite_url: str, example: Path
) -> None:
    """Without it every answer would be read as feedback for the whole region."""
    phases.load(example, sqlite_url)
    rows = [
        ["Vastausaika", "Kunta", "Näkemys"],  # the form's question was renamed
        ["24.10.2025 9:12", "Jämsä", "Koulujen pihat liikuntapaikoiksi."],
    ]
    export = write_csv(example / "w.csv", rows)
    with pytest.raises(FeedbackImportError) as e:
        do_import(sqlite_url, export)
    (problem,) = e.value.problems
    assert problem.line == 1
    assert problem.field == "Kunta tai kuntaryhmä / Kommun eller kommungrupp / Municipality"
    assert "missing column for municipality" in problem.message
    assert "(columns: 'Vastausaika', 'Kunta', 'Näkemys')" in problem.message
    assert count(sqlite_url) == 0
    cycle = example / "cycle.yaml"
    cycle.write_text(
        cycle.read_text(encoding="utf-8").replace(
            "  url: https",
            "  import:\n    optional: [organisation, respondent_type, municipality, "
            "priority_area, service_area, email]\n  url: https",
        ),
        encoding="utf-8",
    )
    assert do_import(sqlite_url, export).added == 1  # now says so: general feedback
