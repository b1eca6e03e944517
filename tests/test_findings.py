"""The compilation (koonti): merging Finnish near-duplicates, common and specific themes,
cross-cutting themes, feedback in cells, the admin's corrections, and the seed's slides
11-22 reproduced from the example notes."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import EXAMPLE, ROOT, add_finding, copy_sqlite, helsinki, prefect_artifacts
from sqlalchemy import select
from typer.testing import CliRunner

from hytetu import db, findings, phases
from hytetu.classify import CONFIDENCE_THRESHOLD, same_word, stem
from hytetu.errors import StateError
from hytetu.findings import MERGE_THRESHOLD, similarity
from hytetu.state import cycle_view

LABELLED = yaml.safe_load(
    (ROOT / "tests" / "data" / "labelled_findings.yaml").read_text(encoding="utf-8")
)["findings"]


# --- merging near-duplicates ------------------------------------------------------------

SAME = [
    # inflection and derivation
    ("Kaatumisten ehkäisy", "Kaatumisten ennaltaehkäisy"),
    ("Yksinäisyyden vähentäminen", "Yksinäisyyttä vähentämällä"),
    ("Esteettömyys ja katuvalaistus", "Esteettömyyden ja katuvalaistuksen parantaminen"),
    (
        "Uuden vammaispalvelulain tulkinta aiheuttaa epäselvyyksiä",
        "Uuden vammaispalvelulain tulkinnassa on epäselvyyksiä",
    ),
    # word order
    (
        "Taloudelliset haasteet ja lapsiperheiden arjen kuormittuminen",
        "Lapsiperheiden taloudelliset haasteet ja arjen kuormittuminen",
    ),
    (
        "Syrjäytymisen ehkäisy ja nuorten yksinäisyyden vähentäminen",
        "Nuorten syrjäytymisen ehkäisy ja yksinäisyyden vähentäminen",
    ),
    # punctuation, case, hyphens
    ("Koulupudokkaat ja NEET-nuoret", "koulupudokkaat ja NEET- nuoret."),
    (
        "Yhteistyö koulujen kanssa (Move-tulokset, koulu-PT-mallit)",
        "Yhteistyö koulujen kanssa: Move-tulokset ja koulu-PT-mallit",
    ),
    ("Audit-testi ja RAI-mittarin käyttö", "Audit-testin ja RAI-mittarin tiedon hyödyntäminen"),
    # a short wording contained in a longer one
    (
        "Kaatumisten ehkäisy",
        "Kaatumisten ehkäisy – yhteistyö verkoston ja kuntoutuspalvelujen kanssa",
    ),
    # a slip in a long word (the seed's own "Vertaisohjaatoiminnan")
    (
        "Vertaisohjaatoiminnan kehittäminen ja koulutus",
        "Vertaisohjaajatoiminnan kehittäminen ja vertaisohjaajien koulutus",
    ),
]

DIFFERENT = [
    # a shared beginning is not the same word
    ("Tarvetta yhteisösosiaalityölle", "Tarvetta yhteistyölle"),
    ("Liikuntamahdollisuuksien lisääminen", "Liikunnan lisääminen"),
    ("Kuntouttava työtoiminta", "Kuntien toiminta"),
    # the same action, a different object or a different group
    ("Kaatumisten ehkäisy", "Kiusaamisen ehkäisy"),
    ("Nuorten osallisuuden tukeminen", "Vammaisten osallisuuden tukeminen"),
    ("Nuorten yksinäisyys", "Ikääntyneiden yksinäisyys"),
    ("Esteettömyys ja katuvalaistus", "Esteettömyys tapahtumissa"),
    ("Liikuntaneuvonnan kehittäminen", "Elämäntapaneuvonnan kehittäminen"),
    ("Työikäisten mielenterveyden tukeminen", "Nuorten mielenterveyspalvelujen saatavuus"),
]


@pytest.mark.parametrize(("a", "b"), SAME)
def test_variants_of_one_finding_merge(a: str, b: str) -> None:
    assert similarity(a, b) >= MERGE_THRESHOLD, (a, b, similarity(a, b))
    assert similarity(b, a) == similarity(a, b)


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_different_findings_do_not_merge(a: str, b: str) -> None:
    assert similarity(a, b) < MERGE_THRESHOLD, (a, b, similarity(a, b))


def test_same_word_compares_stems_not_first_letters() -> None:
    assert not same_word(stem("yhteisösosiaalityö"), stem("yhteistyö"))
    assert same_word(stem("ennaltaehkäisy"), stem("ehkäisy"))  # the head of the compound
    assert same_word(stem("kaatumisten"), stem("kaatumisiin"))
    assert not same_word(stem("liikuntamahdollisuudet"), stem("liikunta"))


def test_cluster_keeps_members_groups_and_a_representative() -> None:
    items = [
        findings._Item("a", "Kaatumisten ehkäisy – yhteistyö verkoston kanssa"),
        findings._Item("b", "Kaatumisten ehkäisy"),
        findings._Item("c", "Kaatumisten ennaltaehkäisy"),
        findings._Item("c", "Lääkityksen vaikutus kaatumisiin huolena"),
    ]
    clusters = findings.cluster(items)
    assert sorted(len(c) for c in clusters) == [1, 3]
    theme = findings._theme(max(clusters, key=len), "x/y")
    assert theme["groups"] == ["a", "b", "c"]
    assert theme["text"] == "Kaatumisten ehkäisy"
    assert len(theme["members"]) == 3


# --- the example compiled -----------------------------------------------------------------


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    """The example config with every session's notes imported, compiled once."""
    base = tmp_path_factory.mktemp("compiled")
    shutil.copytree(EXAMPLE, base / "config")
    url = f"sqlite:///{base / 'hytetu.db'}"
    phases.load(base / "config", url)
    phases.run_import_notes(helsinki("2025-12-31 07:00"), url)
    with db.session_scope(url) as s:
        result, _ = findings.compile_cycle(cycle_view(s))
    yield url, result
    db.dispose(url)


