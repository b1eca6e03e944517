"""The flows against a real Prefect API (a temporary server), and the demo end to end."""

from __future__ import annotations

import email
import io
from email import policy
from pathlib import Path

import icalendar
import pytest
import vobject
from conftest import helsinki, prefect_artifacts
from pypdf import PdfReader
from typer.testing import CliRunner

pytestmark = pytest.mark.prefect


def test_tick_runs_due_phases_as_flow_runs_with_artifacts(
    prefect_api: None, loaded: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.annual_cycle import annual_cycle
    from flows.invitations import send_invitations

    monkeypatch.setenv("HYTETU_DATABASE_URL", loaded)
    out = tmp_path / "out"
    due = annual_cycle(as_of=helsinki("2025-10-02 07:00"), out_dir=str(out))
    assert due == ["invitations"]
    assert list((out / "outbox").glob("*.eml"))
    # The same day again: nothing is due.
    assert annual_cycle(as_of=helsinki("2025-10-02 18:00"), out_dir=str(out)) == []

    state = send_invitations(
        as_of=helsinki("2025-10-09 07:00"), out_dir=str(out), return_state=True
    )
    assert state.is_completed()
    artifacts = [
        a for a in prefect_artifacts([state.state_details.flow_run_id]) if a.type == "markdown"
    ]
    assert artifacts and "Kutsut" in artifacts[0].data
    assert "requests" in artifacts[0].data


def test_a_mailbox_that_cannot_be_read_fails_only_its_own_step(
    prefect_api: None, loaded: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.annual_cycle import annual_cycle

    monkeypatch.setenv("HYTETU_DATABASE_URL", loaded)
    out = tmp_path / "out"
    (out / "inbox" / "cannot-be-read.eml").mkdir(parents=True)  # reading it raises
    due = annual_cycle(as_of=helsinki("2025-10-02 07:00"), out_dir=str(out))
    assert due == ["invitations"]  # the day's phases ran
    assert list((out / "outbox").glob("*.eml"))
    failures = [a.data for a in prefect_artifacts(key_like="hytetu-failure")]
    assert any("Saapuneet viestit" in f and "cannot-be-read.eml" in f for f in failures)


def test_demo_runs_the_whole_cycle(
    prefect_api: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hytetu.cli import app

    # The demo sets these for its own process; keep them from leaking into other tests.
    for name in (
        "HYTETU_DATABASE_URL",
        "PREFECT_LOGGING_LEVEL",
        "PREFECT_SERVER_ANALYTICS_ENABLED",
    ):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    # Two years, in one database: 2025, then the 2026 made from it with cycle new.
    assert "Demo finished: 2025" in result.output and "Demo finished: 2026" in result.output
    assert "Traceback" not in result.output
    assert result.output.count("memos dispatched    43 letters") == 2
    # What came back: the simulated RSVPs, one registry's bounces, the others' receipts.
    # Each year's own: the 2026 summary counts the answers to 2026's mail only.
    assert result.output.count("attendance          2 accepted, 1 tentative, 1 declined") == 2
    assert "bounced letter" in result.output and "5.1.1" in result.output
    assert result.output.count("registry receipts   41 letters filed") == 2
    # Each year's summary counts the answers to that year's mail, the RSVPs among them.
    assert result.output.count("answers to this year's mail: rsvp 4, bounce 2, receipt 41") == 2
    assert "/00.01.00/2026" in result.output  # a diary number as the receipt gave it

    emls = list((out / "outbox").glob("*.eml"))
    assert len(emls) > 300
    kinds = set()
    for path in emls:
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert msg["Message-ID"] and msg["To"].addresses[0].domain.endswith("example")
        kinds.add(msg["Subject"].split(":")[0])
    assert {"Kutsu", "Muistutus", "Muistio", "Koonti"} <= kinds

    for ics in (out / "calendars").glob("*.ics"):
        vobject.readOne(ics.read_text(encoding="utf-8")).validate()
        icalendar.Calendar.from_ical(ics.read_bytes())
    pdfs = sorted((out / "memos").glob("*.pdf"))
    # Each year the memos, the summary, each memo's feedback annex.
    assert len(pdfs) == 2 * (7 + 6)
    for pdf in pdfs:
        reader = PdfReader(io.BytesIO(pdf.read_bytes()))
        assert "Hyvinvoinnin, terveyden ja turvallisuuden" in reader.pages[0].extract_text()
    summaries = {
        p.name[:4]: " ".join(x.extract_text() for x in PdfReader(p).pages)
        for p in pdfs
        if "-koonti-" in p.name
    }
    assert "Seuranta: muutokset vuodesta 2025" in summaries["2026"]
    assert "Seuranta" not in summaries["2025"]


def test_demo_refuses_to_wipe_a_folder_that_is_not_a_demo(tmp_path: Path) -> None:
    from hytetu.cli import app

    (tmp_path / "important.txt").write_text("do not delete", encoding="utf-8")
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert (tmp_path / "important.txt").exists()


def test_the_cli_tick_takes_a_local_date_and_hytetu_out(
    prefect_api: None,
    loaded: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What an admin types: a date as in Finland, and the output folder from HYTETU_OUT
    (as the README says), not a folder of the current directory. (The command's function
    itself: a stdout captured for one test, CliRunner's or capsys', would be closed under
    Prefect's log handler in the next.)"""
    from hytetu.cli import tick

    monkeypatch.setenv("HYTETU_DATABASE_URL", loaded)
    monkeypatch.setenv("HYTETU_OUT", str(tmp_path / "from-env"))
    monkeypatch.chdir(tmp_path)
    tick(as_of="2.10.2025", out=None, dry_run=False, region=None)
    eml = sorted((tmp_path / "from-env" / "outbox").glob("*.eml"))
    assert eml and not (tmp_path / "hytetu-out").exists()


def test_a_time_the_tick_cannot_read_fails_it_saying_what_it_takes(
    prefect_api: None, loaded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.annual_cycle import annual_cycle

    monkeypatch.setenv("HYTETU_DATABASE_URL", loaded)
    state = annual_cycle(as_of="10/24/2025 9:12 AM", return_state=True)
    assert state.is_failed()
    assert "is not a date or time" in state.message and "2.10.2025" in state.message


def test_db_upgrade_says_whether_it_created_migrated_or_found_it_current(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hytetu.cli import app

    monkeypatch.setenv("HYTETU_DATABASE_URL", f"sqlite:///{tmp_path / 'uusi.db'}")
    first = CliRunner().invoke(app, ["db", "upgrade"])
    assert first.exit_code == 0 and first.output.startswith("created the database"), first.output
    again = CliRunner().invoke(app, ["db", "upgrade"])
    assert "is up to date" in again.output and "created" not in again.output
