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
    assert "Demo finished" in result.output
    assert "Traceback" not in result.output
    assert "memos dispatched    43 letters" in result.output

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
    assert len(pdfs) == 7
    for pdf in pdfs:
        reader = PdfReader(io.BytesIO(pdf.read_bytes()))
        assert "Hyvinvoinnin, terveyden ja turvallisuuden" in reader.pages[0].extract_text()


def test_demo_refuses_to_wipe_a_folder_that_is_not_a_demo(tmp_path: Path) -> None:
    from hytetu.cli import app

    (tmp_path / "important.txt").write_text("do not delete", encoding="utf-8")
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert (tmp_path / "important.txt").exists()
