"""Personal data: the e-mail is optional, respondents' addresses and names stay out of every
document, the retention purge (SQLite and PostgreSQL) removes the personal data of old
cycles and nothing else, and one person's data can be exported (right of access)."""

from __future__ import annotations

import io
import json
import shutil
import warnings
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE, helsinki
from pypdf import PdfReader
from sqlalchemy import func, select
from typer.testing import CliRunner

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from test_webform import Clock, token

from hytetu import db, feedback_import, findings, memos, phases
from hytetu.cli import app
from hytetu.privacy import export_person
from hytetu.state import cycle_view
from hytetu.webform import create_app

RESIDENT = "Maija Meikäläinen"
RESIDENT_EMAIL = "maija.meikalainen@koti.example"
GONE = "Kalle.Entinen@jamsa.example"  # a contact removed before the 2025 cycle
PAIVI = "paivi.makela@jamsa.example"  # an active contact of the example
JUHA = "juha.lehtonen@jamsa.example"  # removed from the config during the 2025 cycle


def import_examples(url: str) -> None:
    with db.session_scope(url) as s:
        view = cycle_view(s)
        for path in feedback_import.export_files(view):
            feedback_import.import_file(view, path)


def run(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


# --- the e-mail address is optional -------------------------------------------------


def test_answers_without_an_e_mail_are_accepted(loaded: str, tmp_path: Path) -> None:
    export = tmp_path / "vastaukset.csv"
    export.write_text(
        "Vastausaika;Organisaatio;Vastaajan tyyppi;Kunta tai kuntaryhmä;Näkemys\n"
        "24.10.2025 9:12;Jämsän kaupunki;Kunta;Jämsä;Liikuntapaikkojen esteettömyys.\n",
        encoding="utf-8",
    )
    with_column = tmp_path / "vastaukset-2.csv"
    with_column.write_text(
        "Vastausaika;Kunta tai kuntaryhmä;Näkemys;Sähköposti\n"
        "25.10.2025 10:00;;Ei osoitetta annettu.;\n",
        encoding="utf-8",
    )
    with db.session_scope(loaded) as s:
        view = cycle_view(s)
        assert feedback_import.import_file(view, export).added == 1
        assert feedback_import.import_file(view, with_column).added == 1
    clock = Clock(helsinki("2025-11-15 10:00"))
    client = TestClient(create_app(loaded, clock=clock, secret=b"privacy"))
    tok = token(client.get("/").text)
    page = client.post("/", data={"token": tok, "lang": "fi", "text": "Vain näkemys."})
    assert page.status_code == 200, page.text
    with db.session_scope(loaded) as s:
        rows = list(s.scalars(select(db.FeedbackResponse).order_by(db.FeedbackResponse.id)))
        assert [r.text for r in rows] == [
            "Liikuntapaikkojen esteettömyys.",
            "Ei osoitetta annettu.",
            "Vain näkemys.",
        ]
        assert all(r.respondent_email is None for r in rows)


# --- documents ----------------------------------------------------------------------


def _pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)


