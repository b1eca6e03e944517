"""Follow-up: the second year's documents beside the first (hytetu.followup), read back
from the PDFs with pypdf and from the invitations with the email package."""

from __future__ import annotations

import email
import io
import re
from email import policy
from pathlib import Path
from typing import Any

import pytest
from conftest import copy_sqlite
from pypdf import PdfReader
from sqlalchemy import select

from hytetu import db, findings, followup, memos, phases
from hytetu.cyclenew import new_cycle
from hytetu.simulate import run_ticks
from hytetu.state import cycle_view

JOUTSA = "joutsa-luhanka-toivakka"
# Joutsa's 2025 secretary wrote "Vesistöturvallisuus: Päijänne, veneily, uimataito" and
# "Pimeät kevyen liikenteen väylät, esteettömyyden puutteet"; 2026's writes sentences.
NOTES_2026 = """\
session: 2026-10-29-joutsa
attendees:
  - {organisation: Joutsan kunta, type: municipality, count: 2}
general:
  - "Viime vuoden painotukset ovat yhä ajankohtaisia."
findings:
  - priority_area: arjen-turvallisuus
    service_area: terveydenhuolto
    items:
      - "Lasten uimataito ja turvallinen veneily Päijänteellä"
      - "Metsäpalojen riski kuivina kesinä: asukkaille varautumisohjeet"
  - priority_area: arjen-turvallisuus
    service_area: ikaantyneet
    items:
      - "Kevyen liikenteen väylät ovat pimeitä ja esteellisiä"
"""
REWORDED = "Lasten uimataito ja turvallinen veneily Päijänteellä"
NEW = "Metsäpalojen riski kuivina kesinä: asukkaille varautumisohjeet"
DROPPED_MEMBER = "Turvallisuuden tunne ja palvelujen saavutettavuus, pitkät välimatkat Luhangasta"


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"-\n", "-", text)).strip()


def _pdf_text(pdf: bytes) -> str:
    return _normal(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages))


def _latest(url: str, year: int, filename: str) -> db.MemoVersion:
    with db.session_scope(url) as s:
        view = cycle_view(s, year=year)
        version = next(v for v in memos.latest_versions(view) if v.filename == filename)
        s.expunge(version)
        return version


