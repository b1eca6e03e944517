"""hytetu cycle new: next year's config folder, and two years of a region in one database."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from conftest import EXAMPLE, HELSINKI
from typer.testing import CliRunner

from hytetu import db, phases
from hytetu.cli import app
from hytetu.config import load_config
from hytetu.cyclenew import new_cycle, shift_date
from hytetu.errors import ConfigError
from hytetu.state import cycle_view


def test_a_session_keeps_its_weekday_on_the_nearest_date() -> None:
    # The seed's first session: Thursday 23.10.2025 → Thursday 22.10.2026, not Friday 23.10.
    assert shift_date(date(2025, 10, 23), 2026) == date(2026, 10, 22)
    assert shift_date(date(2025, 12, 19), 2026) == date(2026, 12, 18)  # Fri → Fri
    # Into a leap year and out of one; 29 February has no twin.
    assert shift_date(date(2027, 3, 2), 2028) == date(2028, 2, 29)  # Tue → Tue
    assert shift_date(date(2028, 2, 29), 2029) == date(2029, 2, 27)  # Tue → Tue
    assert shift_date(date(2028, 3, 2), 2029) == date(2029, 3, 1)  # Thu → Thu
    # New Year: the nearest Thursday to 1.1.2027 is in 2026, so a week later.
    assert shift_date(date(2026, 1, 1), 2027) == date(2027, 1, 7)


@pytest.mark.parametrize("year", [2025, 2027, 2028])
def test_every_day_of_a_year_keeps_its_weekday_within_the_next_year(year: int) -> None:
    day = date(year, 1, 1)
    while day.year == year:
        moved = shift_date(day, year + 1)
        assert moved.weekday() == day.weekday()
        assert moved.year == year + 1
        same = date(year + 1, day.month, 28 if (day.month, day.day) == (2, 29) else day.day)
        assert abs((moved - same).days) <= 3 or day.month in (1, 12)
        day += timedelta(days=1)


@pytest.fixture
def written(tmp_path: Path) -> Path:
    source = tmp_path / "keski-suomi-2025"
    shutil.copytree(EXAMPLE, source)
    new_cycle(source, 2026, today=date(2026, 6, 1))
    return tmp_path / "keski-suomi-2026"


def test_the_new_folder_loads_with_a_warning_per_moved_session(written: Path) -> None:
    config = load_config(written)  # the loader accepts the file as written
    cf = config.cycle_file
    assert cf.cycle.year == 2026
    assert cf.cycle.title["fi"].endswith("neuvottelut 2026")
    assert cf.cycle.reference is None
    assert cf.cycle.plan_period == "2026–2029"
    old = load_config(EXAMPLE).cycle_file
    assert cf.goal_matrix == old.goal_matrix
    for before, after in zip(old.sessions, cf.sessions, strict=True):
        b, a = before.start.astimezone(HELSINKI), after.start.astimezone(HELSINKI)
        assert a.weekday() == b.weekday() and a.time() == b.time() and a.year == 2026
        assert after.end - after.start == before.end - before.start
        assert after.id == a.date().isoformat() + before.id[10:]
        assert after.check and before.id in after.check
    # Helsinki is at +03:00 on 22.10.2026, at +02:00 from 25.10: each offset as on its day.
    assert cf.sessions[0].start.isoformat() == "2026-10-22T09:00:00+03:00"
    assert cf.sessions[1].start.isoformat() == "2026-10-29T09:00:00+02:00"
    assert (cf.feedback.opens, cf.feedback.deadline) == (date(2026, 10, 22), date(2026, 12, 18))
    assert cf.feedback.url and cf.feedback.url.endswith("hytetu-2026")
    checks = [w for w in config.warnings if w.field.endswith(".check")]
    assert len(checks) == len(cf.sessions) + 1  # every session and the feedback window
    assert all(w.line for w in checks)


def test_comments_stay_and_each_session_is_marked_to_check(written: Path) -> None:
    text = (written / "cycle.yaml").read_text(encoding="utf-8")
    assert text.startswith("# Tehty komennolla `hytetu cycle new`")
    assert "# Arjen turvallisuuden edistäminen" in text  # the original's own comments
    assert "# Helsinki is at +03:00" in text
    assert "- id: 2026-10-22-jamsa  # TARKISTA: to 23.10.2025 → to 22.10.2026" in text
    assert "reference: null  # uusi asianumero kirjaamosta; vuonna 2025: KSHVA/1234" in text
    # The layout of the goals stays one flow mapping per line.
    assert '      goal: {fi: "Lapsiperheiden varhainen arjen tuki vahvistuu"}' in text


def test_region_and_indicators_are_copied_not_the_years_own_files(written: Path) -> None:
    assert sorted(p.name for p in written.iterdir()) == ["cycle.yaml", "indicators", "region.yaml"]
    assert (written / "region.yaml").read_bytes() == (EXAMPLE / "region.yaml").read_bytes()
    indicators = sorted(p.name for p in (EXAMPLE / "indicators").iterdir())
    assert indicators and sorted(p.name for p in (written / "indicators").iterdir()) == indicators
    for name in indicators:
        assert (written / "indicators" / name).read_bytes() == (
            EXAMPLE / "indicators" / name
        ).read_bytes()


def test_once_checked_the_folder_loads_without_check_warnings(written: Path) -> None:
    path = written / "cycle.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    text = "\n".join(
        line for line in path.read_text(encoding="utf-8").splitlines() if "check:" not in line
    )
    path.write_text(text + "\n", encoding="utf-8")
    config = load_config(written)
    assert not [w for w in config.warnings if w.field.endswith(".check")]
    assert len(config.cycle_file.sessions) == len(data["sessions"])


def test_it_never_overwrites(written: Path, tmp_path: Path) -> None:
    before = (written / "cycle.yaml").read_bytes()
    with pytest.raises(ConfigError, match="exists already"):
        new_cycle(tmp_path / "keski-suomi-2025", 2026)
    assert (written / "cycle.yaml").read_bytes() == before
    runner = CliRunner()
    result = runner.invoke(
        app, ["cycle", "new", "--from", str(tmp_path / "keski-suomi-2025"), "--year", "2026"]
    )
    assert result.exit_code == 2 and "never overwrites" in result.output
    with pytest.raises(ConfigError, match="must come after 2025"):
        new_cycle(tmp_path / "keski-suomi-2025", 2025, tmp_path / "other")
    assert not (tmp_path / "other").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_the_cli_writes_the_folder_and_lists_what_to_check(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["cycle", "new", "--from", str(EXAMPLE), "--year", "2026", "--to", str(tmp_path / "n")]
    )
    assert result.exit_code == 0, result.output
    assert "2025-10-23-jamsa -> 2026-10-22-jamsa" in result.output
    assert "cycle.yaml" in result.output and "sessions[0].check" in result.output


def _sessions(url: str, year: int | None) -> list[str]:
    with db.session_scope(url) as s:
        return [x.key for x in cycle_view(s, year=year).sessions()]


def test_two_years_of_a_region_in_one_database(db_url: str, written: Path) -> None:
    phases.load(EXAMPLE, db_url)
    phases.load(written, db_url)
    assert _sessions(db_url, None)[0] == "2026-10-22-jamsa"  # the newest by default
    assert _sessions(db_url, 2025)[0] == "2025-10-23-jamsa"
    assert len(_sessions(db_url, 2025)) == len(_sessions(db_url, 2026)) == 7
    # Loading the older year again changes neither: each cycle is kept apart.
    report = phases.load(EXAMPLE, db_url)
    assert report.did["changes"] == 0 or report.did.get("unchanged")
    assert _sessions(db_url, 2026)[0] == "2026-10-22-jamsa"
    # Invitations of both years: no Message-ID or dedupe key in common.
    for year, at in ((2025, datetime(2025, 10, 2, 7, tzinfo=HELSINKI)), (2026, None)):
        at = at or datetime(2026, 10, 1, 7, tzinfo=HELSINKI)
        with db.session_scope(db_url) as s:
            from hytetu.invitations import send_invitations

            send_invitations(cycle_view(s, year=year), at)
    with db.session_scope(db_url) as s:
        from sqlalchemy import select

        rows = s.execute(select(db.OutgoingMessage.cycle_id, db.OutgoingMessage.message_id)).all()
    by_cycle: dict[int, set[str]] = {}
    for cycle_id, message_id in rows:
        by_cycle.setdefault(cycle_id, set()).add(message_id)
    assert len(by_cycle) == 2 and all(by_cycle.values())
    first, second = by_cycle.values()
    assert not first & second


def test_commands_take_the_year(sqlite_url: str, written: Path) -> None:
    phases.load(EXAMPLE, sqlite_url)
    phases.load(written, sqlite_url)
    env = {"HYTETU_DATABASE_URL": sqlite_url}
    runner = CliRunner()
    newest = runner.invoke(app, ["dispatch", "status"], env=env)
    older = runner.invoke(app, ["dispatch", "status", "--year", "2025"], env=env)
    assert newest.output.startswith("dispatch 2026: ") and older.output.startswith(
        "dispatch 2025: "
    )
    missing = runner.invoke(app, ["memos", "list", "--year", "2024"], env=env)
    assert missing.exit_code == 1 and "no cycle" in missing.output