def test_documents_never_show_respondents_addresses_or_names(loaded: str, tmp_path: Path) -> None:
    import_examples(loaded)
    # A resident answers through the form with their own name as "organisation".
    clock = Clock(helsinki("2025-11-15 10:00"))
    client = TestClient(create_app(loaded, clock=clock, secret=b"privacy"))
    tok = token(client.get("/").text)
    answer = {
        "token": tok,
        "lang": "fi",
        "organisation": RESIDENT,
        "respondent_type": "resident",
        "municipality": "jamsa",
        "priority_area": "arjen-turvallisuus",
        "service_area": "ikaantyneet",
        "text": "Kotikadun talvikunnossapito on kaatumisten ehkäisyä.",
        "email": RESIDENT_EMAIL,
        "website": "",
    }
    assert client.post("/", data=answer).status_code == 200
    phases.run_import_notes(helsinki("2025-12-20 07:00"), loaded)
    phases.run_compile(loaded)
    phases.run_render(tmp_path / "out", loaded)
    with db.session_scope(loaded) as s:
        addresses = {e for e in s.scalars(select(db.FeedbackResponse.respondent_email)) if e}
        assert RESIDENT_EMAIL in addresses and len(addresses) >= 10
        view = cycle_view(s)
        result = findings.latest_compilation(view).result
        versions = list(s.scalars(select(db.MemoVersion)))
        documents = {v.filename: v.html for v in versions}
        documents |= {f"{v.filename} (PDF)": _pdf_text(v.pdf) for v in versions}
        documents |= {f"{v.filename} (review)": memos.review_markdown(v) for v in versions}
        annexes = [v for v in versions if v.annex_pdf is not None]
        assert annexes  # the feedback verbatim: the annex PDF and its CSV, checked too
        documents |= {f"{v.annex_filename} (PDF)": _pdf_text(v.annex_pdf) for v in annexes}
        documents |= {f"{v.annex_filename} (CSV)": v.annex_csv.decode("utf-8-sig") for v in annexes}
    stored = {v.pdf for v in versions} | {v.annex_pdf for v in annexes}
    for path in (tmp_path / "out" / "memos").iterdir():
        if path.suffix == ".pdf":
            assert path.read_bytes() in stored  # the file is the PDF read above
        else:
            documents[f"file {path.name}"] = path.read_text(encoding="utf-8-sig")
    documents["compilation (Markdown artifact)"] = findings.markdown(result)
    documents["common themes (table artifact)"] = json.dumps(
        findings.common_table(result), ensure_ascii=False
    )
    assert len(versions) >= 2
    # The controls: the texts are there, so a missing address is not a blank document.
    everything = "\n".join(documents.values())
    assert "Kotikadun talvikunnossapito" in everything
    assert "Kaatumisten ehkäisyyn tarvitaan yhteinen toimintamalli" in everything
    for name, text in documents.items():
        flat = " ".join(text.split()).lower()
        for address in addresses:
            assert address.lower() not in flat, (name, address)
            local = address.lower().split("@")[0]
            if "." in local:  # a person's first.last, also when a line break cut the domain
                assert local not in flat, (name, local)
        assert RESIDENT.lower() not in flat, name
        assert "meikäläinen" not in flat, name


# --- two cycles: 2022 (old) and 2025 (current) ---------------------------------------


