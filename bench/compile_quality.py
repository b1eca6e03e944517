"""How well the compilation does the coordinator's work, measured against written truth.

    .venv/bin/python bench/compile_quality.py                 # example + development set
    .venv/bin/python bench/compile_quality.py --scales 1,22   # and compile time at scale

Two data sets, both written as six (five) different secretaries would write their notes,
each with its truth written beside it (which findings say the same point):
  - the example, ``config/examples/keski-suomi-2025`` with ``bench/truth/keski-suomi-2025.yaml``
    (every cell finding of the notes in exactly one point; the 56 common points of the
    seed's slides 11-13 are the points with a ``seed`` text) and 60 feedback answers with
    their cells (``bench/truth/keski-suomi-2025-feedback.yaml``) that no note contains;
  - the development set ``tests/data/matching_dev.yaml`` (Finnish and Swedish, with pairs
    that share words but not meaning). The thresholds were set on it; the example is
    never used to tune anything.

Figures, without any review by the coordinator:
  - common points: of the 56, how many come out as a common theme in their cell (a theme
    holding that point's findings from at least ``threshold`` groups), and of the common
    themes, how many are such a point (precision);
  - pairwise: of the pairs of findings in one cell, merged vs truly the same point;
  - suggestions: of the merges still missing (two themes holding one point), how many are
    offered as a suggestion, and how many suggestions there are;
  - false claims: memo lines that say something about other groups which the truth
    contradicts (a point marked as shared that no other group raised; a sentence that
    says others did not raise a point they did);
  - feedback: the suggested cell of the 60 answers, top-1 and top-3, against a vocabulary
    of the goal matrix and the compiled notes; and leave-one-point-out over the notes'
    own findings (the point's every wording left out of the vocabulary);
  - compile time and peak memory at each ``--scales`` (synthetic regions of bench/generate.py).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

EXAMPLE = ROOT / "config" / "examples" / "keski-suomi-2025"
TRUTH = ROOT / "bench" / "truth" / "keski-suomi-2025.yaml"
FEEDBACK_TRUTH = ROOT / "bench" / "truth" / "keski-suomi-2025-feedback.yaml"
DEV = ROOT / "tests" / "data" / "matching_dev.yaml"

Cell = str  # "priority_area/service_area"


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# --- scoring a clustering against truth ---------------------------------------------------


def pair_scores(
    themes: dict[Cell, list[list[str]]], point_of: dict[tuple[Cell, str], str]
) -> dict[str, float]:
    """Pairwise precision and recall of "same theme" against "same point", per cell."""
    tp = fp = fn = 0
    for cell, clusters in themes.items():
        where = {text: n for n, c in enumerate(clusters) for text in c}
        texts = sorted(where)
        for i, a in enumerate(texts):
            for b in texts[i + 1 :]:
                same = point_of.get((cell, a)) == point_of.get((cell, b)) is not None
                merged = where[a] == where[b]
                tp += same and merged
                fp += merged and not same
                fn += same and not merged
    return {
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "true_pairs": tp + fn,
    }


def suggestion_scores(
    themes: dict[Cell, list[list[str]]],
    suggestions: dict[Cell, list[dict[str, Any]]],
    point_of: dict[tuple[Cell, str], str],
) -> dict[str, float]:
    """Of the missing merges (two themes of one cell that hold the same point), the share
    a suggestion links; and how many suggestions are right."""
    missing = covered = right = total = 0
    for cell, clusters in themes.items():
        where = {text: n for n, c in enumerate(clusters) for text in c}
        offered = {
            frozenset((where[s["a"]], where[s["b"]]))
            for s in suggestions.get(cell, [])
            if s["a"] in where and s["b"] in where
        }
        for s in suggestions.get(cell, []):
            total += 1
            right += point_of.get((cell, s["a"])) == point_of.get((cell, s["b"]))
        by_point: dict[str, set[int]] = defaultdict(set)
        for text, n in where.items():
            if (p := point_of.get((cell, text))) is not None:
                by_point[p].add(n)
        for ns in by_point.values():
            ordered = sorted(ns)
            for i, a in enumerate(ordered):
                for b in ordered[i + 1 :]:
                    missing += 1
                    covered += frozenset((a, b)) in offered
    return {
        "missing_merges": missing,
        "covered": covered / missing if missing else 1.0,
        "suggestions": total,
        "right_suggestions": right / total if total else 1.0,
    }


# --- the development set ------------------------------------------------------------------


def dev_set(path: Path = DEV) -> dict[str, Any]:
    from hytetu import findings

    data = _load(path)
    items: dict[Cell, list[findings._Item]] = defaultdict(list)
    point_of: dict[tuple[Cell, str], str] = {}
    langs: dict[str, str] = {}
    for p in data["points"]:
        for f in p["findings"]:
            items[p["cell"]].append(findings._Item(f["group"], f["text"]))
            point_of[(p["cell"], f["text"])] = p["id"]
            langs[f["text"]] = f.get("lang", "fi")
    themes: dict[Cell, list[list[str]]] = {}
    suggestions: dict[Cell, list[dict[str, Any]]] = {}
    if not hasattr(findings, "assess"):  # the code before issue 15 (the "before" figures)
        for cell, its in items.items():
            themes[cell] = [[i.text for i in c] for c in findings.cluster(its)]  # type: ignore[call-arg]
    else:
        from hytetu.language import Matcher

        m = Matcher([t for _, t in point_of], ("fi", "sv"))
        for cell, its in items.items():
            clusters = findings.cluster(its, m)
            _, suggestions[cell] = findings.assess(clusters, m)
            themes[cell] = [[i.text for i in c] for c in clusters]
    out: dict[str, Any] = {"findings": len(point_of), "points": len(data["points"])}
    out |= pair_scores(themes, point_of)
    out |= suggestion_scores(themes, suggestions, point_of)
    where = {(cell, t): n for cell, cs in themes.items() for n, c in enumerate(cs) for t in c}
    confusers = data.get("confusers", [])
    cells_of = {t: cell for (cell, t) in point_of}
    out["confusers"] = len(confusers)
    out["confusers_merged"] = sum(
        1
        for c in confusers
        if where.get((cells_of.get(c["a"], ""), c["a"]))
        == where.get((cells_of.get(c["b"], ""), c["b"]))
    )
    # The same point in Finnish and in Swedish: merged, or at least suggested.
    cross = found = 0
    for p in data["points"]:
        fi = [f["text"] for f in p["findings"] if f.get("lang") == "fi"]
        sv = [f["text"] for f in p["findings"] if f.get("lang") == "sv"]
        if not (fi and sv):
            continue
        cross += 1
        cell = p["cell"]
        linked = {frozenset((s["a"], s["b"])) for s in suggestions.get(cell, [])}
        found += any(
            where[(cell, a)] == where[(cell, b)] or frozenset((a, b)) in linked
            for a in fi
            for b in sv
        ) or any(
            # a suggestion links the two themes through other members
            frozenset((where[(cell, s["a"])], where[(cell, s["b"])]))
            == frozenset((where[(cell, a)], where[(cell, b)]))
            for s in suggestions.get(cell, [])
            for a in fi
            for b in sv
        )
    out["bilingual_points"] = cross
    out["bilingual_found"] = found
    return out


# --- the example --------------------------------------------------------------------------


def compile_example(work: Path) -> tuple[str, dict[str, Any]]:
    """The example loaded, every session's notes imported, compiled, as the tick would."""
    from hytetu import db, findings, phases
    from hytetu.state import cycle_view

    shutil.copytree(EXAMPLE, work / "config")
    url = f"sqlite:///{work / 'hytetu.db'}"
    phases.load(work / "config", url, actor="bench")
    with db.session_scope(url) as s:
        view = cycle_view(s)
        last = max(view.local(x.end) for x in view.sessions())
    phases.run_import_notes(last + timedelta(days=30), url)
    with db.session_scope(url) as s:
        result, _ = findings.compile_cycle(cycle_view(s))
    return url, result


