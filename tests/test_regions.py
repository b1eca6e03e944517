"""Several regions in one installation: each runs its own cycle, into its own folder.

The example region and a second one (a copy under another key and sender) share one
database, as every county of Finland would share one installation.
"""

from __future__ import annotations

import email
import email.policy
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import EXAMPLE, copy_sqlite, edit, helsinki, prefect_artifacts
from sqlalchemy import func, select

from hytetu import db, memos, phases
from hytetu.errors import StateError
from hytetu.simulate import run_ticks
from hytetu.state import cycle_view

REGIONS = ["keski-suomi", "pohjois-savo"]


def second_region(folder: Path) -> Path:
    """The example under another region key, name and sender."""
    shutil.copytree(EXAMPLE, folder)
    edit(folder, "region.yaml", "  id: keski-suomi\n", "  id: pohjois-savo\n")
    edit(folder, "region.yaml", "{fi: Keski-Suomen hyvinvointialue}", "{fi: Pohjois-Savon hva}")
    edit(folder, "region.yaml", "email: hyte@hyvaks.example}", "email: hyte@pshva.example}")
    return folder


@pytest.fixture(scope="module")
def two_regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """Both regions loaded and run through the year up to rendered drafts."""
    base = tmp_path_factory.mktemp("regions")
    url = f"sqlite:///{base / 'hytetu.db'}"
    phases.load(EXAMPLE, url)
    phases.load(second_region(base / "config-b"), url)
    run_ticks(url, base / "out")
    yield url, base
    db.dispose(url)


def test_each_region_runs_its_own_cycle_into_its_own_folder(
    two_regions: tuple[str, Path],
) -> None:
    url, base = two_regions
    assert phases.region_keys(url) == REGIONS
    counts = {}
    with db.session_scope(url) as s:
        for key in REGIONS:
            view = cycle_view(s, key)
            counts[key] = s.scalar(
                select(func.count())
                .select_from(db.OutgoingMessage)
                .filter_by(cycle_id=view.cycle.id, purpose="invitation", state="sent")
            )
    assert counts == {"keski-suomi": 88, "pohjois-savo": 88}
    for key in REGIONS:
        folder = base / "out" / key
        assert len(list((folder / "memos").glob("*.pdf"))) == 7 + 6  # and 6 feedback annexes
        assert len(list((folder / "memos").glob("*-liite.csv"))) == 6
        assert list((folder / "calendars").glob("*.ics"))
    # Nothing of a region lands in the shared top folder.
    assert not (base / "out" / "memos").exists()
    # Each region's letters come from its own sender, with Message-IDs of its own domain.
    senders = set()
    for eml in (base / "out" / "pohjois-savo" / "outbox").glob("*.eml"):
        msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        senders.add(msg["From"].addresses[0].addr_spec)
        assert msg["Message-ID"].endswith("@pshva.example>")
    assert senders == {"hyte@pshva.example"}


def test_without_a_region_name_the_choice_is_refused_not_guessed(
    two_regions: tuple[str, Path],
) -> None:
    url, _ = two_regions
    with db.session_scope(url) as s, pytest.raises(StateError) as e:
        cycle_view(s)
    assert "keski-suomi, pohjois-savo" in str(e.value)
    assert "--region" in str(e.value)


def test_approval_and_dispatch_stay_within_their_region(
    two_regions: tuple[str, Path], tmp_path: Path
) -> None:
    url, base = two_regions
    copy_sqlite(base / "hytetu.db", tmp_path / "hytetu.db")
    url = f"sqlite:///{tmp_path / 'hytetu.db'}"
    try:
        memos.record_review([], actor="test", approve_all=True, url=url, region="pohjois-savo")
        at = helsinki("2025-12-22 08:00")
        assert phases.due_phases(at, url, "keski-suomi") == []
        assert phases.due_phases(at, url, "pohjois-savo") == ["dispatch"]
        report = phases.run_phase("dispatch", at, tmp_path / "out", url, "pohjois-savo")
        assert report.sent == 43 and not report.failed
        with db.session_scope(url) as s:
            drafts = [v.status for v in memos.latest_versions(cycle_view(s, "keski-suomi"))]
        assert set(drafts) == {"draft"}  # the other region's memos wait for their coordinator
    finally:
        db.dispose(url)


@pytest.mark.prefect
def test_the_tick_flow_runs_every_region_with_artifacts_of_its_own(
    prefect_api: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.annual_cycle import annual_cycle

    url = f"sqlite:///{tmp_path / 'hytetu.db'}"
    phases.load(EXAMPLE, url)
    phases.load(second_region(tmp_path / "config-b"), url)
    monkeypatch.setenv("HYTETU_DATABASE_URL", url)
    out = tmp_path / "out"
    due = annual_cycle(as_of=helsinki("2025-10-02 07:00"), out_dir=str(out))
    assert due == ["keski-suomi: invitations", "pohjois-savo: invitations"]
    assert list((out / "keski-suomi" / "outbox").glob("*.eml"))
    assert list((out / "pohjois-savo" / "outbox").glob("*.eml"))
    # One region only, by name.
    later = helsinki("2025-10-09 07:00")
    assert annual_cycle(as_of=later, out_dir=str(out / "b"), region="pohjois-savo") == [
        "invitations"
    ]

    keys = {a.key for a in prefect_artifacts(key_like="hytetu-daily-tick-%")}
    assert {"hytetu-daily-tick-keski-suomi", "hytetu-daily-tick-pohjois-savo"} <= keys
    db.dispose(url)


def test_each_region_has_its_own_feedback_form(two_regions: tuple[str, Path]) -> None:
    from starlette.testclient import TestClient

    from hytetu.webform import create_app, serve

    url, _ = two_regions
    at = helsinki("2025-12-01 12:00")
    for key, name in [("keski-suomi", "Keski-Suomen"), ("pohjois-savo", "Pohjois-Savon")]:
        page = TestClient(create_app(url, clock=lambda: at, region=key)).get("/")
        assert page.status_code == 200 and name in page.text
    # Without --region the form refuses to start rather than serve one of them.
    with pytest.raises(StateError, match="--region"):
        serve(url=url)
