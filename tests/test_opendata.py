"""Open data (hytetu export): JSON valid against docs/open-data.schema.json, CSV as a
spreadsheet reads it, and no personal data in either."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from conftest import ROOT, prefect_artifacts
from jsonschema import Draft202012Validator
from sqlalchemy import select
from typer.testing import CliRunner

from hytetu import db, memos
from hytetu.cli import app
from hytetu.opendata import CSV_FIELDS, SCHEMA_VERSION
from hytetu.state import cycle_view

SCHEMA = json.loads((ROOT / "docs" / "open-data.schema.json").read_text(encoding="utf-8"))


def _export(url: str, out: Path, *args: str) -> list[Path]:
    result = CliRunner().invoke(
        app, ["export", "--out", str(out), *args], env={"HYTETU_DATABASE_URL": url}
    )
    assert result.exit_code == 0, result.output
    return sorted((out / "open-data").iterdir())


def _rows(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM: Excel reads ä, ö, å right
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))


def test_the_export_is_valid_json_and_csv_that_agree(
    year: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = year
    paths = _export(url, tmp_path)
    names = [p.name for p in paths]
    assert names == [
        "keski-suomi-2025-emphases.csv",
        "keski-suomi-2025-feedback_counts.csv",
        "keski-suomi-2025-indicators.csv",
        "keski-suomi-2025-themes.csv",
        "keski-suomi-2025.json",
    ]
    data = json.loads((tmp_path / "open-data" / "keski-suomi-2025.json").read_text("utf-8"))
    validator = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
    assert not list(validator.iter_errors(data))
    assert data["schema"] == SCHEMA_VERSION
    assert data["status"] == "draft"  # rendered, not yet approved
    assert data["cycle"]["year"] == 2025
    assert len(data["cells"]) == 15

    # The indicator values as stored, one row each: a missing value has no row, never 0.
    with db.session_scope(url) as s:
        stored = s.execute(
            select(
                db.Indicator.key,
                db.IndicatorValue.area,
                db.IndicatorValue.year,
                db.IndicatorValue.value,
            ).join(db.IndicatorValue.indicator)
        ).all()
    exported = {
        (r["indicator"], r["area"], r["value_year"]): r["value"] for r in data["indicators"]
    }
    assert exported == {(k, a, y): v for k, a, y, v in stored} and len(exported) > 50
    assert {"county", "country"} < {r["area"] for r in data["indicators"]}
    indicator_csv = _rows(tmp_path / "open-data" / "keski-suomi-2025-indicators.csv")
    assert len(indicator_csv) == len(data["indicators"])
    assert all(r["year"] == "2025" and r["value"] not in ("", "0") for r in indicator_csv[:5])

    themes = _rows(tmp_path / "open-data" / "keski-suomi-2025-themes.csv")
    assert list(themes[0]) == CSV_FIELDS["themes"]
    assert len(themes) == sum(len(c["themes"]) for c in data["cells"])
    assert any("ä" in r["theme"] for r in themes)
    counts = _rows(tmp_path / "open-data" / "keski-suomi-2025-feedback_counts.csv")
    assert [int(r["feedback_responses"]) for r in counts] == [
        c["feedback_responses"] for c in data["cells"]
    ]
    with db.session_scope(url) as s:
        result = memos.findings.latest_compilation(cycle_view(s)).result
        placed = sum(result["feedback"]["per_cell"].values())
    assert sum(int(r["feedback_responses"]) for r in counts) == placed > 0
    emphases = _rows(tmp_path / "open-data" / "keski-suomi-2025-emphases.csv")
    assert len(emphases) == sum(len(g["emphases"]) for g in data["groups"]) > 0


def test_no_personal_data_is_exported(year: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = year
    paths = _export(url, tmp_path)
    published = "\n".join(p.read_text(encoding="utf-8-sig") for p in paths)
    with db.session_scope(url) as s:
        contacts = s.execute(select(db.Contact.name, db.Contact.email)).all()
        responses = s.execute(
            select(db.FeedbackResponse.text, db.FeedbackResponse.respondent_email)
        ).all()
    assert contacts and responses
    for name, address in contacts:
        assert name not in published and address not in published
    for text, address in responses:
        assert text[:40] not in published  # not even the start of a response
        if address:
            assert address not in published
    assert "@" not in published


def test_after_approval_the_approved_compilation_is_exported(
    own_year: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = own_year
    with db.session_scope(url) as s:
        memos.apply_review(cycle_view(s), [], actor="test", approve_all=True)
    _export(url, tmp_path, "--year", "2025")
    data = json.loads((tmp_path / "open-data" / "keski-suomi-2025.json").read_text("utf-8"))
    assert data["status"] == "approved"


def test_a_cycle_without_a_compilation_has_nothing_to_export(loaded: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["export", "--out", str(tmp_path)], env={"HYTETU_DATABASE_URL": loaded}
    )
    assert result.exit_code == 1 and "no compilation yet" in result.output
    assert not (tmp_path / "open-data").exists()


def test_the_flow_leaves_the_files_and_an_artifact(
    prefect_api: None, year: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.open_data import export_open_data

    url, _ = year
    monkeypatch.setenv("HYTETU_DATABASE_URL", url)
    state = export_open_data(out_dir=str(tmp_path), return_state=True)
    paths = state.result()
    assert any(p.endswith(".json") for p in paths)
    artifacts = prefect_artifacts([state.state_details.flow_run_id])
    assert {a.type for a in artifacts} == {"table", "markdown"}
    table = next(a for a in artifacts if a.type == "table")
    assert "Kaatum" in str(table.data)