def example_truth() -> tuple[dict[tuple[Cell, str], str], dict[str, dict[str, Any]]]:
    truth = _load(TRUTH)
    point_of = {}
    points = {}
    for p in truth["points"]:
        points[p["id"]] = p
        for f in p["findings"]:
            point_of[(p["cell"], f["text"])] = p["id"]
    return point_of, points


def example(result: dict[str, Any], url: str) -> dict[str, Any]:
    point_of, points = example_truth()
    group_of_session = {g["session"]: g["key"] for g in result["groups"]}
    groups_of = {
        pid: {group_of_session.get(f["session"], f["session"]) for f in p["findings"]}
        for pid, p in points.items()
    }
    threshold = result["threshold"]
    themes: dict[Cell, list[list[str]]] = {}
    suggestions: dict[Cell, list[dict[str, Any]]] = {}
    common_right = common_total = 0
    found: set[str] = set()
    false_shared = 0
    for c in result["cells"]:
        cell = f"{c['priority_area']}/{c['service_area']}"
        themes[cell] = [[m["text"] for m in t["members"]] for t in c["themes"]]
        suggestions[cell] = c.get("suggestions", [])
        for t in c["themes"]:
            by_point: dict[str, set[str]] = defaultdict(set)
            for m in t["members"]:
                by_point[point_of.get((cell, m["text"]), "?")].add(m["group"])
            seed_points = [
                pid
                for pid, gs in by_point.items()
                if pid != "?" and points[pid].get("seed") and len(gs) >= threshold
            ]
            found.update(seed_points)
            if t["common"]:
                common_total += 1
                common_right += bool(seed_points)
                # Every group the theme names as sharing it must truly have raised that
                # point: a group whose member is another point is a false "shared".
                main = max(by_point, key=lambda k: len(by_point[k]))
                false_shared += sum(1 for pid, gs in by_point.items() if pid != main for _ in gs)
    seeds = [pid for pid, p in points.items() if p.get("seed")]
    out: dict[str, Any] = {
        "findings": len(point_of),
        "seed_points": len(seeds),
        "common_found": len(found),
        "common_recall": len(found) / len(seeds) if seeds else 0.0,
        "common_themes": common_total,
        "common_precision": common_right / common_total if common_total else 1.0,
    }
    out |= pair_scores(themes, point_of)
    out |= suggestion_scores(themes, suggestions, point_of)
    out |= false_claims(result, url, point_of, groups_of) | {"false_shared_members": false_shared}
    out |= feedback_accuracy(result, url)
    return out


