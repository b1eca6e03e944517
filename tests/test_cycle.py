"""The yearly cycle in the core, without Prefect: feedback window, notes, compilation,
memos as PDF/A, approval and dispatch, and a second pass over the year doing nothing."""

from __future__ import annotations

import email
import io
import re
from email import policy
from pathlib import Path

import pytest
from conftest import helsinki, line_of
from pypdf import PdfReader
from sqlalchemy import func, select

from hytetu import db, feedback, memos, notes, phases
from hytetu.errors import NotesError, StateError
from hytetu.simulate import run_ticks
from hytetu.state import cycle_view


def _normal(text: str) -> str:
    """Whitespace folded; a line wrapped after a hyphen ("vapaa-\naikatoimen") joined."""
    return re.sub(r"\s+", " ", re.sub(r"-\n", "-", text)).strip()


# --- the feedback window ------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "late"),
    [("2025-12-19 23:59:59", False), ("2025-12-20 00:00:00", True)],
)
def test_deadline_is_the_end_of_the_day_in_helsinki(loaded: str, received: str, late: bool) -> None:
    with db.session_scope(loaded) as s:
        view = cycle_view(s)
        assert feedback.is_late(view, helsinki(received)) is late
        s.add(
            db.FeedbackResponse(
                cycle_id=view.cycle.id,
                fingerprint=received,
                text="Näkemys",
                channel="form",
                received_at=helsinki(received),
            )
        )
    with db.session_scope(loaded) as s:
        feedback.close_window(cycle_view(s), helsinki("2025-12-20 07:00"))
    with db.session_scope(loaded) as s:
        row = s.scalars(select(db.FeedbackResponse)).one()
        assert row.late is late


def test_window_opens_reminds_and_closes_once(loaded: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert (
        phases.run_feedback_step("open", helsinki("2025-10-22 23:00"), out, loaded).did["action"]
        == "nothing"
    )
    opened = phases.run_feedback_step("open", helsinki("2025-10-23 07:00"), out, loaded)
    assert opened.did["action"] == "opened" and opened.sent == opened.did["notices"] == 45
    assert phases.run_feedback_step("open", helsinki("2025-10-24 07:00"), out, loaded).sent == 0
    reminded = phases.run_feedback_step("remind", helsinki("2025-12-13 07:00"), out, loaded)
    assert reminded.sent == 45
    assert phases.run_feedback_step("remind", helsinki("2025-12-14 07:00"), out, loaded).sent == 0
    assert (
        phases.run_feedback_step("close", helsinki("2025-12-19 23:00"), out, loaded).did["action"]
        == "nothing"
    )
    assert (
        phases.run_feedback_step("close", helsinki("2025-12-20 07:00"), out, loaded).did["action"]
        == "closed"
    )
    msg = email.message_from_bytes(
        next((out / "outbox").glob("*.eml")).read_bytes(), policy=policy.default
    )
    assert "19.12.2025" in msg["Subject"]


# --- session notes ------------------------------------------------------------------


def test_bad_notes_name_file_line_and_leave_findings_alone(loaded: str, example: Path) -> None:
    phases.run_import_notes(helsinki("2025-10-24 07:00"), loaded)
    with db.session_scope(loaded) as s:
        before = s.scalar(select(func.count()).select_from(db.Finding))
    path = example / "notes" / "2025-10-30-joutsa.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("service_area: ikaantyneet", "service_area: ikaantyneeet", 1), encoding="utf-8"
    )
    line = line_of(path.parent, path.name, "ikaantyneeet")
    with pytest.raises(NotesError) as raised:
        phases.run_import_notes(helsinki("2025-10-31 07:00"), loaded)
    problem = raised.value.problems[0]
    assert problem.file.endswith("2025-10-30-joutsa.yaml")
    assert problem.line is not None and abs(problem.line - line) <= 1
    assert "no goal-matrix cell" in problem.message
    with db.session_scope(loaded) as s:
        assert s.scalar(select(func.count()).select_from(db.Finding)) == before


def test_reimporting_corrected_notes_replaces_and_reports_changes(
    loaded: str, example: Path
) -> None:
    phases.run_import_notes(helsinki("2025-10-24 07:00"), loaded)
    path = example / "notes" / "2025-10-23-jamsa.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text + "\n# korjattu\n", encoding="utf-8")
    with db.session_scope(loaded) as s:
        view = cycle_view(s)
        result = notes.import_notes_file(view, path)
        assert result.changed and result.added == result.removed == []
    with db.session_scope(loaded) as s:
        again = notes.import_notes_file(cycle_view(s), path)
        assert not again.changed


# --- compilation --------------------------------------------------------------------


def test_compilation_has_common_themes_group_emphases_and_sections(year) -> None:
    url, _ = year
    with db.session_scope(url) as s:
        view = cycle_view(s)
        from hytetu.findings import latest_compilation

        result = latest_compilation(view).result
    assert len(result["groups"]) == 6
    cell = next(
        c
        for c in result["cells"]
        if (c["priority_area"], c["service_area"]) == ("arjen-turvallisuus", "ikaantyneet")
    )
    # The groups' own words for falls ("Kaatumisten ehkäisyä…", "…missä kaatumiset
    # tapahtuvat…") meet in at least one common theme.
    falls = [t for t in cell["themes"] if any("aatumi" in m["text"] for m in t["members"])]
    assert any(t["common"] for t in falls)
    assert all(t["common"] == (len(t["groups"]) >= 2) for c in result["cells"] for t in c["themes"])
    assert sum(len(v) for v in result["specific"].values()) > 0
    assert result["stakeholders"] and result["forum"]


