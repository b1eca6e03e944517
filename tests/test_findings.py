"""The compilation (koonti): merging Finnish near-duplicates, common and specific themes,
cross-cutting themes, feedback in cells, the admin's corrections, and the seed's slides
11-22 reproduced from the example notes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import EXAMPLE, ROOT, add_finding, copy_sqlite, helsinki, load_copy, prefect_artifacts
from sqlalchemy import select
from typer.testing import CliRunner

from hytetu import db, findings, phases
from hytetu.classify import CONFIDENCE_THRESHOLD
from hytetu.errors import StateError
from hytetu.findings import MERGE_THRESHOLD
from hytetu.language import Matcher, analyse, analyser_name, detect_language
from hytetu.state import cycle_view

QUALITY = ROOT / "bench" / "compile_quality.py"


def _bench() -> Any:
    """bench/compile_quality.py: the measures against the written truth."""
    spec = importlib.util.spec_from_file_location("compile_quality", QUALITY)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def notes_matcher() -> Matcher:
    """A matcher whose word weights come from the example's notes, as in a compile."""
    texts = []
    for path in sorted((EXAMPLE / "notes").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        texts += [t for c in data.get("findings", []) for t in c["items"]]
    return Matcher(texts)


# --- the language analysis -----------------------------------------------------------------


def test_voikko_gives_lemmas_and_compound_parts() -> None:
    assert analyser_name() == "voikko"  # .ci/run and the README install Debian's voikko-fi
    (falls,) = analyse("kaatumisten")
    assert falls.lemma == "kaatua"
    (accident,) = analyse("kaatumistapaturmien")
    assert accident.lemma == "kaatumistapaturma" and "kaatua" in accident.roots
    (prevention,) = analyse("ennaltaehkäiseminen")
    assert {"ennalta", "ehkäistä"} <= prevention.roots and prevention.head == "ehkäistä"
    # Conjunctions, adpositions and pronouns are no content.
    assert [t.lemma for t in analyse("yhteistyö koulujen kanssa ja sen kautta")] == [
        "yhteistyö",
        "koulu",
    ]


def test_swedish_is_recognised_and_stemmed() -> None:
    assert detect_language("Ensamheten bland äldre på landsbygden oroar", ("fi", "sv")) == "sv"
    assert detect_language("Ikäihmisten yksinäisyys huolettaa", ("fi", "sv")) == "fi"
    assert detect_language("Ensamheten bland äldre", ("fi",)) == "fi"  # a Finnish-only region
    assert [t.lang for t in analyse("Förebygga fallolyckor", "sv")] == ["sv", "sv"]


# --- how alike two findings are -----------------------------------------------------------

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
    # punctuation, case, hyphens
    ("Koulupudokkaat ja NEET-nuoret", "koulupudokkaat ja NEET- nuoret."),
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
    # other words for the same thing: synonyms (vectors), compounds split and derived
    ("kaatumisten estäminen", "kaatumistapaturmien ennaltaehkäiseminen"),
    ("Ikääntyneiden yksinäisyys", "Ikäihmisten yksinäisyys"),
]


@pytest.mark.parametrize(("a", "b"), SAME)
def test_variants_of_one_finding_merge(notes_matcher: Matcher, a: str, b: str) -> None:
    score = notes_matcher.similarity(a, b)
    assert score >= MERGE_THRESHOLD, (a, b, score)
    assert notes_matcher.similarity(b, a) == score


def test_a_pair_and_a_matrix_agree(notes_matcher: Matcher) -> None:
    texts = [a for pair in SAME for a in pair]
    fresh = Matcher(notes_matcher._idf)  # same words, no cached pairs
    fresh._idf, fresh._default_idf = notes_matcher._idf, notes_matcher._default_idf
    matrix = fresh.similarities(texts)
    for i, a in enumerate(texts[:6]):
        for j, b in enumerate(texts[:6]):
            if a != b:
                assert matrix[i, j] == pytest.approx(notes_matcher.similarity(a, b), abs=1e-4)


def test_a_swedish_and_a_finnish_wording_meet() -> None:
    """Through the Swedish-Finnish dictionary and the Finnish vectors: at least a
    suggestion in a bilingual region."""
    m = Matcher([], ("fi", "sv"))
    score = m.similarity("Ensamhet bland äldre på landsbygden", "Ikääntyneiden yksinäisyys")
    assert score >= findings.SUGGEST_THRESHOLD
    assert m.similarity("Ensamhet bland äldre", "Nuorten liikuntamahdollisuudet") < score