def false_claims(
    result: dict[str, Any],
    url: str,
    point_of: dict[tuple[Cell, str], str],
    groups_of: dict[str, set[str]],
) -> dict[str, int]:
    """Claims in the rendered group memos about the other groups, checked against truth:
    a line marked as raised by other groups too that no other group raised, and (if the
    memo's wording still says so) a line marked as one that others did not raise, where
    they did."""
    from hytetu import db, memos
    from hytetu.state import cycle_view

    missed = shared = checked = 0
    says_exclusive = False
    with db.session_scope(url) as s:
        view = cycle_view(s)
        for g in result["groups"]:
            ctx = memos.group_memo_context(view, result, g["key"])
            says_exclusive = claims_exclusivity(view.language)
            for cell, lines in ctx["discussion"].items():
                for line in lines:
                    checked += 1
                    pid = point_of.get((cell, line.get("member", line["text"])))
                    others = groups_of.get(pid or "", set()) - {g["key"]}
                    # (before issue 15 a line said "specific" where it says "shared" now)
                    is_shared = line["shared"] if "shared" in line else not line["specific"]
                    if not is_shared and others:
                        missed += 1
                    if is_shared and not others:
                        shared += 1
    return {
        "memo_lines": checked,
        "unshared_raised_elsewhere": missed,
        "false_exclusive": missed if says_exclusive else 0,
        "false_shared": shared,
    }


def claims_exclusivity(language: str) -> bool:
    """Whether the group memo's wording says that the other groups did not raise a point
    (the wording before issue 15 did: "joita muut kuntaryhmät eivät nostaneet esiin")."""
    text = (ROOT / "templates" / language / "memo.html.j2").read_text(encoding="utf-8")
    return any(p in text for p in ("eivät nostaneet", "inte tog upp"))


def feedback_accuracy(result: dict[str, Any], url: str) -> dict[str, Any]:
    from hytetu import db, findings
    from hytetu.state import cycle_view

    point_of, points = example_truth()
    answers = _load(FEEDBACK_TRUTH)["responses"]
    with db.session_scope(url) as s:
        view = cycle_view(s)
        classifier = getattr(findings, "classifier_for", None) or findings._classifier
        clf = classifier(view, result["cells"])
        top1 = top3 = 0
        for a in answers:
            got = [f"{x.priority_area}/{x.service_area}" for x in clf.suggest(a["text"], top=3)]
            top1 += bool(got) and got[0] == a["cell"]
            top3 += a["cell"] in got
        # Leave one point out: each of the notes' findings against a vocabulary without
        # any wording of its own point.
        l1 = l3 = n = 0
        for p in points.values():
            leave = {f["text"] for f in p["findings"]}
            cells = [
                c
                | {
                    "themes": [
                        t | {"members": [m for m in t["members"] if m["text"] not in leave]}
                        for t in c["themes"]
                    ]
                }
                for c in result["cells"]
            ]
            clf = classifier(view, cells)
            for text in leave:
                n += 1
                got = [f"{x.priority_area}/{x.service_area}" for x in clf.suggest(text, top=3)]
                l1 += bool(got) and got[0] == p["cell"]
                l3 += p["cell"] in got
    return {
        "feedback_n": len(answers),
        "feedback_top1": top1 / len(answers),
        "feedback_top3": top3 / len(answers),
        "held_out_n": n,
        "held_out_top1": l1 / n if n else 0.0,
        "held_out_top3": l3 / n if n else 0.0,
    }