def _add_old_cycle(url: str) -> dict[str, int]:
    """The 2022 cycle as it would be after its year: a session, an invitation to a contact
    since removed, responses, a compilation, an approved memo, messages, an audit entry."""
    with db.session_scope(url) as s:
        region = s.scalars(select(db.Region)).one()
        old = db.Cycle(
            region_id=region.id,
            year=2022,
            title={"fi": "HYTE-neuvottelut 2022"},
            plan_period="2022–2025",
            reference=None,
            config_folder="/srv/hytetu/config/2022",
            feedback_opens=date(2022, 10, 20),
            feedback_deadline=date(2022, 12, 16),
            feedback_url=None,
            feedback_opened_at=helsinki("2022-10-20 07:00"),
            feedback_closed_at=helsinki("2022-12-17 00:00"),
            settings={},
        )
        s.add(old)
        s.flush()
        meeting = db.MeetingSession(
            cycle_id=old.id,
            key="2022-10-20-jamsa",
            kind="group_session",
            title={"fi": "Jämsän ryhmä"},
            start=helsinki("2022-10-20 09:00"),
            end=helsinki("2022-10-20 11:00"),
            online_url=None,
            place="Jämsä",
            invite_types=["municipality"],
            attendees=[{"organisation": "Jämsän kaupunki", "type": "municipality", "count": 2}],
        )
        gone = db.Contact(
            region_id=region.id,
            org_key="jamsa",
            name="Kalle Entinen",
            email=GONE,
            role="hyte_coordinator",
            language="fi",
            active=False,
        )
        s.add_all([meeting, gone])
        s.flush()
        s.add(
            db.Invitation(session_id=meeting.id, contact_id=gone.id, sequence=0, method="REQUEST")
        )
        s.add(
            db.Finding(
                session_id=meeting.id,
                kind="cell",
                priority_area_key="arjen-turvallisuus",
                service_area_key="ikaantyneet",
                text="Vuoden 2022 havainto: kotitapaturmat.",
                position=0,
            )
        )
        received = helsinki("2022-11-01 12:00")
        s.add_all(
            [
                db.FeedbackResponse(
                    cycle_id=old.id,
                    fingerprint="old-org",
                    respondent_org="Jämsän kaupunki",
                    respondent_type="municipality",
                    respondent_email="vanha.vastaaja@jamsa.example",
                    municipality_key="jamsa",
                    text="Vanha näkemys järjestöyhteistyöstä.",
                    received_at=received,
                    channel="export",
                ),
                db.FeedbackResponse(
                    cycle_id=old.id,
                    fingerprint="old-resident",
                    respondent_org=RESIDENT,
                    respondent_type="resident",
                    respondent_email=RESIDENT_EMAIL,
                    municipality_key="jamsa",
                    text="Asukkaan näkemys: valaistus.",
                    received_at=received,
                    channel="form",
                ),
            ]
        )
        result = {
            "threshold": 2,
            "cells": [
                {
                    "priority_area": "arjen-turvallisuus",
                    "service_area": "ikaantyneet",
                    "themes": [{"text": "Kotitapaturmat", "groups": ["jamsa"], "common": False}],
                    "feedback": [
                        {
                            "id": 2,
                            "text": "Asukkaan näkemys: valaistus.",
                            "respondent_type": "resident",
                            "organisation": RESIDENT,
                        }
                    ],
                }
            ],
            "feedback": {"total": 2, "on_time": 2, "late": 0},
        }
        compilation = db.Compilation(cycle_id=old.id, input_hash="a" * 64, result=result)
        memo = db.Memo(cycle_id=old.id, key="jamsa-2022", kind="group")
        s.add_all([compilation, memo])
        s.flush()
        version = db.MemoVersion(
            memo_id=memo.id,
            number=1,
            content_hash="b" * 64,
            compilation_id=compilation.id,
            html="<p>Vuoden 2022 muistio: kotitapaturmat.</p>",
            pdf=b"%PDF-1.7 muistio 2022",
            filename="2022-jamsa.pdf",
            status="approved",
        )
        s.add(version)
        s.flush()
        sent = helsinki("2022-09-29 07:00")

        def message(key: str, purpose: str, to: str, state: str, **extra: Any) -> Any:
            return db.OutgoingMessage(
                cycle_id=old.id,
                dedupe_key=f"{key}:{old.id}:{to}",
                message_id=f"<{key}.2022@hytetu.example>",
                purpose=purpose,
                recipients=[to],
                subject=f"{purpose} 2022",
                raw=f"To: {to}\r\n\r\nHei!".encode(),
                state=state,
                sent_at=sent if state == "sent" else None,
                **extra,
            )

        invitation = message("invite", "invitation", GONE, "sent", receipt="smtp: accepted")
        failed = message(
            "feedback-open", "feedback_open", PAIVI, "failed", last_error=f"550 {PAIVI} refused"
        )
        letter = message("memo", "memo", "kirjaamo@jamsa.example", "sent")
        letter.memo_version_id = version.id
        s.add_all([invitation, failed, letter])
        s.add(
            db.AuditEvent(
                at=helsinki("2022-09-01 10:00"),
                actor="cli",
                action="config.load",
                entity="cycle keski-suomi/2022",
                detail={"changes": [f"added contact jamsa/{GONE}", f"added contact jamsa/{PAIVI}"]},
            )
        )
        s.add(
            db.AuditEvent(
                actor="cli",
                action="config.load",
                entity="cycle keski-suomi/2025",
                detail={"changes": [f"removed contact ('jamsa', '{GONE}')"]},
            )
        )
        s.flush()
        return {
            "cycle": old.id,
            "invitation": invitation.id,
            "failed": failed.id,
            "letter": letter.id,
            "version": version.id,
            "compilation": compilation.id,
        }


@pytest.fixture
def two_cycles(db_url: str, tmp_path: Path) -> Iterator[tuple[str, dict[str, int]]]:
    """The example's 2025 cycle with invitations sent, the window opened and the feedback
    imported, plus a 2022 cycle; on SQLite and on PostgreSQL."""
    config = tmp_path / "config"
    shutil.copytree(EXAMPLE, config)
    phases.load(config, db_url)
    phases.run_invitations(helsinki("2025-10-02 07:00"), tmp_path / "out", db_url)
    # Juha was invited in 2025 and then removed from the config: inactive, but his data
    # belongs to the current cycle.
    region = config / "region.yaml"
    lines = region.read_text(encoding="utf-8").splitlines(keepends=True)
    region.write_text("".join(x for x in lines if JUHA not in x), encoding="utf-8")
    phases.load(config, db_url)
    phases.run_feedback_step("open", helsinki("2025-10-23 07:00"), tmp_path / "out", db_url)
    import_examples(db_url)
    with db.session_scope(db_url) as s:
        cycle = cycle_view(s).cycle
        s.add(
            db.FeedbackResponse(
                cycle_id=cycle.id,
                fingerprint="paivi-2025",
                respondent_org="Jämsän kaupunki",
                respondent_type="municipality",
                respondent_email="Paivi.Makela@Jamsa.example",
                municipality_key="jamsa",
                text="Päivän näkemys: yhteistyö järjestöjen kanssa.",
                received_at=helsinki("2025-11-02 12:00"),
                channel="form",
            )
        )
        s.add(
            db.FeedbackResponse(
                cycle_id=cycle.id,
                fingerprint="obrien-2025",
                respondent_org="Keuruun kaupunki",
                respondent_type="municipality",
                respondent_email="O'Brien_x@keuruu.example",
                municipality_key="keuruu",
                text="Näkemys.",
                received_at=helsinki("2025-11-03 12:00"),
                channel="form",
            )
        )
    ids = _add_old_cycle(db_url)
    yield db_url, ids