def _cell(result: dict[str, Any], pa: str, sa: str) -> dict[str, Any]:
    return next(c for c in result["cells"] if (c["priority_area"], c["service_area"]) == (pa, sa))


def _found_as_common(result: dict[str, Any], point: dict[str, Any]) -> bool:
    cell = _cell(result, point["priority_area"], point["service_area"])
    return any(
        t["common"]
        and any(similarity(point["text"], m["text"]) >= MERGE_THRESHOLD for m in t["members"])
        for t in cell["themes"]
    )


def test_seed_common_points_are_common_themes_in_their_cells(compiled) -> None:
    """Slides 11-13: the points several groups raised, per priority area and column."""
    _, result = compiled
    points = [p for p in LABELLED if p["slide"] in (11, 12, 13)]
    found = [p for p in points if _found_as_common(result, p)]
    missed = [p["text"] for p in points if p not in found]
    print(f"seed common points found as common themes: {len(found)}/{len(points)}")
    assert len(points) == 56
    # Measured 52/56. Two misses are worded too differently for the matcher though the
    # theme is common in the cell ("Tiedontarve ... kaatumisten syistä", "Tarvetta
    # yhteisösosiaalityölle"); two are one group's point only in the example notes
    # ("Esteettömät liikuntalajikokeilut", "Jalkautuva toiminta neuvonnassa").
    assert len(found) >= 50, missed