@pytest.fixture(scope="module")
def two_years(year: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The example's 2025 run to rendered drafts, then a 2026 made with cycle new in the
    same database, where only Joutsa's session has notes; run to rendered drafts too."""
    _, first = year
    base = tmp_path_factory.mktemp("two-years")
    url = copy_sqlite(first / "hytetu.db", base / "hytetu.db")
    written = new_cycle(first / "config", 2026, base / "keski-suomi-2026").folder
    (written / "notes").mkdir()
    (written / "notes" / "2026-10-29-joutsa.yaml").write_text(NOTES_2026, encoding="utf-8")
    phases.load(written, url)
    run_ticks(url, base / "out")
    yield {"url": url, "base": base, "first": first}
    db.dispose(url)


def _section(text: str, start: str, ends: list[str]) -> str:
    i = text.index(start) + len(start)
    j = min((k for e in ends if (k := text.find(e, i)) != -1), default=len(text))
    return text[i:j]


def test_the_summary_shows_what_recurs_is_new_and_was_dropped(two_years: dict) -> None:
    url = two_years["url"]
    pdf = _latest(url, 2026, "2026-koonti-keski-suomen-hyvinvointialue.pdf").pdf
    text = _pdf_text(pdf)
    page = _section(text, "Seuranta: muutokset vuodesta 2025", ["Kuntaryhmä:"])
    safety = _section(page, "Arjen turvallisuuden edistäminen", ["Mielen hyvinvoinnin edistäminen"])
    cell = _section(safety, "Terveydenhuolto", ["Mielen hyvinvoinnin"])
    recurring = _section(cell, "Toistuvat", ["Uudet", "Pois jääneet"])
    new = _section(cell, "Uudet", ["Pois jääneet"])
    dropped = _section(cell, "Pois jääneet", ["Toistuvat"])
    # The reworded point is the same one, shown with last year's wording.
    assert REWORDED in recurring
    assert "(2025: Vesistöturvallisuus: Päijänne, veneily, uimataito)" in recurring
    assert NEW in new and NEW not in recurring
    with db.session_scope(url) as s:
        last = followup.last_year(cycle_view(s, year=2026))
        assert last is not None and last.year == 2025
        theme = next(
            t
            for c in last.result["cells"]
            for t in c["themes"]
            if any(m["text"] == DROPPED_MEMBER for m in t["members"])
        )
    assert theme["text"][:40] in dropped
    # The totals add up to the cells' lists.
    with db.session_scope(url) as s:
        view = cycle_view(s, year=2026)
        cells = followup.compare(view, findings.latest_compilation(view).result, last)
    recurring_n = sum(len(c.recurring) for c in cells)
    assert f"Toistuvat {recurring_n} Uudet" in page


def test_the_group_memo_says_which_emphases_were_raised_again(two_years: dict) -> None:
    memo = _latest(two_years["url"], 2026, "2026-muistio-joutsa-luhanka-toivakka.pdf")
    text = _pdf_text(memo.pdf)
    part = _section(
        text, "Seuranta: kuntaryhmän nostot vuonna 2025", ["Järjestöjen", "Kuntien palaute"]
    )
    assert "Vesistöturvallisuus: Päijänne, veneily, uimataito nostettiin uudelleen" in part
    assert "Pimeät kevyen liikenteen väylät, esteettömyyden puutteet nostettiin uudelleen" in part
    # Said last year, not this year: listed, not marked.
    assert "Kaatumisten syistä ei yhteistä tietoa" in part
    assert "Kaatumisten syistä ei yhteistä tietoa nostettiin" not in part
    match = re.search(r"(\d+) / (\d+) viime vuoden nostoista nostettiin", part)
    assert match and 2 <= int(match[1]) < int(match[2])


def test_the_invitation_shows_what_the_group_raised_last_year(two_years: dict) -> None:
    def html_of(outbox: Path, session: str) -> list[str]:
        out = []
        for path in sorted(outbox.glob("*.eml")):
            msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            body = msg.get_body(("html",))
            if body is not None and session in str(msg["Subject"]) + body.get_content():
                out.append(body.get_content())
        return out

    later = html_of(two_years["base"] / "out" / "outbox", "Joutsa")
    assert later and all("Kuntaryhmänne nostot vuoden 2025 neuvottelussa" in h for h in later)
    assert "Vesistöturvallisuus: Päijänne, veneily, uimataito" in later[0]
    first = html_of(two_years["first"] / "out" / "outbox", "Joutsa")
    assert first and not any("nostot vuoden" in h for h in first)


def test_a_first_cycle_has_no_follow_up(year: tuple[str, Path]) -> None:
    url, _ = year
    summary = _pdf_text(_latest(url, 2025, "2025-koonti-keski-suomen-hyvinvointialue.pdf").pdf)
    memo = _pdf_text(_latest(url, 2025, "2025-muistio-joutsa-luhanka-toivakka.pdf").pdf)
    assert "Seuranta" not in summary and "Seuranta" not in memo
    with db.session_scope(url) as s:
        assert followup.last_year(cycle_view(s, year=2025)) is None


def test_the_swedish_texts(two_years: dict) -> None:
    with db.session_scope(two_years["url"]) as s:
        view = cycle_view(s, year=2026)
        result = findings.latest_compilation(view).result
        summary = view.render("summary.html.j2", "sv", memos.summary_context(view, result, "sv"))
        memo = view.render(
            "memo.html.j2", "sv", memos.group_memo_context(view, result, JOUTSA, "sv")
        )
    assert "Uppföljning: förändringar sedan 2025" in summary and "Återkommande" in summary
    assert "Uppföljning: kommungruppens synpunkter år 2025" in memo
    assert "togs upp igen" in memo


def test_a_re_formed_group_is_matched_by_its_municipalities(
    two_years: dict, tmp_path: Path
) -> None:
    url = copy_sqlite(two_years["base"] / "hytetu.db", tmp_path / "hytetu.db")
    with db.session_scope(url) as s:
        view = cycle_view(s, year=2026)
        region = view.region.id
        old = s.scalars(select(db.MunicipalityGroup).filter_by(key=JOUTSA)).one()
        members = list(old.municipalities)
        others = s.scalars(
            select(db.Municipality).where(db.Municipality.id.not_in([m.id for m in members]))
        ).all()
        alone = s.scalars(select(db.Municipality).filter_by(key="aanekoski")).one()  # in no group
        for key, municipalities in (
            ("joutsa-uusi", members),  # renamed: the same three
            ("joutsa-kaksi", members[:2] + others[:1]),  # re-formed: two of its three
            ("uusi-ryhma", [members[0], alone]),  # half of it: no last year
        ):
            s.add(
                db.MunicipalityGroup(
                    region_id=region, key=key, name={"fi": key}, municipalities=municipalities
                )
            )
        s.flush()
        last = followup.last_year(view)
        assert last is not None
        assert followup.match_group(view, last, JOUTSA) == JOUTSA
        assert followup.match_group(view, last, "joutsa-uusi") == JOUTSA
        assert followup.match_group(view, last, "joutsa-kaksi") == JOUTSA
        assert followup.match_group(view, last, "uusi-ryhma") is None
        s.rollback()
    db.dispose(url)