def _snapshot(url: str, cycle_id: int) -> dict[str, Any]:
    """Everything of one cycle that the purge must not change."""
    with db.session_scope(url) as s:
        r, m = db.FeedbackResponse, db.OutgoingMessage
        return {
            "responses": [
                (x.id, x.respondent_email, x.respondent_org, x.text)
                for x in s.scalars(select(r).filter_by(cycle_id=cycle_id).order_by(r.id))
            ],
            "messages": [
                (x.id, x.dedupe_key, x.recipients, x.raw, x.state, x.subject)
                for x in s.scalars(select(m).filter_by(cycle_id=cycle_id).order_by(m.id))
            ],
            "compilations": [
                x.result for x in s.scalars(select(db.Compilation).filter_by(cycle_id=cycle_id))
            ],
        }


def test_purge_removes_old_cycles_personal_data_and_keeps_the_rest(
    two_cycles: tuple[str, dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, ids = two_cycles
    with db.session_scope(url) as s:
        current = cycle_view(s).cycle.id
        findings_before = s.scalar(select(func.count()).select_from(db.Finding))
        version_before = s.get(db.MemoVersion, ids["version"])
        assert version_before is not None
        memo_html, memo_pdf = version_before.html, version_before.pdf
        paivi_messages = [
            m.id
            for m in s.scalars(select(db.OutgoingMessage).filter_by(cycle_id=current))
            if PAIVI in m.recipients
        ]
        assert paivi_messages  # the 2025 notice and invitation to an active contact
    kept = _snapshot(url, current)
    assert any(e for _, e, _, _ in kept["responses"])

    monkeypatch.setenv("HYTETU_DATABASE_URL", url)
    years = datetime.now().year - 2023  # 2022 is past it, 2025 is not
    out = run("purge", "--older-than-years", str(years)).output
    assert out.startswith("cycles purged: 2022; e-mails removed: 2; message copies cleared: 2;")
    assert "contacts anonymised: 1;" in out

    with db.session_scope(url) as s:
        old_rows = list(s.scalars(select(db.FeedbackResponse).filter_by(cycle_id=ids["cycle"])))
        assert [r.respondent_email for r in old_rows] == [None, None]
        assert {r.respondent_org for r in old_rows} == {"Jämsän kaupunki", None}
        assert {r.text for r in old_rows} == {
            "Vanha näkemys järjestöyhteistyöstä.",
            "Asukkaan näkemys: valaistus.",
        }
        invitation = s.get(db.OutgoingMessage, ids["invitation"])
        assert invitation is not None
        assert (invitation.raw, invitation.recipients, invitation.receipt) == (b"", [], None)
        assert GONE.lower() not in invitation.dedupe_key.lower()
        assert (invitation.state, invitation.subject) == ("sent", "invitation 2022")
        assert invitation.message_id == "<invite.2022@hytetu.example>"
        assert invitation.sent_at is not None
        failed = s.get(db.OutgoingMessage, ids["failed"])
        assert failed is not None and failed.raw == b"" and failed.recipients == []
        assert failed.state == "failed" and PAIVI not in (failed.last_error or "")
        letter = s.get(db.OutgoingMessage, ids["letter"])
        assert letter is not None and letter.recipients == ["kirjaamo@jamsa.example"]
        assert letter.raw.startswith(b"To: kirjaamo@jamsa.example")
        # The aggregated results stay: findings, compilations (less the resident's name),
        # approved memo versions.
        assert s.scalar(select(func.count()).select_from(db.Finding)) == findings_before
        compilation = s.get(db.Compilation, ids["compilation"])
        assert compilation is not None
        assert compilation.result["feedback"] == {"total": 2, "on_time": 2, "late": 0}
        [entry] = compilation.result["cells"][0]["feedback"]
        assert entry["organisation"] is None and entry["text"] == "Asukkaan näkemys: valaistus."
        version = s.get(db.MemoVersion, ids["version"])
        assert version is not None and (version.html, version.pdf) == (memo_html, memo_pdf)
        assert version.status == "approved"
        # The contact removed before 2025 is anonymised; the current contacts stay.
        emails = {e.lower() for e in s.scalars(select(db.Contact.email))}
        assert GONE.lower() not in emails and PAIVI in emails and JUHA in emails
        assert "Kalle Entinen" not in set(s.scalars(select(db.Contact.name)))
        # Audit entries: addresses from before 2023 and the anonymised contact's are gone.
        audit_text = json.dumps(
            [(e.entity, e.detail) for e in s.scalars(select(db.AuditEvent))], ensure_ascii=False
        ).lower()
        assert GONE.lower() not in audit_text
        old_event = s.scalars(
            select(db.AuditEvent).where(db.AuditEvent.entity == "cycle keski-suomi/2022")
        ).one()
        assert PAIVI not in json.dumps(old_event.detail)
        assert PAIVI in audit_text  # the 2025 load still names the current contact
    # The 2025 cycle is untouched.
    assert _snapshot(url, current) == kept
    # Idempotent: a second run finds nothing more.
    again = run("purge", "--older-than-years", str(years)).output
    assert "e-mails removed: 0; message copies cleared: 0; contacts anonymised: 0;" in again
    assert "audit entries redacted: 0" in again
    # And the purged addresses are no longer known to an access export.
    with db.session_scope(url) as s:
        assert export_person(s, GONE).empty
        assert export_person(s, "vanha.vastaaja@jamsa.example").empty
        assert export_person(s, RESIDENT_EMAIL).empty


# --- right of access ----------------------------------------------------------------


def test_export_of_one_persons_data(
    two_cycles: tuple[str, dict[str, int]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url, _ = two_cycles
    monkeypatch.setenv("HYTETU_DATABASE_URL", url)
    target = tmp_path / "pyynto" / "paivi.json"
    result = run("personal-data", "export", PAIVI.upper(), "--out", str(target))
    raw = target.read_bytes()
    assert "Päivi Mäkelä".encode() in raw and b"\\u00e4" not in raw
    data = json.loads(raw.decode("utf-8"))
    assert data["format"] == "hytetu-personal-data/1"
    [contact] = data["contacts"]
    assert (contact["name"], contact["email"], contact["role"]) == (
        "Päivi Mäkelä",
        PAIVI,
        "hyte_coordinator",
    )
    assert contact["organisation_key"] == "jamsa" and "Jämsä" in contact["organisation"].values()
    [answer] = data["feedback_responses"]
    assert answer["text"] == "Päivän näkemys: yhteistyö järjestöjen kanssa."
    assert answer["email"] == "Paivi.Makela@Jamsa.example" and answer["cycle"] == 2025
    purposes = sorted(m["purpose"] for m in data["messages"])
    assert purposes == ["feedback_open", "feedback_open", "invitation"]  # 2022 failed + 2025
    assert all(m["subject"] and "raw" not in m for m in data["messages"])
    assert {i["session"] for i in data["invitations"]} == {"2025-10-23-jamsa"}
    actions = [e["action"] for e in data["audit_events"]]
    assert actions.count("config.load") >= 2  # the 2022 entry and the 2025 load
    assert f"{PAIVI}: contacts 1, feedback responses 1" in result.output.lower()
    # The export itself is logged, without the address.
    with db.session_scope(url) as s:
        logged = s.scalars(select(db.AuditEvent).filter_by(action="personal_data.export")).one()
        assert logged.detail["contacts"] == 1 and PAIVI not in json.dumps(logged.detail)

    # A stored address in mixed case is found by any case.
    kalle = json.loads(run("personal-data", "export", GONE.lower()).stdout)
    assert [c["name"] for c in kalle["contacts"]] == ["Kalle Entinen"]
    assert [i["session"] for i in kalle["invitations"]] == ["2022-10-20-jamsa"]
    assert [m["subject"] for m in kalle["messages"]] == ["invitation 2022"]

    # Standard output; the address compared exactly, as a bound parameter.
    quoted = json.loads(run("personal-data", "export", "o'brien_X@KEUruu.example").stdout)
    assert [r["text"] for r in quoted["feedback_responses"]] == ["Näkemys."]
    for probe in ("akela@jamsa.example", "%@jamsa.example", "_aivi.makela@jamsa.example"):
        found = json.loads(run("personal-data", "export", probe).stdout)
        assert found["contacts"] == found["messages"] == found["audit_events"] == [], probe
    unknown = run("personal-data", "export", "x' OR '1'='1@nobody.example")
    data = json.loads(unknown.stdout)
    assert all(data[k] == [] for k in ("contacts", "feedback_responses", "messages"))
    assert "nothing is stored about" in unknown.output


# --- the purge reaches the copies outside the database ------------------------------------

RESPONDENT = "asukas.jyvaskyla@posti.example"  # in the example's CSV export, no contact


def test_purge_deletes_the_copies_in_files_and_prefect(
    prefect_api: None, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 2025 cycle, purged: its .eml files, calendar feeds, imported form exports and
    the Prefect artifacts naming its respondents go; registry letters, other files and
    artifacts naming only current contacts stay, and what is left is reported."""
    from email import policy
    from email.parser import BytesParser

    from prefect.artifacts import create_markdown_artifact, create_table_artifact
    from prefect.client.orchestration import get_client

    config, out = tmp_path / "config", tmp_path / "out"
    shutil.copytree(EXAMPLE, config)
    (config / ".git").mkdir()  # the config folder kept in git, as counties do
    phases.load(config, sqlite_url)
    phases.run_invitations(helsinki("2025-10-02 07:00"), out, sqlite_url)
    phases.run_feedback_step("open", helsinki("2025-10-23 07:00"), out, sqlite_url)
    import_examples(sqlite_url)
    notes = config / "feedback" / "muistiinpanot.csv"  # not an export hytetu imported
    notes.write_text("Vastausaika;Näkemys\n", encoding="utf-8")
    letter = out / "outbox" / "kirjaamo-jamsa.eml"  # a registry letter: the record stays
    letter.write_bytes(
        b"Message-ID: <memo.2025.jamsa@hyvaks.example>\r\nTo: kirjaamo@jamsa.example\r\n"
        b"Subject: Muistio\r\n\r\nLiitteena muistio.\r\n"
    )
    emls = sorted((out / "outbox").glob("*.eml"))
    assert len(emls) > 10
    assert any(PAIVI in p.read_bytes().decode("utf-8", "replace") for p in emls)
    feeds = sorted((out / "calendars").glob("2025-*.ics"))
    assert feeds
    exports = sorted(p for p in (config / "feedback").iterdir() if p.suffix in (".csv", ".xlsx"))
    named = create_table_artifact(
        [{"recipient": RESPONDENT, "state": "sent"}], key="test-purge-named"
    )
    current = create_markdown_artifact(f"Kutsu: {PAIVI}", key="test-purge-current")
    plain = create_markdown_artifact("36 vastausta tuotu", key="test-purge-plain")

    monkeypatch.setenv("HYTETU_DATABASE_URL", sqlite_url)
    years = str(datetime.now().year - 2026)  # 2025 is past the retention
    result = CliRunner().invoke(app, ["purge", "--older-than-years", years, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "cycles purged: 2025;" in result.output
    left = sorted((out / "outbox").glob("*.eml"))
    assert left == [letter]  # every message to a person, gone; the registry letter kept
    assert BytesParser(policy=policy.strict).parse(letter.open("rb"))["to"] == (
        "kirjaamo@jamsa.example"
    )
    assert not list((out / "calendars").glob("2025-*.ics"))
    assert f"{len(emls) - 1} .eml, {len(feeds)} .ics" in result.output
    assert f"form exports deleted: {len(exports) - 1}" in result.output
    assert [p for p in exports if p.exists()] == [notes]
    assert f"warning: {notes}: not removed" in result.output
    assert "is a git repository: the deleted exports stay in its history" in result.output

    async def artifact_ids() -> set[Any]:
        async with get_client() as client:
            return {a.id for a in await client.read_artifacts(limit=200)}

    import asyncio

    remaining = asyncio.run(artifact_ids())
    assert named not in remaining
    assert {current, plain} <= remaining
    assert "Prefect artifacts deleted: 1 of" in result.output
    # again: nothing more to delete, and it says so
    again = CliRunner().invoke(app, ["purge", "--older-than-years", years, "--out", str(out)])
    assert "0 .eml, 0 .ics; form exports deleted: 0; Prefect artifacts deleted: 0" in again.output


def test_purge_without_a_prefect_api_says_so(
    loaded: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.setenv("HYTETU_DATABASE_URL", loaded)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        result = CliRunner().invoke(app, ["purge", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "no Prefect API is configured (PREFECT_API_URL)" in result.output
