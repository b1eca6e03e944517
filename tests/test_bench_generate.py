"""bench/generate.py: synthetic regions that hytetu accepts, at the national average size,
deterministic, unique across regions, and with text the compilation has to merge."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bench.generate import generate
from hytetu import db, phases
from hytetu.cli import app

ADDRESS = re.compile(r"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)")


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return generate(2, tmp_path_factory.mktemp("regions"), seed=7)


def digest(folders: list[Path]) -> str:
    h = hashlib.sha256()
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                h.update(str(path.relative_to(folder.parent)).encode() + path.read_bytes())
    return h.hexdigest()


def test_every_generated_folder_passes_validate(two: list[Path]) -> None:
    for folder in two:
        result = CliRunner().invoke(app, ["validate", str(folder)])
        assert result.exit_code == 0, result.output
        assert "warning" not in result.output, result.output
        for line in ("municipalities  14", "groups          5", "contacts        227",
                     "sessions        6"):  # fmt: skip
            assert line in result.output


def test_deterministic_for_a_seed(two: list[Path], tmp_path: Path) -> None:
    assert digest(generate(2, tmp_path / "same", seed=7)) == digest(two)
    assert digest(generate(2, tmp_path / "other", seed=8)) != digest(two)


def test_keys_senders_sessions_unique_and_addresses_reserved(two: list[Path]) -> None:
    regions, senders, sessions, text = [], [], [], ""
    for folder in two:
        region = yaml.safe_load((folder / "region.yaml").read_text(encoding="utf-8"))
        cycle = yaml.safe_load((folder / "cycle.yaml").read_text(encoding="utf-8"))
        regions.append(region["region"]["id"])
        senders.append(region["region"]["sender"]["email"])
        sessions += [s["id"] for s in cycle["sessions"]]
        assert sorted(p.stem for p in (folder / "notes").glob("*.yaml")) == sorted(
            s["id"] for s in cycle["sessions"]
        )
        text += "".join(p.read_text(encoding="utf-8") for p in folder.rglob("*.*"))
    for keys in (regions, senders, sessions):
        assert len(set(keys)) == len(keys)
    domains = set(ADDRESS.findall(text))
    assert domains and all(d.endswith(".example") for d in domains), domains
    assert all(ch in text.casefold() for ch in "äöå")  # Jämsä, Östman, Åkerby


def test_notes_and_feedback_import_and_the_compilation_merges(
    two: list[Path], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'hytetu.db'}"
    for folder in two:
        phases.load(folder, url)
    region = phases.region_keys(url)[0]
    closed = datetime.fromisoformat("2025-12-21T07:00:00+02:00")
    notes = phases.run_import_notes(closed, url, region)
    assert len(notes.did["sessions"]) == 6
    files = phases.run_import_feedback(closed, url, region).did["files"]
    assert 4400 <= sum(f["added"] for f in files.values()) <= 4500
    assert sum(f["late"] for f in files.values()) > 0  # some answers come after the deadline
    compiled = phases.run_compile(url, region).did
    with db.session_scope(url) as s:
        from sqlalchemy import func, select

        findings = s.scalar(select(func.count()).select_from(db.Finding)) or 0
        cell_findings = (
            s.scalar(select(func.count()).select_from(db.Finding).filter_by(kind="cell")) or 0
        )
    db.dispose(url)
    assert 850 <= findings <= 950
    # Near-duplicates across groups merge: far fewer themes than findings, many of them common.
    assert compiled["themes"] < cell_findings / 3
    assert compiled["common_themes"] >= 30