def test_cluster_keeps_members_groups_and_a_representative(notes_matcher: Matcher) -> None:
    items = [
        findings._Item("a", "Kaatumisten ehkäisy – yhteistyö verkoston kanssa"),
        findings._Item("b", "Kaatumisten ehkäisy"),
        findings._Item("c", "Kaatumisten ennaltaehkäisy"),
        findings._Item("c", "Muistisairaiden asumisen turvallisuus"),
    ]
    clusters = findings.cluster(items, notes_matcher)
    assert sorted(len(c) for c in clusters) == [1, 3]
    confidence, suggestions = findings.assess(clusters, notes_matcher)
    theme = findings._theme(max(clusters, key=len), "x/y", notes_matcher)
    assert theme["groups"] == ["a", "b", "c"]
    assert theme["text"] == "Kaatumisten ehkäisy"
    assert len(theme["members"]) == 3
    assert all(0.0 <= c <= 1.0 for c in confidence)


# --- measured against the written truth -----------------------------------------------------


def test_development_set_merges_are_mostly_right() -> None:
    """tests/data/matching_dev.yaml: five secretaries, Finnish and Swedish, with 39 pairs
    that share words but not meaning. Floors at the figures measured when the thresholds
    were set on it (precision 0.81, 6 of 39 confusers merged, 35 of 39 fi-sv points
    merged or suggested)."""
    dev = _bench().dev_set()
    assert dev["findings"] >= 180
    assert dev["precision"] >= 0.8, dev
    assert dev["confusers_merged"] <= 6, dev
    assert dev["bilingual_found"] >= 33, dev


# --- the example compiled -----------------------------------------------------------------


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    """The example config with every session's notes imported, compiled once."""
    base = tmp_path_factory.mktemp("compiled")
    url = load_copy(base)
    phases.run_import_notes(helsinki("2025-12-31 07:00"), url)
    with db.session_scope(url) as s:
        result, _ = findings.compile_cycle(cycle_view(s))
    yield url, result
    db.dispose(url)


def _cell(result: dict[str, Any], pa: str, sa: str) -> dict[str, Any]:
    return next(c for c in result["cells"] if (c["priority_area"], c["service_area"]) == (pa, sa))


def _theme_with(result: dict[str, Any], pa: str, sa: str, start: str) -> dict[str, Any]:
    return next(
        t
        for t in _cell(result, pa, sa)["themes"]
        if any(m["text"].startswith(start) for m in t["members"])
    )


def test_seed_common_points_are_common_themes_in_their_cells(compiled) -> None:
    """Slides 11-13 against bench/truth: the notes say each of the 56 points in 2-4
    groups' own words. Measured 43/56 found at 91.5 % precision (issue 15's targets are
    85 % and 90 %: the recall target is not met)."""
    url, result = compiled
    ex = _bench().example(result, url)
    assert ex["seed_points"] == 56
    assert ex["common_recall"] >= 0.75, ex
    assert ex["common_precision"] >= 0.9, ex
    # Every merge the compile missed is among its suggestions to the coordinator.
    assert ex["covered"] >= 0.95, ex
    # Nothing in a memo says that other groups did not raise a point.
    assert ex["false_exclusive"] == 0
    assert ex["feedback_top1"] >= 0.4 and ex["feedback_top3"] >= 0.6, ex


def test_slides_15_to_22_structure(compiled) -> None:
    _, result = compiled
    assert [g["key"] for g in result["groups"]] == list(result["specific"])
    assert len(result["groups"]) == 6
    # Per group its own emphases (slides 15-20): each group's points that the compile did
    # not join to another group's; e.g. Joutsa's bullying at school, Jyväskylä's
    # preparedness.
    assert all(result["specific"][g["key"]] for g in result["groups"])
    texts = {k: [i["text"] for i in v] for k, v in result["specific"].items()}
    assert any("kiusaamista" in t for t in texts["joutsa-luhanka-toivakka"])
    assert any("varautumissuunnittelussa" in t for ts in texts.values() for t in ts)
    for t in (t for c in result["cells"] for t in c["themes"]):
        assert t["common"] == (len(t["groups"]) >= result["threshold"])
        assert set(t) >= {"text", "groups", "members", "common", "confidence"}
    # Slide 21: NGOs and parishes; slide 22: the provider forum.
    remarks = {s["text"] for s in result["stakeholders"]}
    assert "Järjestöavustusten merkitys kasvaa, kun palveluja karsitaan." in remarks
    assert any("palveluntuottajafoorumissa" in f for f in result["forum"])
    assert result["analyser"] == {"morphology": "voikko", "vectors": True, "dictionaries": True}


def test_themes_rank_by_number_of_groups(compiled) -> None:
    _, result = compiled
    for c in result["cells"]:
        counts = [len(t["groups"]) for t in c["themes"]]
        assert counts == sorted(counts, reverse=True)
    # Two secretaries' words for balance training against falls: one common theme.
    falls = _theme_with(result, "liikunnallinen-elamantapa", "ikaantyneet", "Tasapaino-")
    assert falls["common"] and len(falls["groups"]) == 2
    assert any(m["text"].startswith("Kaatumisia ehkäistään") for m in falls["members"])