# --- compile time at scale ----------------------------------------------------------------


def compile_time(scale: int, base: Path) -> dict[str, float]:
    from bench.generate import generate
    from bench.run import bench_env, measure, run_stage, stage_argv

    configs, out = base / f"regions-{scale}", base / f"out-{scale}"
    generate(scale, configs, 7)
    out.mkdir(parents=True)
    url = f"sqlite:///{base / f'hytetu-{scale}.db'}"
    for stage in ("load", "feedback_window", "import_feedback", "import_notes"):
        run_stage(stage, False, url, configs, out)
    env = bench_env(base / "prefect")
    m = measure(stage_argv("compile", url, configs, out, False), env)
    return {"wall": m.wall, "cpu": m.cpu, "peak_mib": m.peak / 2**20}


# --- report -------------------------------------------------------------------------------


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def report(ex: dict[str, Any] | None, dev: dict[str, Any], times: dict[int, Any]) -> str:
    lines = ["| figure | example | development set | target |", "|---|--:|--:|---|"]

    def row(name: str, a: str, b: str, target: str = "") -> None:
        lines.append(f"| {name} | {a} | {b} | {target} |")

    e = ex or {}
    get = lambda d, k, f=pct: f(d[k]) if k in d else "–"  # noqa: E731
    row(
        "common points found (recall)",
        f"{e.get('common_found', '–')}/{e.get('seed_points', '–')} = {get(e, 'common_recall')}",
        "–",
        "≥ 85 %",
    )
    row(
        "common themes that are a seed point (precision)",
        get(e, "common_precision"),
        "–",
        "≥ 90 %",
    )
    row("pairwise merge precision", get(e, "precision"), get(dev, "precision"))
    row("pairwise merge recall", get(e, "recall"), get(dev, "recall"))
    row("missing merges offered as suggestions", get(e, "covered"), get(dev, "covered"), "≥ 95 %")
    row(
        "suggestions (right share)",
        f"{e.get('suggestions', '–')} ({get(e, 'right_suggestions')})",
        f"{dev.get('suggestions', '–')} ({get(dev, 'right_suggestions')})",
    )
    row("confuser pairs merged", "–", f"{dev.get('confusers_merged')}/{dev.get('confusers')}")
    row(
        "fi–sv points merged or suggested",
        "–",
        f"{dev.get('bilingual_found')}/{dev.get('bilingual_points')}",
    )
    row(
        "false exclusivity claims in memos",
        str(e.get("false_exclusive", "–")),
        "–",
        "0",
    )
    row("false 'also raised by others' marks in memos", str(e.get("false_shared", "–")), "–")
    row("feedback top-1 (60 answers)", get(e, "feedback_top1"), "–", "≥ 70 %")
    row("feedback top-3", get(e, "feedback_top3"), "–", "≥ 90 %")
    row("notes' findings, leave one point out, top-1", get(e, "held_out_top1"), "–")
    row("notes' findings, leave one point out, top-3", get(e, "held_out_top3"), "–")
    for scale, t in times.items():
        row(
            f"compile at {scale}x: wall s / CPU s / peak MiB",
            f"{t['wall']:.1f} / {t['cpu']:.1f} / {t['peak_mib']:.0f}",
            "",
            "≤ 60 s, ≤ 1.5 GiB" if scale == 22 else "",
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scales", default="", help="compile time at these scales, e.g. 1,22")
    parser.add_argument("--dev-only", action="store_true", help="only the development set")
    args = parser.parse_args()
    started = time.perf_counter()
    dev = dev_set()
    ex = None
    times: dict[int, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.dev_only:
            url, result = compile_example(Path(tmp) / "example")
            ex = example(result, url)
        for scale in [int(s) for s in args.scales.split(",") if s]:
            times[scale] = compile_time(scale, Path(tmp) / f"scale-{scale}")
    print(report(ex, dev, times))
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
