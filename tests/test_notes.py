"""Session notes: the XLSX template the secretary fills in, and importing it (and YAML)
into the same findings; row-level errors; idempotent re-imports."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import helsinki
from openpyxl import Workbook, load_workbook
from sqlalchemy import select
from typer.testing import CliRunner

from hytetu import db, notes, phases
from hytetu.errors import NotesError
from hytetu.state import cycle_view

SESSION = "2025-10-30-joutsa"


def template(url: str, path: Path, session: str = SESSION) -> Path:
    with db.session_scope(url) as s:
        return notes.write_template(cycle_view(s), session, path)


def fill(path: Path, parsed: notes.SessionNotes) -> None:
    """Fill a template the way a secretary would, from notes read from YAML."""
    wb = load_workbook(path)
    ws = wb[notes.FINDINGS_SHEET]
    rows = {(r[0].value, r[1].value): r[0].row for r in ws.iter_rows(min_row=2)}
    for cell in parsed.findings:
        ws.cell(rows[(cell.priority_area, cell.service_area)], 7).value = "\n".join(
            f"• {t}" for t in cell.items
        )
    for t in parsed.general:
        wb[notes.GENERAL_SHEET].append([t])
    for a in parsed.attendees:
        wb[notes.ATTENDEES_SHEET].append([a.organisation, a.type, a.count])
    for t in parsed.stakeholder_remarks:
        wb[notes.REMARKS_SHEET].append([t])
    wb.save(path)


def import_(url: str, path: Path) -> notes.NotesResult:
    with db.session_scope(url) as s:
        return notes.import_notes_file(cycle_view(s), path)


def findings_of(url: str, session: str = SESSION) -> list[tuple[str, str | None, str | None, str]]:
    with db.session_scope(url) as s:
        row = s.scalars(select(db.MeetingSession).filter_by(key=session)).one()
        return [
            (f.kind, f.priority_area_key, f.service_area_key, f.text)
            for f in s.scalars(
                select(db.Finding).filter_by(session_id=row.id).order_by(db.Finding.position)
            )
        ]


@pytest.fixture
def yaml_notes(loaded: str, example: Path) -> notes.SessionNotes:
    with db.session_scope(loaded) as s:
        return notes.parse_notes(example / "notes" / f"{SESSION}.yaml", cycle_view(s))


def test_template_has_the_goal_matrix_and_a_hidden_marker(loaded: str, tmp_path: Path) -> None:
    path = template(loaded, tmp_path / "t.xlsx")
    wb = load_workbook(path)
    assert wb.sheetnames == [
        notes.FINDINGS_SHEET,
        notes.GENERAL_SHEET,
        notes.ATTENDEES_SHEET,
        notes.REMARKS_SHEET,
        notes.MARKER_SHEET,
    ]
    ws = wb[notes.FINDINGS_SHEET]
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    assert len(rows) == 15
    falls = next(r for r in rows if r[:2] == ("arjen-turvallisuus", "ikaantyneet"))
    assert falls[2] == "Arjen turvallisuuden edistäminen"
    assert falls[4].startswith("Iäkkäiden toimintakyky vahvistuu")
    assert falls[5] == "asumisturvallisuus, kaltoinkohtelu, kaatumiset"
    assert ws.protection.sheet and not ws.cell(2, 7).protection.locked
    assert ws.cell(2, 5).protection.locked
    marker = wb[notes.MARKER_SHEET]
    assert marker.sheet_state == "veryHidden"
    assert marker["B2"].value == SESSION and len(marker["B3"].value) == 64


def test_filled_workbook_imports_like_the_yaml(
    loaded: str, tmp_path: Path, yaml_notes: notes.SessionNotes, example: Path
) -> None:
    path = template(loaded, tmp_path / "t.xlsx")
    fill(path, yaml_notes)
    result = import_(loaded, path)
    assert result.changed and not result.removed and not result.warnings
    from_xlsx = findings_of(loaded)
    import_(loaded, example / "notes" / f"{SESSION}.yaml")
    assert sorted(findings_of(loaded)) == sorted(from_xlsx)
    assert len(from_xlsx) == len(yaml_notes.general) + len(yaml_notes.stakeholder_remarks) + sum(
        len(c.items) for c in yaml_notes.findings
    )
    with db.session_scope(loaded) as s:
        row = s.scalars(select(db.MeetingSession).filter_by(key=SESSION)).one()
        assert {a["organisation"] for a in row.attendees} == {
            a.organisation for a in yaml_notes.attendees
        }


def test_reimport_is_idempotent_and_reports_changes(
    loaded: str, tmp_path: Path, yaml_notes: notes.SessionNotes
) -> None:
    path = template(loaded, tmp_path / "t.xlsx")
    fill(path, yaml_notes)
    import_(loaded, path)
    load_workbook(path).save(path)  # saved again, nothing changed
    assert not import_(loaded, path).changed
    wb = load_workbook(path)
    ws = wb[notes.FINDINGS_SHEET]
    row = next(r[0].row for r in ws.iter_rows(min_row=2) if r[1].value == "ikaantyneet")
    ws.cell(row, 7).value = ws.cell(row, 7).value.replace(
        "• Kaatumisten syistä ei yhteistä tietoa", "• Kaatumisten syistä ei yhteistä tietopohjaa"
    )
    wb.save(path)
    result = import_(loaded, path)
    assert result.changed
    assert result.added == ["Kaatumisten syistä ei yhteistä tietopohjaa"]
    assert result.removed == ["Kaatumisten syistä ei yhteistä tietoa"]
    assert len(findings_of(loaded)) == len(yaml_notes.general) + len(
        yaml_notes.stakeholder_remarks
    ) + sum(len(c.items) for c in yaml_notes.findings)


def _problems(url: str, path: Path) -> list:
    with pytest.raises(NotesError) as raised:
        import_(url, path)
    return raised.value.problems


def test_unknown_cell_names_the_row(loaded: str, tmp_path: Path) -> None:
    path = template(loaded, tmp_path / "t.xlsx")
    wb = load_workbook(path)
    ws = wb[notes.FINDINGS_SHEET]
    ws.cell(5, 2).value = "ikaantyneeet"
    ws.cell(5, 7).value = "Kaatumisten ehkäisy"
    ws.cell(6, 7).value = "Jotain muuta"
    wb.save(path)
    problems = _problems(loaded, path)
    assert len(problems) == 1
    p = problems[0]
    assert p.file == str(path) and p.line == 5 and p.field == "Nostot!A5:B5"
    assert "no goal-matrix cell" in p.message and "ikaantyneeet" in p.message
    assert findings_of(loaded) == []


def test_empty_workbook_is_an_error(loaded: str, tmp_path: Path) -> None:
    path = template(loaded, tmp_path / "t.xlsx")
    [p] = _problems(loaded, path)
    assert "empty" in p.message


def test_wrong_sheet_is_an_error(loaded: str, tmp_path: Path) -> None:
    path = template(loaded, tmp_path / "t.xlsx")
    wb = load_workbook(path)
    wb[notes.FINDINGS_SHEET].title = "Taul1"
    wb.save(path)
    [p] = _problems(loaded, path)
    assert "wrong sheets" in p.message and "'Nostot'" in p.message and "'Taul1'" in p.message


def test_a_workbook_not_made_from_the_template(loaded: str, tmp_path: Path) -> None:
    path = tmp_path / "oma.xlsx"
    wb = Workbook()
    wb.active.append(["Nostot"])
    wb.save(path)
    [p] = _problems(loaded, path)
    assert "marker" in p.message and "hytetu notes template" in p.message
    junk = tmp_path / "junk.xlsx"
    junk.write_bytes(b"not a zip")
    [p] = _problems(loaded, junk)
    assert "not an XLSX workbook" in p.message


def test_bad_attendee_count_names_row_and_column(loaded: str, tmp_path: Path) -> None:
    path = template(loaded, tmp_path / "t.xlsx")
    wb = load_workbook(path)
    wb[notes.ATTENDEES_SHEET].append(["Joutsan kunta", "municipality", "kaksi"])
    wb[notes.GENERAL_SHEET].append(["Yleinen nosto"])
    wb.save(path)
    [p] = _problems(loaded, path)
    assert (p.line, p.field) == (2, "Osallistujat!C2") and "'kaksi'" in p.message


def test_edited_goal_text_is_a_warning(loaded: str, tmp_path: Path) -> None:
    path = template(loaded, tmp_path / "t.xlsx")
    wb = load_workbook(path)
    ws = wb[notes.FINDINGS_SHEET]
    ws.cell(4, 5).value = "Oma tavoite"
    ws.cell(4, 7).value = "Kaatumisten ehkäisy"
    wb.save(path)
    result = import_(loaded, path)
    assert result.changed and result.added == ["Kaatumisten ehkäisy"]
    [w] = result.warnings
    assert "Nostot!E4" in w and "goal text was edited" in w


def test_phase_reads_the_workbook_before_the_yaml(
    loaded: str, example: Path, yaml_notes: notes.SessionNotes
) -> None:
    path = template(loaded, example / "notes" / f"{SESSION}.xlsx")
    wb = load_workbook(path)
    ws = wb[notes.FINDINGS_SHEET]
    ws.cell(2, 7).value = "Vain tämä nosto"
    wb.save(path)
    with db.session_scope(loaded) as s:
        assert notes.notes_path(cycle_view(s), SESSION) == path
    report = phases.run_import_notes(helsinki("2025-10-31 07:00"), loaded)
    assert set(report.did["sessions"]) == {"2025-10-23-jamsa", SESSION}
    assert report.did["sessions"][SESSION] == 1
    assert [f[3] for f in findings_of(loaded)] == ["Vain tämä nosto"]
    assert phases.run_import_notes(helsinki("2025-11-01 07:00"), loaded).did["sessions"] == {}


def test_cli_template_and_import(loaded: str, tmp_path: Path, monkeypatch) -> None:
    from hytetu.cli import app

    monkeypatch.setenv("HYTETU_DATABASE_URL", loaded)
    runner = CliRunner()
    out = tmp_path / "joutsa.xlsx"
    made = runner.invoke(app, ["notes", "template", SESSION, "--out", str(out)])
    assert made.exit_code == 0 and out.exists(), made.output
    unknown = runner.invoke(app, ["notes", "template", "ei-ole", "--out", str(out)])
    assert unknown.exit_code == 2 and "unknown session" in unknown.output
    wb = load_workbook(out)
    wb[notes.FINDINGS_SHEET].cell(2, 7).value = "Ensimmäinen\nToinen"
    wb.save(out)
    first = runner.invoke(app, ["notes", "import", str(out)])
    assert first.exit_code == 0, first.output
    assert f"{SESSION}: +2 -0" in first.output and "  + Toinen" in first.output
    again = runner.invoke(app, ["notes", "import", str(out)])
    assert again.exit_code == 0 and "unchanged" in again.output
    wb[notes.FINDINGS_SHEET].cell(2, 2).value = "x"
    wb.save(out)
    bad = runner.invoke(app, ["notes", "import", str(out)])
    assert bad.exit_code == 2 and "Nostot!A2:B2" in bad.output


def test_a_workbook_named_for_another_session_is_refused(loaded: str, example: Path) -> None:
    path = template(loaded, example / "notes" / "2025-10-23-jamsa.xlsx", session=SESSION)
    wb = load_workbook(path)
    wb[notes.GENERAL_SHEET].append(["Yleinen nosto"])
    wb.save(path)
    [p] = _problems(loaded, path)
    assert "named for '2025-10-23-jamsa'" in p.message and SESSION in p.message