def test_suggestions_name_both_texts_and_their_groups(compiled) -> None:
    _, result = compiled
    cell = _cell(result, "arjen-turvallisuus", "ikaantyneet")
    assert cell["suggestions"], "near misses in the falls cell are offered"
    texts = {m["text"] for t in cell["themes"] for m in t["members"]}
    for s in cell["suggestions"]:
        assert {s["a"], s["b"]} <= texts and s["groups_a"] and s["groups_b"]
        assert s["score"] >= findings.SUGGEST_THRESHOLD
    scores = [s["score"] for s in cell["suggestions"]]
    assert scores == sorted(scores, reverse=True)


def test_cross_cutting_themes(compiled) -> None:
    _, result = compiled
    violence = next(x for x in result["cross_cutting"] if "kaltoinkohtelu" in x["text"])
    assert {(c["priority_area"], c["service_area"]) for c in violence["cells"]} == {
        ("arjen-turvallisuus", "terveydenhuolto"),
        ("mielen-hyvinvointi", "ikaantyneet"),
    }
    assert violence["along"] == []
    # Generic words ("yhteistyö", "kunnat") alone do not make a cross-cutting theme.
    assert not any(x["text"].startswith("Potilasjärjestö") for x in result["cross_cutting"])


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
        merge = {"cell": cell, "a": "Kaatumisriskin pienentäminen", "b": "Kaatumisten ehkäisyä"}
        findings.add_correction(view, "merge", merge)
        findings.add_correction(view, "split", {"cell": cell, "text": "Lääkitys kaatumis"})
        qwerty = s.query(db.FeedbackResponse).filter_by(fingerprint="fp-3").one()
        findings.add_correction(view, "reclassify", {"response_id": qwerty.id, "cell": cell})
    for _ in range(2):  # the corrections apply on every compile
        with db.session_scope(url) as s:
            row, _ = findings.compile_and_store(cycle_view(s))
            result = row.result
        falls = _theme_with(result, "arjen-turvallisuus", "ikaantyneet", "Kaatumisriskin")
        assert any(m["text"].startswith("Kaatumisten ehkäisyä") for m in falls["members"])
        assert len(falls["groups"]) >= 2 and falls["common"]
        alone = _theme_with(result, "arjen-turvallisuus", "ikaantyneet", "Lääkitys kaatumis")
        assert len(alone["members"]) == 1
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
            "Ikäihmisten yksinäisyys ja osattomuus",
            "Ikääntyneiden yksinäisyyden vähentäminen",
        ],
    )
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["findings", "split", "mielen-hyvinvointi/ikaantyneet", "xyz"])
    assert bad.exit_code == 1 and "no finding" in bad.output
    phases.run_compile(url)
    with db.session_scope(url) as s:
        result = findings.latest_compilation(cycle_view(s)).result
    joined = _theme_with(result, "mielen-hyvinvointi", "ikaantyneet", "Ikäihmisten yksinäisyys ja")
    assert any(m["text"].startswith("Ikääntyneiden yksinäisyyden") for m in joined["members"])
    db.dispose(url)


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
    # Names as the coordinator knows them, not the config's keys.
    assert any(
        r["painopiste"] == "Arjen turvallisuuden edistäminen"
        and r["palvelualue"] == "Ikääntyneiden palvelut"
        for r in rows
    )
    assert not any("-" in r["painopiste"] or "-" in r["ryhmät"].split(", ")[0] for r in rows)
    assert any("Jämsä, Keuruu, Multia ja Petäjävesi" in r["ryhmät"] for r in rows)
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


def test_representatives_quote_the_central_response_then_a_different_one() -> None:
    # Five responses of one cell as municipalities write them: three say the falls point in
    # their own words, one each says something else. The memo quotes the falls point first
    # (it stands for most), then one of the others, never two of the falls point.
    texts = [
        "Iäkkäiden kaatumisten ehkäisyyn tarvitaan yhteinen toimintamalli kotihoidon kanssa.",
        "Omaishoitajien jaksamista tukevat vertaisryhmät ovat tärkeitä.",
        "Kaatumisten ehkäisy kotihoidossa vaatii yhteisen toimintamallin kunnan kanssa.",
        "Ikääntyneiden kaatumisia voidaan ehkäistä yhteisellä toimintamallilla ja kotihoidolla.",
        "Asumisen turvallisuus: palovaroittimet ja liesivahdit iäkkäiden koteihin.",
    ]
    m = Matcher(texts)
    first, second = findings.representatives(texts, m, k=2)
    assert first in (0, 2, 3)
    assert second in (1, 4)
    assert sorted(findings.representatives(texts, m, k=9)) == [0, 1, 2, 3, 4]
    assert findings.representatives([], m) == []