# --- memos --------------------------------------------------------------------------


def test_every_finding_of_a_group_is_in_its_memo_pdf(year) -> None:
    url, _ = year
    with db.session_scope(url) as s:
        view = cycle_view(s)
        versions = memos.latest_versions(view)
        assert len(versions) == 7 and all(v.status == "draft" for v in versions)
        memo = next(
            v for v in versions if v.filename == "2025-muistio-jamsa-keuruu-multia-petajavesi.pdf"
        )
        session = next(x for x in view.sessions() if x.key == "2025-10-23-jamsa")
        findings = [
            f.text
            for f in s.scalars(select(db.Finding).filter_by(session_id=session.id, kind="cell"))
        ]
        reader = PdfReader(io.BytesIO(memo.pdf))
        text = _normal(" ".join(page.extract_text() for page in reader.pages))
        for finding in findings:
            assert _normal(finding) in text, finding
        assert "Jämsä, Keuruu, Multia ja Petäjävesi" in text
        meta = reader.metadata
        assert meta.title.startswith("Muistio")
        assert meta.author == "Keski-Suomen hyvinvointialue"
        xmp = reader.xmp_metadata
        assert xmp is not None
        raw = reader.trailer["/Root"]["/Metadata"].get_object().get_data().decode()
        assert "pdfaid:part" in raw and ('pdfaid:part="3"' in raw or "<pdfaid:part>3" in raw)


def test_summary_has_the_matrix_and_group_pages(year) -> None:
    url, _ = year
    with db.session_scope(url) as s:
        summary = next(v for v in memos.latest_versions(cycle_view(s)) if v.memo.kind == "summary")
        text = _normal(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(summary.pdf)).pages))
    for heading in (
        "Arjen turvallisuuden edistäminen",
        "Mielen hyvinvoinnin edistäminen",
        "Liikunnallisen elämäntavan edistäminen",
        "Palveluntuottajafoorumi",
        "Järjestöt ja seurakunnat",
        "Joutsa, Luhanka ja Toivakka",
    ):
        assert heading in text


# --- approval and dispatch ----------------------------------------------------------


def _letters(out: Path) -> list[email.message.EmailMessage]:
    found = []
    for p in sorted((out / "outbox").glob("*.eml")):
        msg = email.message_from_bytes(p.read_bytes(), policy=policy.default)
        if any(part.get_content_type() == "application/pdf" for part in msg.walk()):
            found.append(msg)
    return found


def test_nothing_is_dispatched_before_approval(own_year) -> None:
    url, base = own_year
    report = phases.run_dispatch(helsinki("2025-12-22 07:00"), base / "out", url)
    assert report.sent == 0 and report.did["queued"] == 0
    assert len(report.did["waiting_approval"]) == 7


def test_approved_memos_reach_each_registry_once(own_year) -> None:
    url, base = own_year
    out = base / "out"
    with db.session_scope(url) as s:
        view = cycle_view(s)
        versions = memos.latest_versions(view)
        group_memo = next(v for v in versions if "joutsa" in v.filename)
        summary = next(v for v in versions if v.memo.kind == "summary")
        memos.decide(view, group_memo.id, approve=True, actor="test")
        memos.decide(view, summary.id, approve=True, actor="test")
        rejected = next(v for v in versions if "jamsa" in v.filename)
        memos.decide(view, rejected.id, approve=False, actor="test", comment="korjattava")
    report = phases.run_dispatch(helsinki("2025-12-22 07:00"), out, url)
    assert report.sent == 3 + 22  # Joutsa, Luhanka, Toivakka; the summary to all 22
    letters = _letters(out)
    to_joutsa = [m for m in letters if m["To"].addresses[0].addr_spec == "kirjaamo@joutsa.example"]
    assert len(to_joutsa) == 2
    pdfs = {part.get_filename() for m in to_joutsa for part in m.walk() if part.get_filename()}
    assert pdfs == {
        "2025-muistio-joutsa-luhanka-toivakka.pdf",
        "2025-muistio-joutsa-luhanka-toivakka-liite.pdf",  # the group's feedback verbatim
        "2025-koonti-keski-suomen-hyvinvointialue.pdf",
    }
    assert not any("jamsa-keuruu" in (p.get_filename() or "") for m in letters for p in m.walk())
    again = phases.run_dispatch(helsinki("2025-12-23 07:00"), out, url)
    assert again.sent == 0 and again.did["queued"] == 0
    with db.session_scope(url) as s:
        view = cycle_view(s)
        with pytest.raises(StateError):
            memos.decide(view, group_memo.id, approve=False, actor="test")


def test_second_pass_over_the_year_sends_and_writes_nothing(own_year) -> None:
    url, base = own_year
    out = base / "out2"
    assert run_ticks(url, out) == []
    assert not (out / "outbox").exists()


def test_window_first_seen_after_the_deadline_sends_no_stale_notice(
    loaded: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    late = phases.run_feedback_step("open", helsinki("2025-12-22 07:00"), out, loaded)
    assert late.did == {"action": "opened", "notices": 0} and late.sent == 0
    assert (
        phases.run_feedback_step("close", helsinki("2025-12-22 07:00"), out, loaded).did["action"]
        == "closed"
    )
    assert not (out / "outbox").exists()
