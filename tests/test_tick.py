"""The daily tick as Prefect flow runs (a real temporary Prefect API): the whole simulated
year twice, catching up after downtime, the request for approval, a dry run, a failed run's
reason, and the demo cycle with the application DB on PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import EXAMPLE, _drop_postgres_db, _new_postgres_db, helsinki, prefect_artifacts
from sqlalchemy import func, select

from hytetu import db, memos, phases
from hytetu.simulate import tick_times
from hytetu.state import cycle_view

pytestmark = pytest.mark.prefect


@pytest.fixture(autouse=True)
def no_heartbeats(prefect_api: None) -> Iterator[None]:
    """Heartbeats matter on workers; in-process they add a second to every flow run."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def _fast_copy(target: Path) -> Path:
    """The example, with dispatch's rate limit lifted: the tests are not about the rate
    (tests of hytetu.ratelimit are), and 43 letters at 30 a minute take 90 seconds."""
    shutil.copytree(EXAMPLE, target)
    with (target / "cycle.yaml").open("a", encoding="utf-8") as f:
        f.write("\ndispatch:\n  rate_per_minute: 10000\n")
    return target


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return _fast_copy(tmp_path / "config")


@pytest.fixture
def app_db(loaded: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HYTETU_DATABASE_URL", loaded)
    monkeypatch.delenv("HYTETU_TRANSPORT", raising=False)
    return loaded


def _client_call(fn):
    from prefect.client.orchestration import get_client

    async def call():
        async with get_client() as client:
            return await fn(client)

    return asyncio.run(call())


def _subflows_in_order(parent_id) -> list[tuple[str, object]]:
    """(flow name, run id) of the sub-flow runs of a tick, in the order they started."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    async def read(client):
        runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id])
            )
        )
        runs.sort(key=lambda r: r.start_time)
        return [((await client.read_flow(r.flow_id)).name, r.id) for r in runs]

    return _client_call(read)


def _tick(at: datetime, out: Path, **kwargs):
    """One tick; returns (phases run, the tick's flow run id)."""
    from flows.annual_cycle import annual_cycle

    state = annual_cycle(as_of=at, out_dir=str(out), return_state=True, **kwargs)
    assert state.is_completed(), state.message
    return state.result(), state.state_details.flow_run_id


def _outbox_rows(url: str) -> list[tuple[str, str]]:
    with db.session_scope(url) as s:
        return list(s.execute(select(db.OutgoingMessage.dedupe_key, db.OutgoingMessage.state)))


def _without(due: list[str], *others: str) -> list[str]:
    """The phases this test is about (other phases may be due with the example's files)."""
    return [p for p in due if p not in others]


def _approve_all(url: str, at: datetime) -> int:
    with db.session_scope(url) as s:
        view = cycle_view(s)
        drafts = [v for v in memos.latest_versions(view) if v.status == "draft"]
        for v in drafts:
            memos.decide(view, v.id, approve=True, actor="test coordinator", at=at)
        return len(drafts)


def _core_tick(at: datetime, out: Path, url: str) -> list[str]:
    """The same tick without Prefect (hytetu.phases), as tests/test_cycle.py runs it."""
    due = phases.due_phases(at, url)
    for phase in due:
        phases.run_phase(phase, at, out, url)
    return due


def test_whole_year_twice_second_pass_as_flow_runs_does_nothing(
    app_db: str, tmp_path: Path
) -> None:
    """The year once in-process (the demo and the PostgreSQL test below run it as flow
    runs), memos approved and dispatched by a tick; then the tick flow over every day of
    the year again."""
    out = tmp_path / "out"
    with db.session_scope(app_db) as s:
        ticks = tick_times(cycle_view(s))
    ran: list[str] = []
    for at in ticks:
        ran += _core_tick(at, out, app_db)
    assert ran.count("render") == 1 and "dispatch" not in ran
    approve_at = ticks[-1] + timedelta(days=1)
    assert _approve_all(app_db, approve_at) == 7
    due, _ = _tick(approve_at + timedelta(hours=1), out)
    assert due == ["dispatch"]
    first = _outbox_rows(app_db)
    assert {state for _, state in first} == {"sent"}
    assert sum(1 for key, _ in first if key.startswith("memo:")) == 43

    # The second pass over the same days, into a fresh folder: nothing is due, nothing
    # is queued, sent or written.
    again = tmp_path / "again"
    for at in [*ticks, approve_at + timedelta(hours=1)]:
        assert _tick(at, again)[0] == []
    assert _outbox_rows(app_db) == first
    assert not again.exists() or not any(p.is_file() for p in again.rglob("*"))


def test_late_ticks_catch_up_in_order_and_skip_invitations_to_past_sessions(
    app_db: str, tmp_path: Path
) -> None:
    from flows.annual_cycle import PHASE_FLOWS

    out = tmp_path / "out"
    # Down from before the first invitations (2.10.) until 10.11.: three sessions held.
    due, run_id = _tick(helsinki("2025-11-10 07:00"), out)
    assert due == sorted(due, key=phases.PHASES.index)
    assert _without(due, "import_feedback") == ["invitations", "open_feedback", "import_notes"]
    assert [name for name, _ in _subflows_in_order(run_id)] == [PHASE_FLOWS[p].name for p in due]
    invited = {key.split(":")[2] for key, _ in _outbox_rows(app_db) if key.startswith("invite:")}
    # Sessions already held get no invitation; those ahead (within the lead time) do.
    assert invited == {"2025-11-13-jyvaskyla", "2025-11-20-viitasaari", "2025-11-27-hankasalmi"}
    with db.session_scope(app_db) as s:
        held = s.scalars(
            select(db.MeetingSession.key).where(db.MeetingSession.notes_hash.is_not(None))
        ).all()
        assert set(held) == {"2025-10-23-jamsa", "2025-10-30-joutsa", "2025-11-06-karstula"}
        assert cycle_view(s).cycle.feedback_opened_at is not None

    # Down again until after the feedback deadline (19.12.): the rest in one late tick.
    due, run_id = _tick(helsinki("2025-12-22 07:00"), out)
    assert _without(due, "import_feedback") == [
        "import_notes",
        "close_feedback",
        "compile",
        "render",
    ]
    assert [name for name, _ in _subflows_in_order(run_id)] == [PHASE_FLOWS[p].name for p in due]
    keys = [key for key, _ in _outbox_rows(app_db)]
    # No reminder after the deadline, no invitation to the forum held meanwhile (3.12.).
    assert not any(k.startswith("feedback-reminder:") for k in keys)
    assert not any("palveluntuottajafoorumi" in k for k in keys if k.startswith("invite:"))
    with db.session_scope(app_db) as s:
        view = cycle_view(s)
        assert view.cycle.feedback_closed_at is not None
        assert s.scalar(select(func.count()).select_from(db.Finding)) > 0
        assert [v.status for v in memos.latest_versions(view)] == ["draft"] * 7
    # The tick that rendered the drafts asks for approval, and says how.
    request = next(a for a in prefect_artifacts([run_id]) if a.key == "hytetu-approval-request")
    assert "7 muistioversiota odottaa" in request.data
    assert "hytetu memos approve" in request.data and "review-memos/01-review-memos" in request.data
    assert "2025-muistio-jamsa-keuruu-multia-petajavesi.pdf" in request.data
    # The same day again: nothing.
    assert _tick(helsinki("2025-12-22 18:00"), out)[0] == []


def test_tick_leaves_a_table_of_what_was_sent_to_whom(app_db: str, tmp_path: Path) -> None:
    due, run_id = _tick(helsinki("2025-10-02 07:00"), tmp_path / "out")
    assert due == ["invitations"]
    [(name, sub_id)] = _subflows_in_order(run_id)
    assert name == "send-invitations"
    tables = [a for a in prefect_artifacts([sub_id]) if a.type == "table"]
    assert len(tables) == 1
    assert "paivi.makela@jamsa.example" in tables[0].data
    assert "Kutsu" in tables[0].data
    tick_summary = next(a for a in prefect_artifacts([run_id]) if a.key == "hytetu-daily-tick")
    assert "Kutsut / Invitations" in tick_summary.data


def test_dry_run_forces_the_file_outbox_for_that_run_only(
    app_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    # The environment chooses SMTP with no server configured: a real send would fail.
    monkeypatch.setenv("HYTETU_TRANSPORT", "smtp")
    out = tmp_path / "out"
    due, _ = _tick(helsinki("2025-10-02 07:00"), out, dry_run=True)
    assert due == ["invitations"]
    assert len(list((out / "outbox").glob("*.eml"))) > 10
    assert os.environ["HYTETU_TRANSPORT"] == "smtp"


def test_bad_config_fails_the_run_with_the_problem_and_no_traceback(
    sqlite_url: str, example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.load_config import load_config

    monkeypatch.setenv("HYTETU_DATABASE_URL", sqlite_url)
    region = example / "region.yaml"
    region.write_text(
        region.read_text(encoding="utf-8").replace(
            "timezone: Europe/Helsinki", "timezone: Europe/Helsinky"
        ),
        encoding="utf-8",
    )
    state = load_config(config=str(example), return_state=True)
    assert state.is_failed()
    assert "region.yaml:8" in state.message and "Helsinky" in state.message
    [artifact] = [
        a for a in prefect_artifacts([state.state_details.flow_run_id]) if a.key == "hytetu-failure"
    ]
    assert "region.yaml:8" in artifact.data and "Traceback" not in artifact.data


def test_a_failing_phase_fails_the_tick_naming_phase_file_and_line(
    app_db: str, example: Path, tmp_path: Path
) -> None:
    from flows.annual_cycle import annual_cycle

    path = example / "notes" / "2025-10-23-jamsa.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "service_area: ikaantyneet", "service_area: ikaantyneeet", 1
        ),
        encoding="utf-8",
    )
    state = annual_cycle(
        as_of=helsinki("2025-10-24 07:00"), out_dir=str(tmp_path / "out"), return_state=True
    )
    assert state.is_failed()
    assert "2025-10-23-jamsa.yaml" in state.message and "ikaantyneeet" in state.message
    [artifact] = [
        a for a in prefect_artifacts([state.state_details.flow_run_id]) if a.key == "hytetu-failure"
    ]
    assert "Muistiinpanot tuotu / Session notes imported" in artifact.data
    assert "2025-10-23-jamsa.yaml:" in artifact.data and "Traceback" not in artifact.data


@pytest.mark.postgres
def test_demo_cycle_with_the_app_db_on_postgresql(
    postgres_admin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.demo import run_demo

    name, url = _new_postgres_db(postgres_admin)
    try:
        monkeypatch.setenv("HYTETU_DATABASE_URL", url)
        monkeypatch.delenv("HYTETU_TRANSPORT", raising=False)
        config = _fast_copy(tmp_path / "config")
        result = run_demo(config, tmp_path / "out", echo=lambda _: None)
        assert result["failed"] == 0
        assert result["messages"]["memo"] == 43
        assert result["sessions"] == 7 and len(result["memos"]) == 7
        assert len(list((tmp_path / "out" / "outbox").glob("*.eml"))) == sum(
            result["messages"].values()
        )
    finally:
        _drop_postgres_db(postgres_admin, name, url)
