"""Memos and the regional summary: the PDFs read back, the languages, the region's own
templates, versions and approval (in the core, and through a real Prefect pause)."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import json
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
from conftest import EXAMPLE, add_finding, helsinki, prefect_artifacts
from pdf_layout import misbroken_in_pdf
from pypdf import PdfReader
from sqlalchemy import select

from hytetu import db, findings, memos, phases
from hytetu.errors import StateError
from hytetu.render import TEMPLATES, PdfJob, html_to_pdf, html_to_pdfs
from hytetu.state import cycle_view

JAMSA = "2025-muistio-jamsa-keuruu-multia-petajavesi.pdf"
SUMMARY = "2025-koonti-keski-suomen-hyvinvointialue.pdf"
JAMSA_SV = "2025-promemoria-jamsa-keuruu-multia-petajavesi-sv.pdf"  # named in Swedish
SUMMARY_SV = "2025-sammandrag-keski-suomen-hyvinvointialue-sv.pdf"


def _normal(text: str) -> str:
    """Whitespace folded; a line wrapped after a hyphen ("vapaa-\naikatoimen") joined."""
    return re.sub(r"\s+", " ", re.sub(r"-\n", "-", text)).strip()


def _text(pdf: bytes) -> str:
    return _normal(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages))


def _version(url: str, filename: str) -> tuple[int, bytes, str]:
    with db.session_scope(url) as s:
        v = next(v for v in memos.latest_versions(cycle_view(s)) if v.filename == filename)
        return v.id, v.pdf, v.html


def _group_findings(s, session_key: str) -> dict[str, list[str]]:
    session = s.scalars(select(db.MeetingSession).filter_by(key=session_key)).one()
    out: dict[str, list[str]] = {}
    for f in s.scalars(select(db.Finding).filter_by(session_id=session.id)):
        out.setdefault(f.kind, []).append(f.text)
    return out


# --- the PDFs read back ----------------------------------------------------------------


def test_every_group_memo_has_all_its_findings_with_finnish_letters(year) -> None:
    url, _ = year
    with db.session_scope(url) as s:
        view = cycle_view(s)
        versions = {v.memo.key: v for v in memos.latest_versions(view)}
        groups = [x for x in view.sessions() if x.group is not None]
        assert len(groups) == 6
        for session in groups:
            version = versions[f"memo-{session.group.key}"]
            text = _text(version.pdf)
            found = _group_findings(s, session.key)
            assert found["cell"], session.key
            for kind in ("cell", "general", "stakeholder"):
                for finding in found.get(kind, []):
                    assert _normal(finding) in text, (version.filename, finding)
            # ä, ö and å survive the PDF as letters, not as mojibake or lookalikes.
            assert view.text(session.group.name) in text
            assert "Ã" not in text and "Kuntien palaute" in text


def test_memo_has_the_sections_of_a_memo(year) -> None:
    url, _ = year
    _, pdf, html = _version(url, JAMSA)
    text = _text(pdf)
    for heading in (
        "Muistio: Jämsä, Keuruu, Multia ja Petäjävesi",
        "23.10.2025 klo 9.00",
        "Etäyhteys",
        "Osallistujat",
        "Työllisyysalueet",
        "Seurakunnat",
        "Hyvinvointialue",
        "612/2021",
        "7 § 4 mom.",
        "Ohjelma",
        "Keskustelu painopisteittäin",
        "Arjen turvallisuuden edistäminen",
        "Jatkotoimenpiteet",
        "Lisätietoja",
        # The contact person a reader can ask (region.contact), not the sending mailbox.
        "Hyte-koordinaattori Sanna Lahtinen",
        "+358 40 000 1234",
        "sanna.lahtinen@hyvaks.example",
    ):
        assert heading in text, heading
    # Participants grouped by type: the employment area is listed under its type.
    assert re.search(r"Työllisyysalueet Jämsän ja Keuruun työllisyysalue", text)
    # What other groups raised too is marked, in the layout and in words; nothing says
    # that the others did not raise a point (the compile may have missed its wording).
    assert 'class="shared"' in html
    assert "myös muualla" in text
    assert "eivät nostaneet" not in text


def test_pdf_metadata_and_pdfa_identification(year) -> None:
    url, _ = year
    for filename, title in (
        (JAMSA, "Muistio: Jämsä, Keuruu, Multia ja Petäjävesi"),
        (SUMMARY, "Koonti: Hyvinvoinnin, terveyden ja turvallisuuden edistämisen neuvottelut 2025"),
    ):
        _, pdf, _ = _version(url, filename)
        reader = PdfReader(io.BytesIO(pdf))
        meta = reader.metadata
        assert meta.title == title
        assert meta.author == "Keski-Suomen hyvinvointialue"
        assert (
            meta.subject == "Hyvinvoinnin, terveyden ja turvallisuuden edistämisen neuvottelut 2025"
        )
        root = reader.trailer["/Root"]
        assert root["/Lang"] == "fi"
        assert root["/MarkInfo"]["/Marked"] and "/StructTreeRoot" in root
        assert "/OutputIntents" in root  # PDF/A needs the sRGB output intent
        xmp = root["/Metadata"].get_object().get_data().decode()
        assert re.search(r'pdfaid:part(="|>)3', xmp)
        assert re.search(r'pdfaid:conformance(="|>)U', xmp)
        assert title in xmp and "Keski-Suomen hyvinvointialue" in xmp
        # PDF/UA-1 identification and the language, read back by pypdf's XMP parser (which
        # reads only the first rdf:RDF: they must be in the same one), and pdfuaid declared
        # as a PDF/A extension schema.
        meta_xmp = reader.xmp_metadata
        assert meta_xmp is not None and meta_xmp.dc_language == ["fi"]
        assert meta_xmp.dc_title == {"x-default": title}
        rdf = meta_xmp.rdf_root
        parts = rdf.getElementsByTagNameNS("http://www.aiim.org/pdfua/ns/id/", "part")
        assert [n.firstChild.data for n in parts] == ["1"]
        prefixes = rdf.getElementsByTagNameNS("http://www.aiim.org/pdfa/ns/schema#", "prefix")
        assert [n.firstChild.data for n in prefixes] == ["pdfuaid"]
        assert root["/ViewerPreferences"]["/DisplayDocTitle"]  # a BooleanObject
        first = reader.pages[0].mediabox
        assert (round(float(first.width)), round(float(first.height))) == (595, 842)  # A4


def test_summary_matrix_pages_are_landscape_with_five_columns(year) -> None:
    url, _ = year
    _, pdf, html = _version(url, SUMMARY)
    reader = PdfReader(io.BytesIO(pdf))
    landscape = [p for p in reader.pages if float(p.mediabox.width) > float(p.mediabox.height)]
    # One table per priority area; a long one goes on over a second page.
    assert len(landscape) >= 3
    for page in landscape:
        text = _normal(page.extract_text())
        for column in (
            "Lasten, nuorten ja perheiden palvelut",
            "Työikäisten palvelut",
            "Ikääntyneiden palvelut",
            "Vammaispalvelut",
            "Terveydenhuolto",
        ):
            assert column in text
        assert re.search(r"\(\d\)", text)  # how many groups raised a common theme
    text = _text(pdf)
    for heading in (
        "Yleisiä nostoja",
        "Kuntaryhmä: Joutsa, Luhanka ja Toivakka",
        "Järjestöt ja seurakunnat",
        "Palveluntuottajafoorumi",
        "Palautteita yhteensä",
    ):
        assert heading in text


def test_list_items_break_lines_only_where_the_next_word_does_not_fit(year) -> None:
    # Issue 18: the summary's group pages broke "työ- / ja / toimintakyvyn" although "ja"
    # and more would have fitted. Measured on the words' positions, in every document.
    url, _ = year
    with db.session_scope(url) as s:
        versions = memos.latest_versions(cycle_view(s))
        pdfs = {v.filename: v.pdf for v in versions}
    assert SUMMARY in pdfs and JAMSA in pdfs
    for filename, pdf in pdfs.items():
        assert misbroken_in_pdf(pdf) == [], filename


def test_layout_check_sees_the_break_that_weasyprint_makes_after_a_trailing_space() -> None:
    # The check must be able to fail: the old markup, a finding's text ending in a no-break
    # space before its count's span, breaks badly in WeasyPrint at some widths; the
    # templates' markup (the space inside the span) does not, at the same widths.
    css = (TEMPLATES / "_partials" / "document.css").read_text(encoding="utf-8")
    texts = (
        "Työ- ja toimintakyvyn arviointi ja tuki työttömille ja työelämän ulkopuolella oleville",
        "Koulujen on edistettävä liikunnallista elämäntapaa, ja perusopetuslain muutos on tässä "
        "otettava huomioon.",
        "Personer med funktionsnedsättning behöver stöd i vardagen",
    )

    def pdf(count: str) -> bytes:
        """The items on pages whose text is 40, 41, ... 70 mm wide (margins 22 + 20 mm)."""
        widths = range(40, 71)
        pages = "".join(
            f"@page w{w} {{ size: {w + 42}mm 150mm; }} .w{w} {{ page: w{w}; }}" for w in widths
        )
        items = "".join(f"<li>{t}{count}</li>" for t in texts)
        boxes = "".join(f'<div class="w{w}"><ul>{items}</ul></div>' for w in widths)
        html = f"<html lang='fi'><style>{css} {pages}</style><body>{boxes}</body></html>"
        return html_to_pdf(html, title="t", language="fi", author="a", subject="s")

    old = misbroken_in_pdf(pdf('&nbsp;<span class="count">(Työikäisten palvelut)</span>'))
    assert len(old) >= 10 and any(" " not in line for _, line, _ in old)  # "stöd" alone
    assert misbroken_in_pdf(pdf('<span class="count">&nbsp;(Työikäisten palvelut)</span>')) == []


def test_memo_quotes_a_few_responses_per_cell_and_the_annex_has_them_all(own_year) -> None:
    # Issue 18: the memo summarises each cell's feedback (a count and at most three
    # quotes); every response verbatim goes into the annex PDF/A and its CSV.
    url, base = own_year
    said = [
        "Kaatumisten ehkäisyyn tarvitaan yhteinen toimintamalli kotihoidon ja kunnan kesken.",
        "Kotihoidon ja kunnan liikuntapalvelujen pitää ehkäistä kaatumisia yhdessä.",
        "Kaatumisia ehkäistään parhaiten yhteisellä mallilla kotihoidon kanssa.",
        "Liesivahdit ja palovaroittimet kuuluvat jokaiseen ikääntyneen kotiin.",
        "Kaatumisten ehkäisy: kotihoito ja liikuntapalvelut yhteiseen malliin.",
    ]
    with db.session_scope(url) as s:
        view = cycle_view(s)
        for n, text in enumerate(said):
            s.add(
                db.FeedbackResponse(
                    cycle_id=view.cycle.id,
                    fingerprint=f"issue18-{n}",
                    respondent_org="Jämsän kaupunki; vanhuspalvelut",
                    respondent_type="municipality",
                    municipality_key="jamsa",
                    priority_area_key="arjen-turvallisuus",
                    service_area_key="ikaantyneet",
                    text=text,
                    received_at=helsinki(f"2025-11-{10 + n} 09:30"),
                    channel="form",
                )
            )
    phases.run_compile(url)
    report = phases.run_render(base / "out", url)
    with db.session_scope(url) as s:
        v = next(
            v
            for v in memos.latest_versions(cycle_view(s))
            if v.filename.startswith(JAMSA.removesuffix(".pdf"))
        )
        memo_pdf, annex_pdf, annex_csv, annex_name = (
            v.pdf,
            v.annex_pdf,
            v.annex_csv,
            v.annex_filename,
        )
    assert annex_name == JAMSA.replace(".pdf", "-liite-v2.pdf")  # the memo is version 2 now
    memo = _text(memo_pdf)
    cell = memo[memo.index("Arjen turvallisuuden edistäminen: Ikääntyneiden palvelut (6)") :]
    cell = cell[: cell.index("Arjen turvallisuuden edistäminen: Terveydenhuolto")]
    quoted = [t for t in said if _normal(t) in cell]
    assert len(quoted) == 2  # with the one response the example already had: three quotes
    assert _normal(said[3]) in cell  # the one that says something else is quoted too
    # The annex: a PDF/A in the memo's language, with every response of the group.
    reader = PdfReader(io.BytesIO(annex_pdf))
    assert reader.trailer["/Root"]["/Lang"] == "fi"
    assert reader.xmp_metadata is not None and reader.xmp_metadata.dc_language == ["fi"]
    assert reader.metadata.title == "Liite: Muistio: Jämsä, Keuruu, Multia ja Petäjävesi"
    annex = _text(annex_pdf)
    for text in said:
        assert _normal(text) in annex
    assert annex.count("lainattu muistiossa") >= 3 + 1  # the note and the quoted ones
    assert str(base / "out" / "memos" / annex_name) in report.files
    # The CSV for the county: UTF-8 with BOM, semicolons, read back by the csv module.
    assert annex_csv.startswith(b"\xef\xbb\xbf")
    on_disk = (base / "out" / "memos" / annex_name.replace(".pdf", ".csv")).read_bytes()
    assert on_disk == annex_csv
    rows = list(csv.DictReader(io.StringIO(annex_csv.decode("utf-8-sig")), delimiter=";"))
    mine = [r for r in rows if r["palaute"] in said]
    assert [r["palaute"] for r in mine] == said  # in the order they came
    assert {r["vastaaja"] for r in mine} == {"Jämsän kaupunki; vanhuspalvelut"}
    assert {r["painopiste"] for r in mine} == {"Arjen turvallisuuden edistäminen"}
    assert sum(r["lainattu muistiossa"] == "kyllä" for r in mine) == 2
    assert mine[0]["saapunut"] == "2025-11-10 09:30"
    # The compilation chose the quotes; a compilation stored before it did gets them chosen
    # at render time the same way.
    group, key = "jamsa-keuruu-multia-petajavesi", "arjen-turvallisuus/ikaantyneet"
    with db.session_scope(url) as s:
        view = cycle_view(s)
        result = findings.latest_compilation(view).result
        (cell,) = [c for c in result["cells"] if f"{c['priority_area']}/{c['service_area']}" == key]
        assert len(cell["quotes"][group]) == 3
        older = {k: v for k, v in result.items() if k != "unclassified_quotes"}
        older["cells"] = [{k: v for k, v in c.items() if k != "quotes"} for c in result["cells"]]
        (section,) = [x for x in memos.group_feedback(view, older, group, "fi") if x["key"] == key]
        assert section["count"] == 6 and len(section["quotes"]) == 3


# --- languages and the region's own templates -------------------------------------------


def test_bilingual_region_gets_swedish_documents_too(own_year) -> None:
    url, base = own_year
    with db.session_scope(url) as s:
        cycle_view(s).region.languages = ["fi", "sv"]
    report = phases.run_render(base / "out", url)
    assert report.did["new_versions"] == 7 and report.did["unchanged"] == 7
    with db.session_scope(url) as s:
        view = cycle_view(s)
        names = {v.filename for v in memos.latest_versions(view)}
        assert JAMSA_SV in names
        assert SUMMARY_SV in names
        languages = {m.key: memos.memo_language(view, m) for m in s.scalars(select(db.Memo))}
        assert languages["summary-sv"] == "sv" and languages["summary"] == "fi"
        assert languages["memo-jamsa-keuruu-multia-petajavesi-sv"] == "sv"
        findings = _group_findings(s, "2025-10-23-jamsa")["cell"]
    _, pdf, _ = _version(url, JAMSA_SV)
    reader = PdfReader(io.BytesIO(pdf))
    assert reader.trailer["/Root"]["/Lang"] == "sv"
    assert reader.xmp_metadata is not None and reader.xmp_metadata.dc_language == ["sv"]
    assert reader.metadata.title == "Promemoria: Jämsä, Keuruu, Multia ja Petäjävesi"
    text = _text(pdf)
    for word in ("Deltagare", "Bakgrund", "Program", "Fortsatta åtgärder", "även på annat håll"):
        assert word in text
    for finding in findings:
        assert _normal(finding) in text
    _, summary, _ = _version(url, SUMMARY_SV)
    assert "Sammandrag" in _text(summary)
    assert misbroken_in_pdf(summary) == []  # "Personer / med / funktionsnedsättning"
    # The Swedish memo's feedback annex: named in Swedish from the memo's name, in Swedish.
    with db.session_scope(url) as s:
        sv = next(
            v
            for v in memos.latest_versions(cycle_view(s))
            if v.memo.key == "memo-jamsa-keuruu-multia-petajavesi-sv"
        )
        sv_name, sv_annex, sv_csv = sv.filename, sv.annex_filename, sv.annex_csv
        sv_annex_pdf = sv.annex_pdf
    assert sv_annex == sv_name.replace("-sv.pdf", "-bilaga-sv.pdf")
    annex_reader = PdfReader(io.BytesIO(sv_annex_pdf))
    assert annex_reader.trailer["/Root"]["/Lang"] == "sv"
    assert annex_reader.metadata.title.startswith("Bilaga: Promemoria: Jämsä")
    assert sv_csv.decode("utf-8-sig").startswith("prioritetsområde;serviceområde;respondent;")
    assert (base / "out" / "memos" / JAMSA_SV).exists()

    # Dispatched, the Swedish memo carries a Swedish cover letter; the Finnish one a Finnish.
    with db.session_scope(url) as s:
        view = cycle_view(s)
        for v in memos.latest_versions(view):
            if v.filename in (JAMSA, JAMSA_SV):
                memos.decide(view, v.id, approve=True, actor="test")
    phases.run_dispatch(helsinki("2025-12-22 07:00"), base / "out", url)
    letters = {}
    for path in (base / "out" / "outbox").glob("*.eml"):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if msg["To"].addresses[0].addr_spec == "kirjaamo@jamsa.example":
            pdf_name = next(p.get_filename() for p in msg.walk() if p.get_filename())
            letters[pdf_name] = msg.get_body(("plain",)).get_content()
    assert "Registratorskontoret" in letters[JAMSA_SV]
    assert "kirjaamo" in letters[JAMSA]


def test_region_template_override_from_the_config_folder(own_year) -> None:
    url, base = own_year
    folder = base / "config"
    shutil.copytree(EXAMPLE, folder)
    (folder / "templates" / "fi").mkdir(parents=True)
    original = (Path(memos.__file__).parent.parent / "templates/fi/memo.html.j2").read_text()
    (folder / "templates" / "fi" / "memo.html.j2").write_text(
        original.replace(
            '{% include "_partials/memo_body.html.j2" %}',
            '<p class="note">Alueen oma muistiopohja</p>\n'
            '{% include "_partials/memo_body.html.j2" %}',
        ),
        encoding="utf-8",
    )
    with db.session_scope(url) as s:
        cycle_view(s).cycle.config_folder = str(folder)
    report = phases.run_render(base / "out", url)
    assert report.did["new_versions"] == 6  # every group memo; the summary is unchanged
    _, pdf, _ = _version(url, JAMSA.replace(".pdf", "-v2.pdf"))
    assert "Alueen oma muistiopohja" in _text(pdf)


# --- versions and approval in the core ---------------------------------------------------


def test_approved_version_is_frozen_and_a_change_makes_a_new_draft(own_year) -> None:
    url, base = own_year
    vid, pdf, _ = _version(url, JAMSA)
    with db.session_scope(url) as s:
        view = cycle_view(s)
        memos.decide(view, vid, approve=True, actor="test", comment="hyvä")
    with db.session_scope(url) as s, pytest.raises(StateError, match="already approved"):
        memos.decide(cycle_view(s), vid, approve=False, actor="test")
    add_finding(url, "2025-10-23-jamsa", "Uusi nosto: kotihoidon yöpartio", 998)
    phases.run_compile(url)
    phases.run_render(base / "out", url)
    with db.session_scope(url) as s:
        view = cycle_view(s)
        approved = s.get(db.MemoVersion, vid)
        assert approved.status == "approved" and approved.pdf == pdf
        newest = approved.memo.versions[-1]
        assert newest.number == 2 and newest.status == "draft"
        assert newest.filename == JAMSA.replace(".pdf", "-v2.pdf")
        assert newest.content_hash != approved.content_hash
        memos.decide(view, newest.id, approve=True, actor="test")
        assert approved.status == "approved" and approved.pdf == pdf


def test_review_markdown_is_the_memo_text_not_html(year, tmp_path: Path) -> None:
    url, _ = year
    items = memos.prepare_review(tmp_path, url)
    assert len(items) == 7
    item = next(i for i in items if i["filename"] == JAMSA)
    md = item["markdown"]
    assert md.count("# Muistio: Jämsä, Keuruu, Multia ja Petäjävesi") == 1
    assert "\n## Osallistujat\n" in md and "\n### Arjen turvallisuuden edistäminen\n" in md
    assert "- **Työllisyysalueet**: Jämsän ja Keuruun työllisyysalue" in md
    assert re.search(r"\n- [^\n]+ myös muualla \(\d\)\n", md)  # raised by other groups too
    assert "<" not in md.replace("&lt;", "")
    # Links the browser opens through the review page, and where the worker saved it.
    vid = item["version_id"]
    assert f"[PDF](http://127.0.0.1:8001/documents/{vid}/{JAMSA})" in md
    assert f"[HTML](http://127.0.0.1:8001/documents/{vid}/{JAMSA[:-4]}.html)" in md
    assert "file://" not in md and f"`{item['pdf']}`" in md
    assert Path(item["pdf"]).read_bytes()[:5] == b"%PDF-"
    assert re.fullmatch(r"[a-z0-9-]+", item["key"])


def test_hostile_finding_is_text_in_the_review_markdown(own_year) -> None:
    url, base = own_year
    hostile = (
        "<script>alert('x')</script> {{ 7*7 }} [linkki](javascript:alert(1)) **lihava** "
        "<b>lihava</b>"
    )
    add_finding(url, "2025-10-23-jamsa", hostile, 999)
    phases.run_compile(url)
    phases.run_render(base / "out", url)
    _, pdf, html = _version(url, JAMSA.replace(".pdf", "-v2.pdf"))
    assert "<script>" not in html and "&lt;script&gt;" in html and "{{ 7*7 }}" in html
    assert "<b>lihava</b>" not in html
    assert hostile in _text(pdf)
    item = next(
        i for i in memos.prepare_review(base / "out", url) if i["filename"].startswith(JAMSA[:-4])
    )
    assert "<script>" not in item["markdown"]
    assert r"&lt;script&gt;alert('x')&lt;/script&gt; {{ 7\*7 }} \[linkki\]" in item["markdown"]


def test_pdfs_in_worker_processes_come_back_in_order() -> None:
    jobs = [
        PdfJob(
            f"<html><body><h1>Asiakirja {i}: äöå</h1>{'<p>x</p>' * (i * 40)}</body></html>",
            f"Asiakirja {i}",
            "fi",
            "Testi",
            "Aihe",
        )
        for i in range(4)
    ]
    pdfs = html_to_pdfs(jobs, workers=2)
    assert [PdfReader(io.BytesIO(p)).metadata.title for p in pdfs] == [j.title for j in jobs]
    assert "Asiakirja 3: äöå" in PdfReader(io.BytesIO(pdfs[3])).pages[0].extract_text()


# --- approval through a real Prefect pause -------------------------------------------


def _resume_when_paused(out_dir: str, run_input: dict, seen: dict) -> None:
    """Find the paused review-memos run of ``out_dir`` and resume it with ``run_input``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.flow_runs import resume_flow_run

    deadline = time.monotonic() + 120
    paused = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
    )
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            runs = [
                r
                for r in client.read_flow_runs(flow_run_filter=paused)
                if r.parameters.get("out_dir") == out_dir
            ]
        if runs:
            seen["flow_run_id"] = runs[0].id
            try:
                keyset = runs[0].state.state_details.run_input_keyset
                with get_client(sync_client=True) as client:
                    seen["schema"] = json.loads(
                        client.read_flow_run_input(runs[0].id, keyset["schema"])
                    )
                resume_flow_run(runs[0].id, run_input=run_input)
                seen["resumed"] = True
                return
            except Exception as e:  # the form's schema may not be saved yet: try again
                seen["error"] = repr(e)
        time.sleep(0.3)


