"""Feedback and personal data: e-mails never reach memos or summaries, late answers stay
out of the memos, and the purge deletes personal data of old cycles but keeps findings."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import helsinki
from sqlalchemy import func, select
from typer.testing import CliRunner

from hytetu import db, feedback, feedback_import, findings, memos, phases
from hytetu.state import cycle_view


def import_examples(url: str) -> None:
    with db.session_scope(url) as s:
        view = cycle_view(s)
        for path in feedback_import.export_files(view):
            feedback_import.import_file(view, path)


@pytest.mark.parametrize(
    ("received", "late"),
    [("2025-12-19 23:59", False), ("2025-12-20 00:00", True), ("2025-12-19 00:00", False)],
)
def test_feedback_deadline_helsinki_winter_time(loaded: str, received: str, late: bool) -> None:
    with db.session_scope(loaded) as s:
        view = cycle_view(s)
        moment = helsinki(received)
        assert moment.utcoffset().total_seconds() == 7200  # EET, winter time
        assert feedback.is_late(view, moment) is late
        assert feedback.closes_at(view).astimezone(UTC) == datetime(2025, 12, 19, 22, tzinfo=UTC)


def test_memos_and_summary_show_texts_but_never_e_mails(loaded: str) -> None:
    import_examples(loaded)
    phases.run_import_notes(helsinki("2025-12-20 07:00"), loaded)
    with db.session_scope(loaded) as s:
        view = cycle_view(s)
        emails = {
            e for e in s.scalars(select(db.FeedbackResponse.respondent_email)) if e is not None
        }
        assert len(emails) >= 10
        compilation, _ = findings.compile_and_store(view)
        assert compilation.result["feedback"]["total"] == 44
        assert compilation.result["feedback"]["late"] == 4
        rendered = memos.render_memos(view, compilation)
        html = "\n".join(v.html for v in rendered.created)
    assert "Kaatumisten ehkäisyyn tarvitaan yhteinen toimintamalli" in html
    for address in emails:
        assert address not in html
    # A late answer (21.12.) is kept in the database but left out of the memos.
    assert "Ohjaamo ovat avainasemassa" not in html


def test_purge_deletes_personal_data_of_old_cycles_only(loaded: str) -> None:
    import_examples(loaded)
    with db.session_scope(loaded) as s:
        compiled, _ = findings.compile_and_store(cycle_view(s))
        kept = compiled.result["feedback"]
        s.add(
            db.FeedbackResponse(
                cycle_id=cycle_view(s).cycle.id,
                fingerprint="resident-name",
                respondent_org="Matti Asukas",
                respondent_type="resident",
                respondent_email="matti@asukas.example",
                text="Näkemys",
                received_at=helsinki("2025-11-01 12:00"),
                channel="form",
            )
        )
    with db.session_scope(loaded) as s:
        result = feedback.purge_personal_data(s, 2, helsinki("2027-06-01 12:00"))
        assert result.cycles == [] and result.responses == 0
    with db.session_scope(loaded) as s:
        result = feedback.purge_personal_data(s, 2, helsinki("2028-01-02 12:00"))
        assert result.cycles == [2025] and result.responses == 16
    with db.session_scope(loaded) as s:
        rows = list(s.scalars(select(db.FeedbackResponse)))
        assert all(r.respondent_email is None for r in rows)
        assert not any(r.respondent_org == "Matti Asukas" for r in rows)
        assert any(r.respondent_org == "Jämsän kaupunki" for r in rows)
        assert len(rows) == 45 and all(r.text for r in rows)
        view = cycle_view(s)
        assert findings.latest_compilation(view).result["feedback"] == kept
        audit = s.scalars(select(db.AuditEvent).filter_by(action="personal_data.purge")).all()
        assert len(audit) == 2


def test_purge_clears_copies_of_notices_and_removed_contacts(
    loaded: str, example: Path, tmp_path: Path
) -> None:
    phases.run_feedback_step("open", helsinki("2025-10-23 07:00"), tmp_path, loaded)
    region = example / "region.yaml"
    text = region.read_text(encoding="utf-8")
    line = "      - {name: Juha Lehtonen, email: juha.lehtonen@jamsa.example, "
    assert line in text
    region.write_text(
        "\n".join(x for x in text.splitlines() if not x.startswith(line)) + "\n",
        encoding="utf-8",
    )
    phases.load(example, loaded)
    with db.session_scope(loaded) as s:
        result = feedback.purge_personal_data(s, 0, helsinki("2026-03-01 12:00"))
        assert (result.messages, result.contacts) == (45, 1)
    with db.session_scope(loaded) as s:
        notices = s.scalars(select(db.OutgoingMessage).filter_by(purpose="feedback_open")).all()
        assert all(m.raw == b"" and m.recipients == [] for m in notices)
        assert all(m.message_id and m.state == "sent" for m in notices)
        emails = set(s.scalars(select(db.Contact.email)))
        assert "juha.lehtonen@jamsa.example" not in emails
        assert "paivi.makela@jamsa.example" in emails
        assert s.scalar(select(func.count()).select_from(db.Contact).filter_by(active=False)) == 1


def test_purge_cli(loaded: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from hytetu.cli import app

    import_examples(loaded)
    monkeypatch.setenv("HYTETU_DATABASE_URL", loaded)
    # Run in 2026 or later: the 2025 cycle is past a retention of 0 years.
    result = CliRunner().invoke(app, ["purge", "--older-than-years", "0"])
    assert result.exit_code == 0, result.output
    assert "cycles purged: 2025; e-mails removed: 15;" in result.output
    result = CliRunner().invoke(app, ["purge", "--older-than-years", "0"])
    assert "cycles purged: 2025; e-mails removed: 0;" in result.output
    result = CliRunner().invoke(app, ["purge", "--older-than-years", "99"])
    assert "cycles purged: none" in result.output


def test_serve_feedback_command_exists() -> None:
    from hytetu.cli import app

    result = CliRunner().invoke(app, ["serve-feedback", "--help"])
    assert result.exit_code == 0
    assert "--host" in result.output and "127.0.0.1" in result.output and "--port" in result.output


def test_a_feedback_reminder_left_pending_is_skipped_after_the_window_closed(
    loaded: str, tmp_path: Path
) -> None:
    """Queued on 13.12., the run died before sending; the next tick is after the deadline
    day: the reminders are marked skipped with the reason, nothing is sent."""
    out = tmp_path / "out"
    phases.run_feedback_step("open", helsinki("2025-10-23 07:00"), out, loaded)
    with db.session_scope(loaded) as s:
        queued = feedback.remind(cycle_view(s), helsinki("2025-12-13 07:00"))
    assert queued.notices > 0
    sent_before = len(list((out / "outbox").glob("*.eml")))
    report = phases.run_feedback_step("close", helsinki("2025-12-20 07:00"), out, loaded)
    assert len(report.warnings) == queued.notices
    assert all("the feedback window closed at 20.12.2025 00:00" in w for w in report.warnings)
    with db.session_scope(loaded) as s:
        rows = s.scalars(select(db.OutgoingMessage).filter_by(purpose="feedback_reminder"))
        assert {r.state for r in rows} == {"skipped"}
    assert len(list((out / "outbox").glob("*.eml"))) == sent_before
    assert "remind_feedback" not in phases.due_phases(helsinki("2025-12-20 08:00"), loaded)