def test_slides_15_to_22_structure(compiled) -> None:
    _, result = compiled
    assert [g["key"] for g in result["groups"]] == list(result["specific"])
    assert len(result["groups"]) == 6
    # Per group its specific emphases (slides 15-20): each group's own points that no
    # other group raised; e.g. Joutsa's bullying at school, Viitasaari's preparedness.
    assert all(result["specific"][g["key"]] for g in result["groups"])
    texts = {k: [i["text"] for i in v] for k, v in result["specific"].items()}
    assert any("Kiusaamisen" in t for ts in texts.values() for t in ts)
    assert any("valmius- ja varautumissuunnittelussa" in t for ts in texts.values() for t in ts)
    for t in (t for c in result["cells"] for t in c["themes"]):
        assert t["common"] == (len(t["groups"]) >= result["threshold"])
        assert set(t) >= {"text", "groups", "members", "common"}
    # Slide 21: NGOs and parishes; slide 22: the provider forum.
    remarks = {s["text"] for s in result["stakeholders"]}
    assert "Järjestöavustusten merkitys korostuu" in remarks
    assert any("ei syntynyt keskustelua" in f for f in result["forum"])


def test_themes_rank_by_number_of_groups(compiled) -> None:
    _, result = compiled
    for c in result["cells"]:
        counts = [len(t["groups"]) for t in c["themes"]]
        assert counts == sorted(counts, reverse=True)
    falls = _cell(result, "arjen-turvallisuus", "ikaantyneet")["themes"][0:2]
    assert any(t["text"] == "Kaatumisten ehkäisy" and len(t["groups"]) == 3 for t in falls)


def test_cross_cutting_themes(compiled) -> None:
    _, result = compiled
    falls = next(x for x in result["cross_cutting"] if x["text"].startswith("Kaatumisten"))
    assert {"axis": "service_area", "key": "ikaantyneet", "cells": 2} in falls["along"]
    assert {c["priority_area"] for c in falls["cells"]} == {
        "arjen-turvallisuus",
        "liikunnallinen-elamantapa",
    }
    violence = next(x for x in result["cross_cutting"] if x["text"].startswith("Lähisuhde"))
    assert {(c["priority_area"], c["service_area"]) for c in violence["cells"]} == {
        ("arjen-turvallisuus", "terveydenhuolto"),
        ("mielen-hyvinvointi", "ikaantyneet"),
    }
    assert violence["along"] == []
    # Generic words ("yhteistyö", "kunnat") alone do not make a cross-cutting theme.
    assert not any(x["text"].startswith("Potilasjärjestöjen") for x in result["cross_cutting"])


# --- feedback ---------------------------------------------------------------------------


def _response(view, n: int, text: str, **kw: Any) -> db.FeedbackResponse:
    r = db.FeedbackResponse(
        cycle_id=view.cycle.id,
        fingerprint=f"fp-{n}",
        text=text,
        channel="form",
        received_at=kw.pop("received_at", helsinki("2025-12-01 12:00")),
        **kw,
    )
    view.session.add(r)
    return r


@pytest.fixture
def with_feedback(compiled, tmp_path: Path) -> str:
    url, _ = compiled
    copy = tmp_path / "hytetu.db"
    copy_sqlite(url, copy)
    url = f"sqlite:///{copy}"
    with db.session_scope(url) as s:
        view = cycle_view(s)
        _response(
            view, 1, "Kotona asuvien iäkkäiden kaatumisia pitäisi ehkäistä", respondent_type="ngo"
        )
        _response(
            view,
            2,
            "Liikuntaneuvontaa tarvitaan lisää",
            priority_area_key="liikunnallinen-elamantapa",
            service_area_key="terveydenhuolto",
            respondent_type="municipality",
        )
        _response(view, 3, "Qwerty asdf", respondent_type="resident")
        _response(
            view,
            4,
            "Nuorten päihteiden käyttöön puututtava",
            respondent_type="parish",
            received_at=helsinki("2025-12-21 12:00"),
            late=True,
        )
    yield url
    db.dispose(url)