@pytest.mark.prefect
def test_review_flow_pauses_and_records_the_coordinators_decisions(
    prefect_api: None, own_year, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.approval import review_memos

    url, base = own_year
    monkeypatch.setenv("HYTETU_DATABASE_URL", url)
    approve_id, _, _ = _version(url, "2025-muistio-joutsa-luhanka-toivakka.pdf")
    reject_id, _, _ = _version(url, JAMSA)
    out_dir = str(base / "out")
    seen: dict = {}
    helper = threading.Thread(
        target=_resume_when_paused,
        args=(
            out_dir,
            {
                "reviewer": "Sanna Lahtinen",
                "comment": "Luettu",
                f"memo_{approve_id}": {"decision": "hyväksy"},
                f"memo_{reject_id}": {"decision": "hylkää", "comment": "Korjattava"},
            },
            seen,
        ),
        daemon=True,
    )
    helper.start()
    state = review_memos(out_dir=out_dir, poll_seconds=1, return_state=True)
    helper.join(10)
    assert seen.get("resumed"), seen
    assert state.is_completed(), state
    # The form the UI drew: Finnish labels, one field per memo named by its title, a
    # three-way choice; no version id or file name to type, no list to edit.
    schema = seen["schema"]
    props = schema["properties"]
    assert props["reviewer"]["title"] == "Nimesi"
    memo_fields = [k for k in props if k.startswith("memo_")]
    assert len(memo_fields) == 7
    assert props[f"memo_{reject_id}"]["title"] == "Muistio: Jämsä, Keuruu, Multia ja Petäjävesi"
    text = json.dumps(schema, ensure_ascii=False)
    assert '"hyväksy", "hylkää", "ei vielä"' in text
    assert "array" not in text and "version_id" not in text and "Version" not in text
    result = state.result()
    assert result["approved"] == ["2025-muistio-joutsa-luhanka-toivakka.pdf"]
    assert result["rejected"] == [JAMSA]

    with db.session_scope(url) as s:
        approved = s.get(db.MemoVersion, approve_id)
        rejected = s.get(db.MemoVersion, reject_id)
        assert (approved.status, approved.decided_by, approved.comment) == (
            "approved",
            "Sanna Lahtinen",
            "Luettu",
        )
        assert (rejected.status, rejected.comment) == ("rejected", "Korjattava")
        waiting = {v.filename for v in memos.drafts(cycle_view(s))}
        assert len(waiting) == 5 and JAMSA not in waiting

    # The coordinator read each memo as an artifact of the paused run.

    found = {a.key: a for a in prefect_artifacts([seen["flow_run_id"]])}
    jamsa = found["memo-2025-muistio-jamsa-keuruu-multia-petajavesi"]
    assert jamsa.type == "markdown" and "# Muistio: Jämsä" in jamsa.data
    assert len([k for k in found if k and k.startswith("memo-")]) == 7

    # Only the approved memo goes out; the rejected one never does.
    report = phases.run_dispatch(helsinki("2025-12-22 07:00"), base / "out", url)
    assert report.sent == 3  # Joutsa, Luhanka, Toivakka
    with db.session_scope(url) as s:
        sent = {
            m.memo_version_id
            for m in s.scalars(select(db.OutgoingMessage).filter_by(purpose="memo"))
        }
    assert sent == {approve_id}


@pytest.mark.prefect
def test_review_flow_with_nothing_to_review_does_not_pause(
    prefect_api: None, own_year, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.approval import review_memos

    url, base = own_year
    monkeypatch.setenv("HYTETU_DATABASE_URL", url)
    memos.record_review([], actor="test", approve_all=True, url=url)
    assert review_memos(out_dir=str(base / "out"), poll_seconds=1) == {
        "approved": [],
        "rejected": [],
    }


@pytest.mark.prefect
def test_a_review_nobody_answers_fails_with_a_note_in_finnish_and_swedish(
    prefect_api: None, own_year, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.approval import review_memos

    url, base = own_year
    monkeypatch.setenv("HYTETU_DATABASE_URL", url)
    state = review_memos(
        out_dir=str(base / "out"), timeout_days=2 / 86400, poll_seconds=1, return_state=True
    )
    assert state.is_failed()
    note = next(
        a
        for a in prefect_artifacts([state.state_details.flow_run_id])
        if a.key == "hytetu-review-failure"
    )
    assert "kukaan ei vastannut" in note.data and "ingen svarade" in note.data
    with db.session_scope(url) as s:
        assert len(memos.drafts(cycle_view(s))) == 7  # nothing decided
