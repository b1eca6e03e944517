"""The database and loading a config into it, on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from conftest import edit
from sqlalchemy import func, select

from hytetu import db, phases
from hytetu.errors import ConfigError
from hytetu.migrate import upgrade


def _count(url: str, model: type) -> int:
    with db.session_scope(url) as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_migrations_match_the_models(db_url: str) -> None:
    upgrade(db_url)
    with db.get_engine(db_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), db.Base.metadata)
    assert diff == []


def test_load_example(db_url: str, example: Path) -> None:
    report = phases.load(example, db_url)
    assert len(report.warnings) == 1 and "Äänekoski" in report.warnings[0]
    assert _count(db_url, db.Municipality) == 22
    assert _count(db_url, db.MunicipalityGroup) == 6
    assert _count(db_url, db.MeetingSession) == 7
    assert _count(db_url, db.GoalCell) == 15
    with db.session_scope(db_url) as s:
        jamsa = s.scalars(select(db.Municipality).filter_by(key="jamsa")).one()
        assert jamsa.name["fi"] == "Jämsä"
        assert jamsa.registry_email == "kirjaamo@jamsa.example"
        first = s.scalars(select(db.MeetingSession).order_by(db.MeetingSession.start)).first()
        assert first is not None
        # 23.10.2025 09:00 in Helsinki summer time is 06:00 UTC.
        assert first.start.isoformat() == "2025-10-23T06:00:00+00:00"
        assert first.group is not None
        assert [m.key for m in first.group.municipalities] == [
            "jamsa",
            "keuruu",
            "multia",
            "petajavesi",
        ]


def test_loading_twice_changes_nothing(db_url: str, example: Path) -> None:
    phases.load(example, db_url)
    events = _count(db_url, db.AuditEvent)
    again = phases.load(example, db_url)
    assert again.did["changes"] == 0
    assert _count(db_url, db.AuditEvent) == events


def test_edited_config_updates_in_place_and_records_changes(db_url: str, example: Path) -> None:
    phases.load(example, db_url)
    region = (example / "region.yaml").read_text(encoding="utf-8")
    cycle = (example / "cycle.yaml").read_text(encoding="utf-8")
    # Move the Jyväskylä session by an hour, rename a municipality, drop its registry.
    assert "2025-11-13T09:00:00+02:00" in cycle
    cycle = cycle.replace("2025-11-13T09:00:00+02:00", "2025-11-13T10:00:00+02:00")
    region = region.replace("kirjaamo@multia.example", "kirjaamo@uusi-multia.example")
    (example / "cycle.yaml").write_text(cycle, encoding="utf-8")
    (example / "region.yaml").write_text(region, encoding="utf-8")

    report = phases.load(example, db_url)
    assert report.did["changes"] == 2
    with db.session_scope(db_url) as s:
        moved = s.scalars(select(db.MeetingSession).filter_by(key="2025-11-13-jyvaskyla")).one()
        assert moved.sequence == 1
        assert moved.start.isoformat() == "2025-11-13T08:00:00+00:00"
        other = s.scalars(select(db.MeetingSession).filter_by(key="2025-10-23-jamsa")).one()
        assert other.sequence == 0
        multia = s.scalars(select(db.Municipality).filter_by(key="multia")).one()
        assert multia.registry_email == "kirjaamo@uusi-multia.example"
        audit = s.scalars(
            select(db.AuditEvent).filter_by(action="config.load").order_by(db.AuditEvent.id.desc())
        ).first()
        assert audit is not None
        assert any("2025-11-13-jyvaskyla" in c for c in audit.detail["changes"])


def test_removed_session_and_contact_are_kept_but_inactive(db_url: str, example: Path) -> None:
    import yaml

    phases.load(example, db_url)
    region = yaml.safe_load((example / "region.yaml").read_text(encoding="utf-8"))
    removed = region["municipalities"][0]["contacts"].pop(0)
    (example / "region.yaml").write_text(yaml.safe_dump(region, allow_unicode=True), "utf-8")
    cycle = yaml.safe_load((example / "cycle.yaml").read_text(encoding="utf-8"))
    cycle["sessions"] = [s for s in cycle["sessions"] if s["id"] != "2025-11-20-viitasaari"]
    (example / "cycle.yaml").write_text(yaml.safe_dump(cycle, allow_unicode=True), "utf-8")

    phases.load(example, db_url)
    with db.session_scope(db_url) as s:
        contact = s.scalars(select(db.Contact).filter_by(email=removed["email"])).one()
        assert contact.active is False
        session = s.scalars(select(db.MeetingSession).filter_by(key="2025-11-20-viitasaari")).one()
        assert session.status == "cancelled"
        assert session.sequence == 1


def test_invalid_config_leaves_the_database_as_it_was(db_url: str, example: Path) -> None:
    phases.load(example, db_url)
    before = _count(db_url, db.AuditEvent), _count(db_url, db.Municipality)
    text = (example / "region.yaml").read_text(encoding="utf-8")
    (example / "region.yaml").write_text(
        text.replace("kirjaamo@jamsa.example", "not-an-address"), encoding="utf-8"
    )
    with pytest.raises(ConfigError) as raised:
        phases.load(example, db_url)
    assert "region.yaml" in str(raised.value)
    assert (_count(db_url, db.AuditEvent), _count(db_url, db.Municipality)) == before


def test_an_unchanged_config_is_not_parsed_again(
    example: Path, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daily load of unchanged files costs a hash; a changed file, or another folder of
    the same region loaded in between, loads in full again."""
    import hytetu.phases

    first = phases.load(example, sqlite_url)
    assert first.did["changes"] > 0
    parsed = []
    real = hytetu.phases.load_config
    monkeypatch.setattr(hytetu.phases, "load_config", lambda f: parsed.append(f) or real(f))
    again = phases.load(example, sqlite_url)
    assert again.did == {"changes": 0, "unchanged": True} and parsed == []
    assert again.warnings == first.warnings  # still shown (the Äänekoski warning)
    edit(example, "cycle.yaml", "common_threshold: 2", "common_threshold: 3")
    assert phases.load(example, sqlite_url).did["changes"] > 0 and len(parsed) == 1
    other = tmp_path / "other"
    shutil.copytree(example, other)
    edit(other, "cycle.yaml", "common_threshold: 3", "common_threshold: 2")
    assert phases.load(other, sqlite_url).did["changes"] > 0
    # Back to the first folder, unchanged since its own last load: the DB holds the other's.
    assert phases.load(example, sqlite_url).did["changes"] > 0