def test_feedback_joins_given_or_suggested_cells_and_is_counted(with_feedback: str) -> None:
    with db.session_scope(with_feedback) as s:
        result, _ = findings.compile_cycle(cycle_view(s))
    fb = result["feedback"]
    assert (fb["total"], fb["on_time"], fb["late"], fb["included"]) == (4, 3, 1, 3)
    assert fb["per_respondent_type"] == {"municipality": 1, "ngo": 1, "resident": 1}
    given = _cell(result, "liikunnallinen-elamantapa", "terveydenhuolto")["feedback"]
    assert [e["how"] for e in given] == ["given"]
    falls = _cell(result, "arjen-turvallisuus", "ikaantyneet")
    suggested = [e for e in falls["feedback"] if e["how"] == "suggested"]
    assert len(suggested) == 1 and suggested[0]["confidence"] >= CONFIDENCE_THRESHOLD
    assert fb["per_cell"]["arjen-turvallisuus/ikaantyneet"] == 1
    assert [u["text"] for u in result["unclassified"]] == ["Qwerty asdf"]
    assert fb["unclassified"] == 1


def test_late_feedback_counts_when_included(with_feedback: str) -> None:
    with db.session_scope(with_feedback) as s:
        late = s.query(db.FeedbackResponse).filter_by(fingerprint="fp-4").one()
        late.include_late = True
    with db.session_scope(with_feedback) as s:
        result, _ = findings.compile_cycle(cycle_view(s))
    assert result["feedback"]["included"] == 4
    cells = {k for k, n in result["feedback"]["per_cell"].items() if n}
    assert any(k.startswith("mielen-hyvinvointi/") for k in cells)


# --- corrections ------------------------------------------------------------------------


def test_corrections_survive_recompiles(with_feedback: str) -> None:
    url = with_feedback
    cell = "arjen-turvallisuus/ikaantyneet"
    with db.session_scope(url) as s:
        view = cycle_view(s)
        findings.add_correction(
            view, "merge", {"cell": cell, "a": "Kaatumisten ehkäisy", "b": "Lääkityksen vaikutus"}
        )
        findings.add_correction(view, "split", {"cell": cell, "text": "Esteettömyys ja riittävä"})
        qwerty = s.query(db.FeedbackResponse).filter_by(fingerprint="fp-3").one()
        findings.add_correction(view, "reclassify", {"response_id": qwerty.id, "cell": cell})
    for _ in range(2):  # the corrections apply on every compile
        with db.session_scope(url) as s:
            row, _ = findings.compile_and_store(cycle_view(s))
            result = row.result
        themes = _cell(result, "arjen-turvallisuus", "ikaantyneet")["themes"]
        falls = next(t for t in themes if t["text"] == "Kaatumisten ehkäisy")
        assert "Lääkityksen vaikutus kaatumisiin huolena" in [m["text"] for m in falls["members"]]
        alone = next(t for t in themes if t["members"][0]["text"].startswith("Esteettömyys ja r"))
        assert len(alone["members"]) == 1
        lights = next(t for t in themes if t["text"] == "Esteettömyys ja katuvalaistus")
        assert len(lights["groups"]) == 2
        assert result["unclassified"] == []
        assert all(c["applied"] for c in result["corrections"])


def test_corrections_must_name_what_exists(compiled, tmp_path: Path) -> None:
    url, _ = compiled
    copy = tmp_path / "h.db"
    copy_sqlite(url, copy)
    url = f"sqlite:///{copy}"
    with db.session_scope(url) as s:
        view = cycle_view(s)
        cell = "arjen-turvallisuus/ikaantyneet"
        with pytest.raises(StateError, match="no goal-matrix cell"):
            findings.add_correction(view, "split", {"cell": "x/y", "text": "Kaatumisten"})
        with pytest.raises(StateError, match="no finding"):
            findings.add_correction(view, "split", {"cell": cell, "text": "Ei tällaista"})
        with pytest.raises(StateError, match="matches"):
            findings.add_correction(view, "split", {"cell": cell, "text": "Kaatumisten"})
        with pytest.raises(StateError, match="no such feedback"):
            findings.add_correction(view, "reclassify", {"response_id": 999, "cell": cell})
    db.dispose(url)


