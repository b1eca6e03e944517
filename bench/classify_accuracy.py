"""Suggested-cell accuracy of hytetu.classify on the labelled seed findings.

    .venv/bin/python bench/classify_accuracy.py

The labelled set (tests/data/labelled_findings.yaml) is the seed's own wording with the
cell each point stands in. No text is ever classified against a vocabulary that contains
it or its rewording:
  - "goal matrix only": goals, backgrounds and area names; no findings at all (a cycle's
    first responses, before any session).
  - "held out": the goal matrix plus the example notes' findings, leaving out
    for a group's own point (slides 15-20) every finding of that group (leave one group
    out), and for a common point (slides 11-13) every note line marked "# dia", since
    those lines are the groups' rewordings of the very points being classified.
The confidence threshold (classify.CONFIDENCE_THRESHOLD) was fixed before this was run;
the table shows what it costs (coverage) and buys (accuracy of what it accepts).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hytetu.classify import CONFIDENCE_THRESHOLD, CellClassifier  # noqa: E402

EXAMPLE = ROOT / "config" / "examples" / "keski-suomi-2025"
LABELLED = ROOT / "tests" / "data" / "labelled_findings.yaml"

Cell = tuple[str, str]


def goal_matrix(folder: Path = EXAMPLE) -> dict[Cell, list[str]]:
    gm = yaml.safe_load((folder / "cycle.yaml").read_text(encoding="utf-8"))["goal_matrix"]
    pa = {p["id"]: p["name"]["fi"] for p in gm["priority_areas"]}
    sa = {s["id"]: s["name"]["fi"] for s in gm["service_areas"]}
    return {
        (c["priority_area"], c["service_area"]): [
            c["goal"]["fi"],
            (c.get("background") or {}).get("fi", ""),
            pa[c["priority_area"]],
            sa[c["service_area"]],
        ]
        for c in gm["cells"]
    }


def note_lines(folder: Path = EXAMPLE) -> list[tuple[str, Cell, str, bool]]:
    """(session, cell, text, marked "# dia") for every cell finding of the example notes."""
    out = []
    for path in sorted((folder / "notes").glob("*.yaml")):
        pa = sa = None
        in_findings = False
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.startswith(" "):
                in_findings = line.startswith("findings:")
                continue
            if not in_findings:
                continue
            if m := re.match(r"\s+- priority_area: (\S+)", line):
                pa = m.group(1)
            elif m := re.match(r"\s+service_area: (\S+)", line):
                sa = m.group(1)
            elif (m := re.match(r'\s+- "(.*)"\s*(# dia.*)?$', line)) and pa and sa:
                out.append((path.stem, (pa, sa), m.group(1), bool(m.group(2))))
    return out


def labelled() -> list[dict]:
    return yaml.safe_load(LABELLED.read_text(encoding="utf-8"))["findings"]


def classifier(extra: list[tuple[Cell, str]]) -> CellClassifier:
    docs = goal_matrix()
    for cell, text in extra:
        docs[cell] = [*docs[cell], text]
    return CellClassifier(docs)


def evaluate(setting: str, slides: range = range(0, 100)) -> dict[str, float]:
    items = [i for i in labelled() if i["slide"] in slides]
    notes = note_lines()
    base = classifier([]) if setting == "goal matrix only" else None
    cache: dict[str, CellClassifier] = {}
    top1 = top3 = accepted = accepted_right = 0
    for item in items:
        truth = (item["priority_area"], item["service_area"])
        if base is not None:
            clf = base
        else:
            leave = item.get("group_session") or "# dia"
            if leave not in cache:
                keep = [
                    (cell, text)
                    for session, cell, text, dia in notes
                    if (session != leave if leave != "# dia" else not dia)
                ]
                cache[leave] = classifier(keep)
            clf = cache[leave]
        got = [(s.priority_area, s.service_area) for s in clf.suggest(item["text"], top=3)]
        scores = clf.suggest(item["text"], top=1)
        top1 += bool(got) and got[0] == truth
        top3 += truth in got
        if scores and scores[0].score >= CONFIDENCE_THRESHOLD:
            accepted += 1
            accepted_right += got[0] == truth
    n = len(items)
    return {
        "n": n,
        "top1": top1 / n,
        "top3": top3 / n,
        "coverage": accepted / n,
        "accepted_top1": accepted_right / accepted if accepted else 0.0,
    }


def main() -> None:
    print(f"labelled findings: {len(labelled())}, cells: 15, chance top-1 ≈ 0.067")
    print(f"confidence threshold (fixed a priori): {CONFIDENCE_THRESHOLD}")
    print()
    print(f"{'setting':<20} {'n':>4} {'top-1':>7} {'top-3':>7} {'accepted':>9} {'acc. top-1':>11}")
    rows = [
        ("goal matrix only", "goal matrix only", range(0, 100)),
        ("held out", "held out", range(0, 100)),
        ("  slides 11-13", "held out", range(11, 14)),
        ("  slides 15-20", "held out", range(15, 21)),
    ]
    for label, setting, slides in rows:
        r = evaluate(setting, slides)
        print(
            f"{label:<20} {r['n']:>4} {r['top1']:>7.1%} {r['top3']:>7.1%} "
            f"{r['coverage']:>9.1%} {r['accepted_top1']:>11.1%}"
        )


if __name__ == "__main__":
    main()
