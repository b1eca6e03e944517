"""The coordinator's corrections of the compilation that the review page stores: keep
apart, move, rename, mark common (and merge, as an accepted suggestion), each applied on
every compile; and ``changes`` between two compilations. The example's notes are loaded;
the findings the tests act on are added with wordings of their own, so that rewriting the
example's notes does not change what is tested."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE, copy_sqlite, helsinki, load_copy
from sqlalchemy import delete, select

from hytetu import db, findings, memos, phases
from hytetu.errors import StateError
from hytetu.state import cycle_view

# Two wordings of one point (the compile merges them) and two of another that share no
# word (it does not).
LAMP = "Kirjastoauton pysäkkien odotustilat"
LAMP_TOO = "Kirjastoauton pysäkkien odotustilat ja katokset"
YARD = "Pihapiirien liukkaus talvisin"
GRIT = "Hiekoitus kotipihoilla"
SCOOTER = "Mopoautojen ylinopeudet kyläteillä"


def add(url: str, session_id: int, cell: str, text: str) -> None:
    pa, sa = cell.split("/")
    with db.session_scope(url) as s:
        s.add(
            db.Finding(
                session_id=session_id,
                kind="cell",
                priority_area_key=pa,
                service_area_key=sa,
                text=text,
                position=900 + len(text),
            )
        )


def prepare(base: Path) -> dict[str, Any]:
    """The example loaded into ``base/hytetu.db`` with every session's notes imported and
    the test's findings added in the first two cells of the matrix: LAMP and YARD by the
    first group, LAMP_TOO and SCOOTER by the second, GRIT by the third. Returns the cells
    ("cell", "other"), the three sessions' ids and their groups' keys."""
    url = load_copy(base)
    phases.run_import_notes(helsinki("2025-12-31 07:00"), url)
    with db.session_scope(url) as s:
        view = cycle_view(s)
        pas, sas, cells = view.matrix()
        ordered = [f"{p.key}/{a.key}" for p in pas for a in sas if (p.key, a.key) in cells]
        groups = [x for x in view.sessions() if x.group is not None][:3]
        info = {
            "cell": ordered[0],
            "other": ordered[1],
            "sessions": [x.id for x in groups],
            "groups": [x.group.key for x in groups if x.group],
        }
    one, two, three = info["sessions"]
    add(url, one, info["cell"], LAMP)
    add(url, one, info["cell"], YARD)
    add(url, two, info["cell"], LAMP_TOO)
    add(url, two, info["cell"], SCOOTER)
    add(url, three, info["cell"], GRIT)
    db.dispose(url)
    return info


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    base = tmp_path_factory.mktemp("corrections")
    info = prepare(base)
    yield base / "hytetu.db", info


@pytest.fixture
def case(prepared, tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    url = copy_sqlite(prepared[0], tmp_path / "hytetu.db")
    yield url, prepared[1]
    db.dispose(url)


def correct(url: str, kind: str, actor: str = "Kaija Koordinaattori", **payload: Any) -> None:
    with db.session_scope(url) as s:
        findings.add_correction(cycle_view(s), kind, payload, actor=actor)


def compile_(url: str) -> dict[str, Any]:
    with db.session_scope(url) as s:
        row, _ = findings.compile_and_store(cycle_view(s))
        return row.result


def cell_of(result: dict[str, Any], cell: str) -> dict[str, Any]:
    return next(c for c in result["cells"] if f"{c['priority_area']}/{c['service_area']}" == cell)


def theme_with(result: dict[str, Any], cell: str, text: str) -> dict[str, Any] | None:
    return findings._theme_of(cell_of(result, cell)["themes"], text)


def applied(result: dict[str, Any], kind: str) -> list[bool]:
    return [c["applied"] for c in result["corrections"] if c["kind"] == kind]


def test_the_test_findings_compile_as_expected(case) -> None:
    url, info = case
    result = compile_(url)
    lamp = theme_with(result, info["cell"], LAMP)
    assert lamp is not None and {m["text"] for m in lamp["members"]} == {LAMP, LAMP_TOO}
    assert theme_with(result, info["cell"], YARD) is not theme_with(result, info["cell"], GRIT)
    assert lamp["common"] and "wording_by" not in lamp and "common_by" not in lamp


def test_keep_apart_splits_a_merged_pair_on_every_compile(case) -> None:
    url, info = case
    correct(url, "keep_apart", cell=info["cell"], a="pysäkkien odotustilat ja katokset", b=LAMP)
    for _ in range(2):
        result = compile_(url)
        a, b = theme_with(result, info["cell"], LAMP), theme_with(result, info["cell"], LAMP_TOO)
        assert a is not None and b is not None and a is not b
        assert [m["text"] for m in a["members"]] == [LAMP]
        assert applied(result, "keep_apart") == [True]
        correct(url, "split", cell=info["cell"], text=YARD)  # a new input: compile again
    # A later merge of the same pair is the coordinator changing their mind: it wins.
    correct(url, "merge", cell=info["cell"], a=LAMP, b=LAMP_TOO)
    result = compile_(url)
    assert theme_with(result, info["cell"], LAMP) is theme_with(result, info["cell"], LAMP_TOO)


def test_a_pair_kept_apart_or_merged_is_not_suggested_again() -> None:
    cells = [
        {
            "priority_area": "pa",
            "service_area": "sa",
            "themes": [
                {"members": [{"group": "g1", "text": "A"}, {"group": "g2", "text": "B"}]},
                {"members": [{"group": "g3", "text": "C"}]},
                {"members": [{"group": "g1", "text": "D"}]},
            ],
            "suggestions": [
                {"a": "A", "b": "B", "groups_a": ["g1"], "groups_b": ["g2"], "score": 0.5},
                {"a": "c", "b": "D", "groups_a": ["g3"], "groups_b": ["g1"], "score": 0.4},
                {"a": "A", "b": "C", "groups_a": ["g1"], "groups_b": ["g3"], "score": 0.3},
            ],
        },
        {"priority_area": "pa", "service_area": "x", "themes": []},  # no suggestions key
    ]
    fix = db.FindingCorrection(
        id=1, kind="keep_apart", payload={"cell": "pa/sa", "a": "D", "b": "C"}
    )
    findings._prune_suggestions(cells, [fix])
    assert [(x["a"], x["b"]) for x in cells[0]["suggestions"]] == [("A", "C")]
    assert "suggestions" not in cells[1]


def test_move_takes_a_finding_to_another_cell_before_clustering(case) -> None:
    url, info = case
    second = info["groups"][1]
    correct(url, "move", cell=info["cell"], text="Mopoautojen", to=info["other"], group=second)
    result = compile_(url)
    assert theme_with(result, info["cell"], SCOOTER) is None
    moved = theme_with(result, info["other"], SCOOTER)
    assert moved is not None and moved["members"] == [{"group": second, "text": SCOOTER}]
    assert applied(result, "move") == [True]
    # Later corrections name the finding where it is now.
    correct(url, "rename", cell=info["other"], text=SCOOTER, wording="Mopoautojen ajonopeudet")
    with pytest.raises(StateError, match="no finding"):
        correct(url, "split", cell=info["cell"], text=SCOOTER)
    result = compile_(url)
    assert theme_with(result, info["other"], SCOOTER)["text"] == "Mopoautojen ajonopeudet"
    with pytest.raises(StateError, match="no other goal-matrix cell"):
        correct(url, "move", cell=info["other"], text=SCOOTER, to=info["other"])
    with pytest.raises(StateError, match="has no finding"):
        correct(url, "move", cell=info["other"], text=SCOOTER, to=info["cell"], group="nobody")


def test_rename_sets_the_memo_wording_and_who(case) -> None:
    url, info = case
    correct(url, "rename", cell=info["cell"], text=LAMP_TOO, wording="  Kirjastoauton pysäkit  ")
    result = compile_(url)
    lamp = theme_with(result, info["cell"], LAMP)
    assert lamp is not None
    assert (lamp["text"], lamp["wording_by"]) == ("Kirjastoauton pysäkit", "Kaija Koordinaattori")
    # Both groups' memos say it in the coordinator's words, once.
    with db.session_scope(url) as s:
        view = cycle_view(s)
        for group in info["groups"][:2]:
            lines = memos.group_memo_context(view, result, group)["discussion"][info["cell"]]
            texts = [x["text"] for x in lines]
            assert texts.count("Kirjastoauton pysäkit") == 1 and LAMP not in texts


@pytest.mark.parametrize(
    ("wording", "message"),
    [
        ("   ", "empty"),
        ("x" * 501, "501 characters"),
        ("kaksi\nriviä", "control characters"),
        ("sarkain\there", "control characters"),
        ("nolla\x00", "control characters"),
        (None, "empty"),
    ],
)
def test_a_wording_is_checked(case, wording: Any, message: str) -> None:
    url, info = case
    with pytest.raises(StateError, match=message):
        correct(url, "rename", cell=info["cell"], text=LAMP, wording=wording)
    correct(url, "rename", cell=info["cell"], text=LAMP, wording="x" * 500)


def test_common_mark_overrides_the_group_count(case) -> None:
    url, info = case
    first = info["groups"][0]
    correct(url, "common", cell=info["cell"], text=YARD, common=True)
    correct(url, "common", cell=info["cell"], text=LAMP, common=False, actor="Toinen")
    result = compile_(url)
    yard, lamp = theme_with(result, info["cell"], YARD), theme_with(result, info["cell"], LAMP)
    assert yard["common"] and yard["common_by"] == "Kaija Koordinaattori"
    assert not lamp["common"] and lamp["common_by"] == "Toinen"
    # A theme the coordinator marked common is no longer the group's own emphasis.
    assert YARD not in [i["text"] for i in result["specific"][first]]
    assert YARD in [t["teema"] for t in findings.common_table(result)]
    with db.session_scope(url) as s:
        lines = memos.group_memo_context(cycle_view(s), result, first)["discussion"]
    # The memo says of other groups only what the compile shows: none joined this line.
    assert {"text": YARD, "member": YARD, "shared": 0} in lines[info["cell"]]
    with pytest.raises(StateError, match="true or false"):
        correct(url, "common", cell=info["cell"], text=YARD, common="yes")


def test_merge_of_a_suggestion_joins_two_groups(case) -> None:
    url, info = case
    correct(url, "merge", cell=info["cell"], a=YARD, b=GRIT)
    result = compile_(url)
    yard = theme_with(result, info["cell"], YARD)
    assert yard is theme_with(result, info["cell"], GRIT)
    assert yard["groups"] == sorted([info["groups"][0], info["groups"][2]]) and yard["common"]


def test_a_correction_whose_finding_is_gone_is_not_applied(case) -> None:
    url, info = case
    correct(url, "rename", cell=info["cell"], text=GRIT, wording="Hiekoitus")
    correct(url, "common", cell=info["cell"], text=GRIT, common=True)
    correct(url, "keep_apart", cell=info["cell"], a=GRIT, b=YARD)
    correct(url, "move", cell=info["cell"], text=GRIT, to=info["other"])
    with db.session_scope(url) as s:
        s.execute(delete(db.Finding).where(db.Finding.text == GRIT))
    result = compile_(url)
    assert {c["kind"]: c["applied"] for c in result["corrections"]} == {
        "rename": False,
        "common": False,
        "move": False,
        "keep_apart": False,
    }


def test_changes_since_the_compile_before_the_review(case) -> None:
    url, info = case
    cell, other = info["cell"], info["other"]
    first = compile_(url)
    assert findings.changes(None, first) == []
    assert findings.changes(first, first) == []
    correct(url, "merge", cell=cell, a=YARD, b=GRIT)
    correct(url, "rename", cell=cell, text=LAMP, wording="Kirjastoauton pysäkit")
    correct(url, "move", cell=cell, text=SCOOTER, to=other)
    correct(url, "common", cell=cell, text=LAMP, common=False)
    second = compile_(url)
    with db.session_scope(url) as s:
        # Before any memo is rendered, the review compares with the compile's own result.
        assert findings.review_baseline(cycle_view(s)).result == first
    got = findings.changes(first, second)
    mine = [c for c in got if {LAMP, YARD, GRIT, SCOOTER, "Kirjastoauton pysäkit"} & {c["text"]}]
    kinds = {(c["cell"], c["change"], c["text"]) for c in mine}
    assert (cell, "wording", "Kirjastoauton pysäkit") in kinds
    assert (cell, "common", "Kirjastoauton pysäkit") in kinds
    assert (cell, "removed", SCOOTER) in kinds
    assert (other, "added", SCOOTER) in kinds
    added = next(c for c in mine if c["change"] == "added")
    assert added["from"] == [cell]
    removed = next(c for c in mine if c["change"] == "removed" and c["text"] == SCOOTER)
    assert removed["into"] == [{"cell": other, "text": SCOOTER}]
    grown = [c for c in got if c["change"] == "members" and c["cell"] == cell]
    assert any(c["added"] or c["removed"] for c in grown)
    joined = {m["text"] for c in grown for m in c["added"] + c["removed"]}
    assert joined & {YARD, GRIT}
    # Nothing else in the example moved.
    assert all(c["cell"] in (cell, other) for c in got), got


def test_unknown_kind_lists_the_kinds(case) -> None:
    url, _ = case
    with pytest.raises(StateError, match="keep_apart, move, rename, common"):
        correct(url, "explode", cell="x")
    with db.session_scope(url) as s:
        assert list(s.scalars(select(db.FindingCorrection))) == []


def test_every_new_kind_on_sqlite_and_postgresql(db_url: str, tmp_path: Path) -> None:
    """The payloads (a boolean among them) survive the JSON column of both backends."""
    shutil.copytree(EXAMPLE, tmp_path / "config")
    phases.load(tmp_path / "config", db_url)
    with db.session_scope(db_url) as s:
        view = cycle_view(s)
        pas, sas, _ = view.matrix()
        cell, other = f"{pas[0].key}/{sas[0].key}", f"{pas[0].key}/{sas[1].key}"
        one, two = [x.id for x in view.sessions() if x.group is not None][:2]
    for session_id, text in ((one, LAMP), (two, LAMP_TOO), (one, YARD), (two, GRIT)):
        add(db_url, session_id, cell, text)
    add(db_url, two, cell, SCOOTER)
    correct(db_url, "keep_apart", cell=cell, a=LAMP, b=LAMP_TOO)
    correct(db_url, "merge", cell=cell, a=YARD, b=GRIT)
    correct(db_url, "move", cell=cell, text=SCOOTER, to=other)
    correct(db_url, "rename", cell=cell, text=GRIT, wording="Pihojen liukkaus – ja hiekoitus")
    correct(db_url, "common", cell=cell, text=LAMP, common=True)
    result = compile_(db_url)
    assert all(c["applied"] for c in result["corrections"])
    yard = theme_with(result, cell, YARD)
    assert yard is theme_with(result, cell, GRIT) and yard["text"].endswith("ja hiekoitus")
    assert theme_with(result, cell, LAMP) is not theme_with(result, cell, LAMP_TOO)
    assert theme_with(result, cell, LAMP)["common"] is True
    assert theme_with(result, other, SCOOTER) is not None