def test_cli_merge_then_compile(compiled, tmp_path: Path, monkeypatch) -> None:
    from hytetu.cli import app

    url, _ = compiled
    copy = tmp_path / "h.db"
    copy_sqlite(url, copy)
    url = f"sqlite:///{copy}"
    monkeypatch.setenv("HYTETU_DATABASE_URL", url)
    runner = CliRunner()
    ok = runner.invoke(
        app,
        [
            "findings",
            "merge",
            "mielen-hyvinvointi/ikaantyneet",
            "Yksinäisyyden vähentäminen",
            "Ikäihmisten yksinäisyys",
        ],
    )
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["findings", "split", "mielen-hyvinvointi/ikaantyneet", "xyz"])
    assert bad.exit_code == 1 and "no finding" in bad.output
    phases.run_compile(url)
    with db.session_scope(url) as s:
        result = findings.latest_compilation(cycle_view(s)).result
    themes = _cell(result, "mielen-hyvinvointi", "ikaantyneet")["themes"]
    assert any(
        {"Yksinäisyyden vähentäminen", "Ikäihmisten yksinäisyys ja liikkumisen esteet"}
        <= {m["text"] for m in t["members"]}
        for t in themes
    )
    db.dispose(url)


# --- suggested cells --------------------------------------------------------------------


def test_suggested_cell_accuracy_held_out() -> None:
    """The benchmark's held-out figures stay well above chance (1/15 top-1)."""
    spec = importlib.util.spec_from_file_location(
        "classify_accuracy", ROOT / "bench" / "classify_accuracy.py"
    )
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    held_out = bench.evaluate("held out")
    assert held_out["n"] == len(LABELLED) >= 60
    assert held_out["top1"] >= 0.5 and held_out["top3"] >= 0.7, held_out


# --- the Prefect UI ---------------------------------------------------------------------


@pytest.mark.prefect
def test_compile_flow_leaves_table_and_markdown_artifacts(
    prefect_api: None, loaded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.compile import compile_findings

    monkeypatch.setenv("HYTETU_DATABASE_URL", loaded)
    phases.run_import_notes(helsinki("2025-12-31 07:00"), loaded)
    state = compile_findings(return_state=True)
    assert state.is_completed()

    artifacts = {a.key: a for a in prefect_artifacts([state.state_details.flow_run_id])}
    table = artifacts["hytetu-common-themes"]
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert table.type == "table"
    assert {"painopiste": "arjen-turvallisuus", "palvelualue": "ikaantyneet"}.items() <= next(
        r for r in rows if r["teema"] == "Kaatumisten ehkäisy"
    ).items()
    summary = artifacts["hytetu-compilation"]
    assert summary.type == "markdown"
    assert "## Järjestöt ja seurakunnat" in summary.data
    assert "## Palveluntuottajafoorumi" in summary.data


def test_the_tick_compiles_again_only_when_an_input_changed(
    own_year: tuple[str, Path],
) -> None:
    """After the window has closed, the tick compares a fingerprint of the compilation's
    inputs instead of compiling again: a new finding, a correction or a late response
    let in make it compile; nothing new, nothing is due."""
    url, _ = own_year
    after = helsinki("2025-12-22 07:00")
    assert "compile" not in phases.due_phases(after, url)
    add_finding(url, "2025-10-23-jamsa", "Kaatumisten ehkäisy kotona asuville iäkkäille")
    assert "compile" in phases.due_phases(after, url)
    phases.run_phase("compile", after, own_year[1] / "out", url)
    assert "compile" not in phases.due_phases(after, url)
    with db.session_scope(url) as s:
        late = s.scalars(select(db.FeedbackResponse).filter_by(late=True)).first()
        assert late is not None
        late.include_late = True
    assert "compile" in phases.due_phases(after, url)
