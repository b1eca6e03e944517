"""Compilation (koonti): the findings of every session pooled per goal cell into themes.

A theme is a set of near-duplicate findings ("Kaatumisten ehkäisy" and "Kaatumisten
ennaltaehkäisy") from one or more groups. A theme raised by at least ``threshold`` groups
is common; a group's themes that no other group raised are its specific emphases. Themes
that recur in several cells of one priority area or one service area are cross-cutting.
Feedback responses join the cell they name, or the cell suggested from the goal matrix's
own vocabulary. The coordinator's corrections (merge, split, keep apart, move, rename,
mark common, reclassify) are applied on every run, keyed by the findings' texts (stable
across compiles, unlike theme keys). The result is plain JSON, stored per run with the hash
of its inputs; ``changes`` tells what differs between two results.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select

from hytetu import db
from hytetu.classify import CONFIDENCE_THRESHOLD, CellClassifier
from hytetu.errors import StateError
from hytetu.language import Matcher, analyser_name, lexicon, vectors
from hytetu.language.analysis import normalise
from hytetu.state import CycleView

# Fixed on the development set (tests/data/matching_dev.yaml), never on the example: at or
# above MERGE_THRESHOLD two findings are one theme; from SUGGEST_THRESHOLD up to it, the
# pair is offered to the coordinator as a possible merge.
MERGE_THRESHOLD = 0.25
SUGGEST_THRESHOLD = 0.08
SAME_GROUP_PENALTY = 0.2
SUGGESTIONS_PER_THEME = 5
# Across cells the claim is stronger (the same theme, elsewhere), so the bar is higher:
# generic words ("yhteistyö", "kunnat") otherwise chain unrelated themes together.
CROSS_THRESHOLD = 0.55
#: The corrections ``add_correction`` accepts; all but reclassify name a goal cell.
CORRECTION_KINDS = ("merge", "split", "keep_apart", "move", "rename", "common", "reclassify")
MAX_WORDING = 500  # characters of a theme's wording set by the coordinator
#: How many responses of a cell a group's memo quotes (``representatives``); its annex has
#: them all.
QUOTES = 3
QUOTE_CANDIDATES = 200  # responses considered for a quote, of one cell's and group's


@dataclass
class _Item:
    group: str
    text: str


def matcher(view: CycleView, texts: list[str]) -> Matcher:
    """A matcher whose word weights come from this cycle's findings and goal matrix."""
    _, _, cells = view.matrix()
    corpus = list(texts)
    for cell in cells.values():
        corpus += [view.text(cell.goal), view.text(cell.background)]
    return Matcher(corpus, tuple(view.region.languages or ["fi"]))


def representatives(texts: list[str], m: Matcher, k: int = 3) -> list[int]:
    """The indexes of up to ``k`` of ``texts`` that stand for the rest (a memo's quotes of
    one cell's feedback), by the compilation's own similarity: first the text most alike
    to all the others (the most central), then each time the one that adds most to how
    well every text is matched by some chosen one (greedy coverage), so that a second
    quote says something the first did not. Ties go to the earlier text. In the order
    chosen. Of many texts, only ``QUOTE_CANDIDATES`` spread evenly over them are candidates
    (each still scored against all), so the cost grows with n, not n²."""
    if not texts:
        return []
    step = max(1, -(-len(texts) // QUOTE_CANDIDATES))  # ceil: at most that many candidates
    candidates = list(range(0, len(texts), step))
    sim = m.similarities(texts, [texts[c] for c in candidates])  # n × candidates
    covered = np.zeros(len(texts))
    chosen: list[int] = []
    for _ in range(min(k, len(candidates))):
        gain = np.maximum(sim, covered[:, None]).sum(axis=0) - covered.sum()
        gain[chosen] = -1.0
        best = int(np.argmax(gain))
        chosen.append(best)
        covered = np.maximum(covered, sim[:, best])
    return [candidates[c] for c in chosen]


def cluster(
    items: list[_Item], m: Matcher, threshold: float = MERGE_THRESHOLD
) -> list[list[_Item]]:
    """Average-link clustering of one cell's findings: the two themes whose findings are
    most alike on average merge, while that average reaches ``threshold``. Average (not
    single) link, so that a chain of look-alikes does not pull unrelated points together."""
    n = len(items)
    if n == 0:
        return []
    total = m.similarities([i.text for i in items]).copy()  # summed into below
    if SAME_GROUP_PENALTY:
        groups = np.array([i.group for i in items])
        same = groups[:, None] == groups[None, :]
        np.fill_diagonal(same, False)
        total = total - SAME_GROUP_PENALTY * same
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    active = np.ones(n, dtype=bool)
    sizes = np.ones(n, dtype=np.float64)
    while len(members) > 1:
        avg = total / np.outer(sizes, sizes)
        np.fill_diagonal(avg, -1.0)
        avg[~active, :] = -1.0
        avg[:, ~active] = -1.0
        i, j = sorted(int(k) for k in np.unravel_index(int(np.argmax(avg)), avg.shape))
        if avg[i, j] < threshold:
            break
        total[i, :] += total[j, :]
        total[:, i] = total[i, :]
        sizes[i] += sizes[j]
        members[i] += members.pop(j)
        active[j] = False
    return [[items[k] for k in g] for g in members.values()]


def assess(
    clusters: list[list[_Item]], m: Matcher, suggest: float = SUGGEST_THRESHOLD
) -> tuple[list[float], list[dict[str, Any]]]:
    """How sure each theme is, and which pairs of themes may still be one point.

    A theme's confidence is the lower of how alike its findings are on average (1 for a
    single finding) and how far it stands from the nearest other theme (1 minus the best
    score of a finding of it with one of the other). Two themes whose closest findings
    score ``suggest`` or more are a suggestion: both texts with their groups; a theme is
    offered its ``SUGGESTIONS_PER_THEME`` best, so the coordinator is not flooded."""
    nearest = [0.0] * len(clusters)
    candidates: list[tuple[float, int, int, dict[str, Any]]] = []
    for a, ca in enumerate(clusters):
        for b in range(a + 1, len(clusters)):
            cb = clusters[b]
            score, x, y = max(
                ((m.similarity(x.text, y.text), x.text, y.text) for x in ca for y in cb),
                key=lambda t: t[0],
            )
            nearest[a] = max(nearest[a], score)
            nearest[b] = max(nearest[b], score)
            if score >= suggest:
                suggestion = {
                    "a": x,
                    "b": y,
                    "groups_a": sorted({i.group for i in ca}),
                    "groups_b": sorted({i.group for i in cb}),
                    "score": round(score, 3),
                }
                candidates.append((score, a, b, suggestion))
    candidates.sort(key=lambda c: (-c[0], c[3]["a"], c[3]["b"]))
    offered: Counter[int] = Counter()
    suggestions: list[dict[str, Any]] = []
    for _, a, b, suggestion in candidates:
        if min(offered[a], offered[b]) < SUGGESTIONS_PER_THEME:
            suggestions.append(suggestion)
            offered[a] += 1
            offered[b] += 1
    confidence = []
    for c, near in zip(clusters, nearest, strict=True):
        pairs = [m.similarity(x.text, y.text) for i, x in enumerate(c) for y in c[i + 1 :]]
        cohesion = sum(pairs) / len(pairs) if pairs else 1.0
        confidence.append(round(min(cohesion, 1.0 - near), 3))
    return confidence, suggestions


def _representative(texts: list[str], m: Matcher) -> str:
    """The shortest of the wordings nearly as like the others as the most central one (the
    medoid): a theme's name in the summary's matrix, where a secretary's long sentence
    with its local detail does not fit. Of two, the shorter."""
    if len(texts) <= 2:
        return min(texts, key=lambda t: (len(t), t))
    central = {t: sum(m.similarity(t, o) for o in texts if o is not t) for t in texts}
    best = max(central.values())
    return min((t for t in texts if central[t] >= 0.8 * best), key=lambda t: (len(t), t))


def _theme(members: list[_Item], cell: str, m: Matcher, confidence: float = 1.0) -> dict[str, Any]:
    groups = sorted({x.group for x in members})
    texts = [x.text for x in members]
    key = hashlib.sha1("\n".join([cell, *sorted(texts)]).encode()).hexdigest()[:10]
    return {
        "key": key,
        "text": _representative(texts, m),
        "groups": groups,
        "members": [{"group": x.group, "text": x.text} for x in members],
        "confidence": confidence,
    }


# --- corrections ----------------------------------------------------------------------


def _find(clusters: list[list[_Item]], text: str) -> list[_Item] | None:
    want = normalise(text)
    for c in clusters:
        if any(normalise(m.text) == want for m in c):
            return c
    return None


def _apply(clusters: list[list[_Item]], correction: db.FindingCorrection, m: Matcher) -> bool:
    p = correction.payload
    if correction.kind == "merge":
        a, b = _find(clusters, p["a"]), _find(clusters, p["b"])
        if a is None or b is None:
            return False
        if a is not b:
            clusters.remove(b)
            a.extend(b)
        return True
    if correction.kind == "split":
        c = _find(clusters, p["text"])
        if c is None:
            return False
        out = [x for x in c if normalise(x.text) == normalise(p["text"])]
        if len(out) < len(c):
            for x in out:
                c.remove(x)
            clusters.append(out)
        return True
    if correction.kind == "keep_apart":
        a, b = _find(clusters, p["a"]), _find(clusters, p["b"])
        if a is None or b is None:
            return False
        if a is b:
            clusters.append(_separate(a, p["a"], p["b"], m))
        return True
    return False


def _separate(members: list[_Item], a: str, b: str, m: Matcher) -> list[_Item]:
    """Take ``b`` out of the cluster it shares with ``a``, with the members more like ``b``
    than like ``a``; returns them (``members`` keeps the rest)."""
    na, nb = normalise(a), normalise(b)
    out = [
        x
        for x in members
        if normalise(x.text) == nb
        or (normalise(x.text) != na and m.similarity(x.text, b) > m.similarity(x.text, a))
    ]
    for x in out:
        members.remove(x)
    return out


def _cell_tuple(cell: str) -> tuple[str, str]:
    pa, _, sa = cell.partition("/")
    return pa, sa


def _apply_moves(
    per_cell: dict[tuple[str, str], list[_Item]],
    fixes: list[db.FindingCorrection],
    applied: dict[int, bool],
) -> None:
    """The coordinator's moves, in order, before clustering: each finding reading ``text``
    in ``cell`` (of ``group`` when given) goes to the cell ``to``."""
    for fix in fixes:
        if fix.kind != "move":
            continue
        p = fix.payload
        source, target = per_cell.get(_cell_tuple(p["cell"])), per_cell.get(_cell_tuple(p["to"]))
        if source is None or target is None:
            applied[fix.id] = False
            continue
        want = normalise(p["text"])
        moving = [
            i
            for i in source
            if normalise(i.text) == want and (not p.get("group") or i.group == p["group"])
        ]
        for item in moving:
            source.remove(item)
            target.append(item)
        applied[fix.id] = bool(moving)


def _theme_of(themes: list[dict[str, Any]], text: str) -> dict[str, Any] | None:
    want = normalise(text)
    return next(
        (t for t in themes if any(normalise(m["text"]) == want for m in t["members"])), None
    )


def _apply_theme_fixes(
    themes: list[dict[str, Any]],
    cell: str,
    fixes: list[db.FindingCorrection],
    applied: dict[int, bool],
) -> None:
    """Renames and common marks of a cell's themes, in order (a later one wins)."""
    for fix in fixes:
        if fix.kind not in ("rename", "common") or fix.payload.get("cell") != cell:
            continue
        theme = _theme_of(themes, fix.payload["text"])
        applied[fix.id] = theme is not None
        if theme is None:
            continue
        if fix.kind == "rename":
            theme["text"], theme["wording_by"] = fix.payload["wording"], fix.actor
        else:
            theme["common"], theme["common_by"] = bool(fix.payload["common"]), fix.actor


def _prune_suggestions(
    cell_results: list[dict[str, Any]], fixes: list[db.FindingCorrection]
) -> None:
    """No suggestion of a pair the coordinator kept apart, or of two findings that are
    in one theme already (a suggestion accepted is a merge)."""
    apart = {
        (f.payload["cell"], frozenset({normalise(f.payload["a"]), normalise(f.payload["b"])}))
        for f in fixes
        if f.kind == "keep_apart"
    }
    for c in cell_results:
        if not c.get("suggestions"):
            continue
        cell = _cell_key(c["priority_area"], c["service_area"])
        theme_of = {
            normalise(m["text"]): i for i, t in enumerate(c["themes"]) for m in t["members"]
        }
        c["suggestions"] = [
            x
            for x in c["suggestions"]
            if (cell, frozenset({normalise(x["a"]), normalise(x["b"])})) not in apart
            and not (
                normalise(x["a"]) in theme_of
                and theme_of.get(normalise(x["a"])) == theme_of.get(normalise(x["b"]))
            )
        ]


def corrections(view: CycleView) -> list[db.FindingCorrection]:
    return list(
        view.session.scalars(
            select(db.FindingCorrection)
            .filter_by(cycle_id=view.cycle.id)
            .order_by(db.FindingCorrection.id)
        )
    )


def _cell_key(pa: str, sa: str) -> str:
    return f"{pa}/{sa}"


def add_correction(
    view: CycleView, kind: str, payload: dict[str, Any], actor: str = "admin"
) -> db.FindingCorrection:
    """Record an admin's correction after checking it names things that exist.

    merge / keep_apart: {"cell": "pa/sa", "a": text, "b": text} (keep_apart: never
    suggest the pair, and split it if the compile merged it); split: {"cell", "text"};
    move: {"cell", "text", "to": "pa/sa", "group": optional group key}; rename: {"cell",
    "text", "wording"} (the wording of the theme holding ``text``); common: {"cell",
    "text", "common": bool}; reclassify: {"response": fingerprint, "cell": "pa/sa" or None
    (unclassified)}. Texts are member wordings, in the cell as the moves so far left it;
    a unique case-insensitive part of one is enough.
    """
    _, _, cells = view.matrix()
    cell_keys = {_cell_key(*k) for k in cells}
    if kind in CORRECTION_KINDS and kind != "reclassify":
        if payload.get("cell") not in cell_keys:
            raise StateError(f"no goal-matrix cell {payload.get('cell')!r}")
        items = placed_findings(view).get(payload["cell"], [])
        texts = [i.text for i in items]
        for field in ("a", "b") if kind in ("merge", "keep_apart") else ("text",):
            payload[field] = _resolve_text(texts, str(payload.get(field, "")), payload["cell"])
        if kind in ("merge", "keep_apart") and payload["a"] == payload["b"]:
            raise StateError("a theme cannot be merged with itself or kept apart from itself")
        if kind == "move":
            if payload.get("to") not in cell_keys or payload["to"] == payload["cell"]:
                raise StateError(f"no other goal-matrix cell {payload.get('to')!r} to move to")
            group = payload.get("group")
            if group and not any(i.group == group and i.text == payload["text"] for i in items):
                raise StateError(f"group {group!r} has no finding {payload['text']!r} there")
        elif kind == "rename":
            payload["wording"] = clean_wording(payload.get("wording"))
        elif kind == "common" and not isinstance(payload.get("common"), bool):
            raise StateError("common must be true or false")
    elif kind == "reclassify":
        if payload.get("cell") is not None and payload["cell"] not in cell_keys:
            raise StateError(f"no goal-matrix cell {payload['cell']!r}")
        response = view.session.get(db.FeedbackResponse, payload.pop("response_id", -1))
        if response is None or response.cycle_id != view.cycle.id:
            raise StateError("no such feedback response in this cycle")
        payload["response"] = response.fingerprint
    else:
        raise StateError(f"unknown correction {kind!r}: {', '.join(CORRECTION_KINDS)}")
    row = db.FindingCorrection(cycle_id=view.cycle.id, kind=kind, payload=payload, actor=actor)
    view.session.add(row)
    view.session.flush()
    db.audit(view.session, f"findings.{kind}", f"cycle {view.cycle.year}", actor=actor, **payload)
    return row


def clean_wording(value: object) -> str:
    """A theme's wording as the coordinator typed it, checked: 1 to ``MAX_WORDING``
    characters, no control characters (line breaks, tabs); outer spaces dropped."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise StateError("the wording is empty")
    if len(text) > MAX_WORDING:
        raise StateError(f"the wording is {len(text)} characters long, at most {MAX_WORDING}")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text):
        raise StateError("the wording contains control characters (line breaks, tabs)")
    return text


def placed_findings(view: CycleView) -> dict[str, list[_Item]]:
    """Every cell's findings (group or session key, text) after the moves recorded so far."""
    _, _, cells = view.matrix()
    per_cell: dict[tuple[str, str], list[_Item]] = {k: [] for k in cells}
    for f, s in view.session.execute(
        select(db.Finding, db.MeetingSession)
        .join(db.MeetingSession)
        .where(db.MeetingSession.cycle_id == view.cycle.id, db.Finding.kind == "cell")
        .order_by(db.Finding.session_id, db.Finding.position)
    ).tuples():
        key = (f.priority_area_key or "", f.service_area_key or "")
        if key in per_cell:
            per_cell[key].append(_Item(s.group.key if s.group else s.key, f.text))
    _apply_moves(per_cell, [f for f in corrections(view) if f.kind == "move"], {})
    return {_cell_key(*k): v for k, v in per_cell.items()}


def _resolve_text(texts: list[str], wanted: str, cell: str) -> str:
    exact = [t for t in texts if normalise(t) == normalise(wanted)]
    if exact:
        return exact[0]
    partial = sorted({t for t in texts if normalise(wanted) in normalise(t)})
    if len(partial) == 1:
        return partial[0]
    if not partial:
        raise StateError(f"no finding in {cell} reads {wanted!r}")
    raise StateError(f"{wanted!r} matches {len(partial)} findings in {cell}; quote more of it")


# --- compilation ------------------------------------------------------------------------


def inputs_digest(view: CycleView) -> str:
    """A fingerprint of everything the compilation reads: the settings, the goal matrix,
    the sessions, their findings, the feedback responses and the corrections. The daily
    tick compares it with the newest compilation's ``inputs`` to know whether anything
    changed: reading the rows costs a fraction of compiling them (1 s a county)."""
    c = view.cycle.id
    S, F, R, C = db.MeetingSession, db.Finding, db.FeedbackResponse, db.FindingCorrection
    pas, sas, cells = view.matrix()
    parts: list[Any] = [
        view.cycle.settings,
        view.region.languages,
        [(p.key, p.name) for p in pas],
        [(a.key, a.name) for a in sas],
        sorted((k, cell.goal, cell.background) for k, cell in cells.items()),
        [
            (
                s.id,
                s.key,
                s.kind,
                s.status,
                s.notes_hash,
                s.group.key if s.group else None,
                s.group.name if s.group else None,
            )
            for s in view.sessions()
        ],
    ]
    for query in (
        select(
            F.id, F.session_id, F.kind, F.priority_area_key, F.service_area_key, F.text, F.position
        )
        .join(S)
        .where(S.cycle_id == c)
        .order_by(F.id),
        select(
            R.id,
            R.fingerprint,
            R.late,
            R.include_late,
            R.respondent_type,
            R.respondent_org,
            R.priority_area_key,
            R.service_area_key,
            R.text,
        )
        .where(R.cycle_id == c)
        .order_by(R.id),
        select(C.id, C.kind, C.payload).where(C.cycle_id == c).order_by(C.id),
    ):
        parts.append([list(row) for row in view.session.execute(query)])
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def compile_cycle(view: CycleView, inputs: str | None = None) -> tuple[dict[str, Any], str]:
    """Compile every imported session of the cycle. Returns (result, input hash).
    ``inputs``: ``inputs_digest(view)`` if the caller has it already."""
    threshold = int(view.cycle.settings.get("common_threshold", 2))
    pas, sas, cells = view.matrix()
    sessions = [s for s in view.sessions() if s.status == "scheduled"]
    findings: dict[int, list[db.Finding]] = {s.id: [] for s in sessions}
    for f in view.session.scalars(
        select(db.Finding)
        .join(db.MeetingSession)
        .where(db.MeetingSession.cycle_id == view.cycle.id)
        .order_by(db.Finding.session_id, db.Finding.position)
    ):
        findings.setdefault(f.session_id, []).append(f)

    groups: list[dict[str, Any]] = []
    general: list[dict[str, str]] = []
    stakeholders: list[dict[str, str]] = []
    forum: list[str] = []
    per_cell: dict[tuple[str, str], list[_Item]] = {k: [] for k in cells}
    for s in sessions:
        label = s.group.key if s.group else s.key
        if s.group is not None:
            groups.append(
                {
                    "key": s.group.key,
                    "name": view.text(s.group.name),
                    "session": s.key,
                    "imported": s.notes_hash is not None,
                }
            )
        for f in findings.get(s.id, []):
            if s.kind == "provider_forum":
                forum.append(f.text)
            elif f.kind == "general":
                general.append({"group": label, "text": f.text})
            elif f.kind == "stakeholder":
                stakeholders.append({"group": label, "text": f.text})
            elif (key := (f.priority_area_key or "", f.service_area_key or "")) in per_cell:
                per_cell[key].append(_Item(label, f.text))

    m = matcher(view, [i.text for items in per_cell.values() for i in items])
    fixes = corrections(view)
    applied: dict[int, bool] = {}
    _apply_moves(per_cell, fixes, applied)
    cell_results = []
    specific: dict[str, list[dict[str, Any]]] = {g["key"]: [] for g in groups}
    for pa in pas:
        for sa in sas:
            if (pa.key, sa.key) not in cells:
                continue
            ck = _cell_key(pa.key, sa.key)
            clusters = cluster(per_cell[(pa.key, sa.key)], m)
            for fix in fixes:
                if fix.kind in ("merge", "split", "keep_apart") and fix.payload.get("cell") == ck:
                    applied[fix.id] = _apply(clusters, fix, m)
            confidence, suggestions = assess(clusters, m)
            themes = [_theme(c, ck, m, x) for c, x in zip(clusters, confidence, strict=True)]
            for t in themes:
                t["common"] = len(t["groups"]) >= threshold
            _apply_theme_fixes(themes, ck, fixes, applied)
            themes.sort(key=lambda t: (-len(t["groups"]), t["text"]))
            for t in themes:
                if not t["common"] and len(t["groups"]) == 1 and t["groups"][0] in specific:
                    specific[t["groups"][0]].append(
                        {"priority_area": pa.key, "service_area": sa.key, "text": t["text"]}
                    )
            cell_results.append(
                {
                    "priority_area": pa.key,
                    "service_area": sa.key,
                    "themes": themes,
                    "suggestions": suggestions,
                    "feedback": [],
                }
            )

    _prune_suggestions(cell_results, fixes)
    feedback, unclassified = _feedback(view, cell_results, fixes, applied, m)
    result = {
        "inputs": inputs or inputs_digest(view),
        "analyser": {
            "morphology": analyser_name(),
            "vectors": vectors.available(),
            "dictionaries": lexicon.available(),
        },
        "threshold": threshold,
        "groups": groups,
        "cells": cell_results,
        "specific": specific,
        "cross_cutting": cross_cutting(cell_results, m),
        "general": general,
        "stakeholders": stakeholders,
        "forum": forum,
        "feedback": feedback,
        "unclassified": unclassified,
        "unclassified_quotes": feedback.pop("unclassified_quotes"),
        "corrections": [
            {"id": f.id, "kind": f.kind, **f.payload, "applied": applied.get(f.id, False)}
            for f in fixes
        ],
    }
    digest = hashlib.sha256(
        json.dumps(result, sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()
    return result, digest


def cross_cutting(cell_results: list[dict[str, Any]], m: Matcher) -> list[dict[str, Any]]:
    """Themes that recur in two or more cells. ``along`` names the priority area or service
    area whose cells they run through; it is empty when the cells share neither
    (lähisuhdeväkivalta raised under safety × health care and mental wellbeing × older
    people)."""
    nodes = [(c["priority_area"], c["service_area"], t) for c in cell_results for t in c["themes"]]
    parent = list(range(len(nodes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if nodes:
        # Every pair of findings scored at once; a theme meets another where any of their
        # findings do: the maximum over each theme's rows, then over its columns.
        texts = [x["text"] for _, _, t in nodes for x in t["members"]]
        starts = np.cumsum([0] + [len(t["members"]) for _, _, t in nodes[:-1]])
        sim = m.similarities(texts)
        near = np.maximum.reduceat(np.maximum.reduceat(sim, starts, axis=0), starts, axis=1)
        for i, j in zip(*np.nonzero(np.triu(near >= CROSS_THRESHOLD, 1)), strict=True):
            if nodes[i][:2] != nodes[j][:2] and root(int(i)) != root(int(j)):
                parent[root(int(j))] = root(int(i))
    components: dict[int, list[int]] = {}
    for i in range(len(nodes)):
        components.setdefault(root(i), []).append(i)
    out = []
    for idx in components.values():
        where = sorted({nodes[i][:2] for i in idx})
        if len(where) < 2:
            continue
        along = []
        for axis, pos in (("priority_area", 0), ("service_area", 1)):
            counts = Counter(w[pos] for w in where)
            along += [{"axis": axis, "key": k, "cells": n} for k, n in counts.items() if n >= 2]
        texts = [m["text"] for i in idx for m in nodes[i][2]["members"]]
        out.append(
            {
                "text": _representative(texts, m),
                "cells": [{"priority_area": pa, "service_area": sa} for pa, sa in where],
                "along": sorted(along, key=lambda a: (a["axis"], a["key"])),
                "groups": sorted({g for i in idx for g in nodes[i][2]["groups"]}),
            }
        )
    out.sort(key=lambda x: (-len(x["cells"]), -len(x["groups"]), x["text"]))
    return out


def classifier_for(view: CycleView, cell_results: list[dict[str, Any]]) -> CellClassifier:
    """The suggested-cell classifier over the goal matrix and the compiled findings."""
    pas, sas, cells = view.matrix()
    pa_names = {p.key: view.text(p.name) for p in pas}
    sa_names = {s.key: view.text(s.name) for s in sas}
    docs: dict[tuple[str, str], list[str]] = {}
    for c in cell_results:
        k = (c["priority_area"], c["service_area"])
        cell = cells[k]
        docs[k] = [
            view.text(cell.goal),
            view.text(cell.background),
            pa_names[k[0]],
            sa_names[k[1]],
            *(m["text"] for t in c["themes"] for m in t["members"]),
        ]
    return CellClassifier(docs, tuple(view.region.languages or ["fi"]))


def _feedback(
    view: CycleView,
    cell_results: list[dict[str, Any]],
    fixes: list[db.FindingCorrection],
    applied: dict[int, bool],
    m: Matcher,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    responses = list(
        view.session.scalars(
            select(db.FeedbackResponse)
            .filter_by(cycle_id=view.cycle.id)
            .order_by(db.FeedbackResponse.received_at, db.FeedbackResponse.id)
        )
    )
    by_cell = {_cell_key(c["priority_area"], c["service_area"]): c for c in cell_results}
    admin: dict[str, tuple[int, str | None]] = {}
    for fix in fixes:
        if fix.kind == "reclassify":
            admin[fix.payload["response"]] = (fix.id, fix.payload.get("cell"))
            applied[fix.id] = False
    classifier: CellClassifier | None = None
    unclassified: list[dict[str, Any]] = []
    per_cell: Counter[str] = Counter()
    per_type: Counter[str] = Counter()
    included = 0
    for r in responses:
        if r.late and not r.include_late:
            continue
        included += 1
        per_type[r.respondent_type or "other"] += 1
        entry: dict[str, Any] = {
            "id": r.id,
            "text": r.text,
            "respondent_type": r.respondent_type,
            "organisation": r.respondent_org,
            "late": r.late,
        }
        given = _cell_key(r.priority_area_key or "", r.service_area_key or "")
        target: str | None
        if r.fingerprint in admin:
            fix_id, target = admin[r.fingerprint]
            applied[fix_id] = True
            entry["how"] = "admin"
        elif given in by_cell:
            target, entry["how"] = given, "given"
        else:
            classifier = classifier or classifier_for(view, cell_results)
            suggestions = classifier.suggest(r.text)
            entry["suggestions"] = [
                {
                    "priority_area": s.priority_area,
                    "service_area": s.service_area,
                    "confidence": round(s.score, 3),
                }
                for s in suggestions
            ]
            if suggestions and suggestions[0].score >= CONFIDENCE_THRESHOLD:
                best = suggestions[0]
                target = _cell_key(best.priority_area, best.service_area)
                entry["how"], entry["confidence"] = "suggested", round(best.score, 3)
            else:
                target = None
        if target is None or target not in by_cell:
            unclassified.append(entry)
            continue
        per_cell[target] += 1
        by_cell[target]["feedback"].append(entry)
    # A response counts for the first theme of its cell that it says the same as.
    for cell in cell_results:
        members = [x["text"] for t in cell["themes"] for x in t["members"]]
        if not (cell["feedback"] and members):
            continue
        sim = m.similarities([e["text"] for e in cell["feedback"]], members)
        starts = np.cumsum([0] + [len(t["members"]) for t in cell["themes"][:-1]])
        by_theme = np.maximum.reduceat(sim, starts, axis=1)
        for row in by_theme >= MERGE_THRESHOLD:
            if row.any():
                t = cell["themes"][int(np.argmax(row))]
                t["feedback"] = t.get("feedback", 0) + 1
    # The quotes of each group's memo, per cell and for the responses not placed: the ones
    # that stand for the rest, by this compilation's matcher (``representatives``).
    group_members = {
        x.group.key: {mu.key for mu in x.group.municipalities}
        for x in view.sessions()
        if x.group is not None
    }
    groups_of = {
        r.id: [g for g, ms in group_members.items() if r.municipality_key in ms or r.group_key == g]
        for r in responses
    }

    def quotes(entries: list[dict[str, Any]]) -> dict[str, list[int]]:
        by_group: dict[str, list[dict[str, Any]]] = {}
        for e in entries:
            for g in groups_of.get(e["id"], []):
                by_group.setdefault(g, []).append(e)
        return {
            g: [es[i]["id"] for i in representatives([e["text"] for e in es], m, QUOTES)]
            for g, es in sorted(by_group.items())
        }

    for cell in cell_results:
        cell["quotes"] = quotes(cell["feedback"])
    unclassified_quotes = quotes(unclassified)
    counts = {
        "total": len(responses),
        "on_time": sum(1 for r in responses if not r.late),
        "late": sum(1 for r in responses if r.late),
        "included": included,
        "per_cell": dict(sorted(per_cell.items())),
        "per_respondent_type": dict(sorted(per_type.items())),
        "unclassified": len(unclassified),
        "confidence_threshold": CONFIDENCE_THRESHOLD,
        "unclassified_quotes": unclassified_quotes,
    }
    return counts, unclassified


def compile_and_store(view: CycleView) -> tuple[db.Compilation, bool]:
    """Store a compilation unless the newest one came from the same inputs (then nothing
    is compiled: comparing the inputs' fingerprint is enough)."""
    latest = latest_compilation(view)
    inputs = inputs_digest(view)
    if latest is not None and latest.result.get("inputs") == inputs:
        return latest, False
    result, digest = compile_cycle(view, inputs)
    if latest is not None and latest.input_hash == digest:
        return latest, False
    row = db.Compilation(cycle_id=view.cycle.id, input_hash=digest, result=result)
    view.session.add(row)
    view.session.flush()
    db.audit(view.session, "compile", f"cycle {view.cycle.year}", compilation=row.id)
    return row, True


def latest_compilation(view: CycleView) -> db.Compilation | None:
    return view.session.scalars(
        select(db.Compilation)
        .filter_by(cycle_id=view.cycle.id)
        .order_by(db.Compilation.id.desc())
        .limit(1)
    ).first()


def review_baseline(view: CycleView) -> db.Compilation | None:
    """What the review's changes compare against: the compilation the newest memos were
    rendered from, or before any render the cycle's first compilation (the compile's own
    result, before the coordinator's corrections). Every action on the review page
    compiles anew, so the compilation just before the newest would show only the last
    action."""
    rendered = view.session.scalars(
        select(db.MemoVersion.compilation_id)
        .join(db.Memo)
        .where(db.Memo.cycle_id == view.cycle.id)
        .order_by(db.MemoVersion.id.desc())
        .limit(1)
    ).first()
    if rendered is not None:
        return view.session.get(db.Compilation, rendered)
    return view.session.scalars(
        select(db.Compilation).filter_by(cycle_id=view.cycle.id).order_by(db.Compilation.id)
    ).first()


def _member_keys(theme: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m["group"], normalise(m["text"])) for m in theme["members"]}


def changes(previous: dict[str, Any] | None, current: dict[str, Any]) -> list[dict[str, Any]]:
    """What changed from one compilation result to the next, theme by theme, per cell.

    Themes are matched by the findings they share (keys change with the members). Each
    entry: {"cell": "pa/sa", "change": added | removed | members | wording | common,
    "text": the theme's wording now (removed: then)}, and by kind: "added"/"removed"
    members [{group, text}] (members), "before"/"after" (wording, common), "from" the
    cells an added theme's findings were in before, "into" the wordings and cells a
    removed theme's findings are in now. Nothing to compare with (``previous`` None):
    an empty list."""
    if previous is None:
        return []

    def by_cell(result: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        return {
            _cell_key(c["priority_area"], c["service_area"]): c["themes"] for c in result["cells"]
        }

    before, after = by_cell(previous), by_cell(current)

    def where(cells: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, str], tuple[str, str]]:
        return {k: (ck, t["text"]) for ck, ts in cells.items() for t in ts for k in _member_keys(t)}

    was_in, now_in = where(before), where(after)
    out: list[dict[str, Any]] = []
    for cell in [*after, *(c for c in before if c not in after)]:
        old, new = before.get(cell, []), after.get(cell, [])
        pairs = sorted(
            (
                (-len(_member_keys(p) & _member_keys(c)), i, j)
                for i, p in enumerate(old)
                for j, c in enumerate(new)
                if _member_keys(p) & _member_keys(c)
            ),
        )
        matched: dict[int, int] = {}
        for _, i, j in pairs:
            if i not in matched and j not in matched.values():
                matched[i] = j
        for j, c in enumerate(new):
            if j in matched.values():
                continue
            came = sorted({was_in[k][0] for k in _member_keys(c) if k in was_in} - {cell})
            out.append({"cell": cell, "change": "added", "text": c["text"], "from": came})
        for i, p in enumerate(old):
            if i not in matched:
                into = sorted({now_in[k] for k in _member_keys(p) if k in now_in})
                out.append(
                    {
                        "cell": cell,
                        "change": "removed",
                        "text": p["text"],
                        "into": [{"cell": ck, "text": t} for ck, t in into],
                    }
                )
                continue
            c = new[matched[i]]
            pk, ck_ = _member_keys(p), _member_keys(c)
            if pk != ck_:
                out.append(
                    {
                        "cell": cell,
                        "change": "members",
                        "text": c["text"],
                        "added": [
                            m for m in c["members"] if (m["group"], normalise(m["text"])) not in pk
                        ],
                        "removed": [
                            m for m in p["members"] if (m["group"], normalise(m["text"])) not in ck_
                        ],
                    }
                )
            if p["text"] != c["text"]:
                out.append(
                    {
                        "cell": cell,
                        "change": "wording",
                        "text": c["text"],
                        "before": p["text"],
                        "after": c["text"],
                    }
                )
            if bool(p.get("common")) != bool(c.get("common")):
                out.append(
                    {
                        "cell": cell,
                        "change": "common",
                        "text": c["text"],
                        "before": bool(p.get("common")),
                        "after": bool(c.get("common")),
                    }
                )
    return out


def display_names(view: CycleView) -> dict[str, str]:
    """Priority areas', service areas' and groups' keys to their names in the region's
    language, for tables a coordinator reads."""
    pas, sas, _ = view.matrix()
    names = {a.key: view.text(a.name) for a in pas}
    names |= {a.key: view.text(a.name) for a in sas}
    names |= {s.group.key: view.text(s.group.name) for s in view.sessions() if s.group}
    return names


def common_table(
    result: dict[str, Any], names: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """The common themes as rows, for a table artifact; ``names`` (``display_names``)
    turns the keys into names."""
    name = (names or {}).get
    return [
        {
            "painopiste": name(c["priority_area"], c["priority_area"]),
            "palvelualue": name(c["service_area"], c["service_area"]),
            "teema": t["text"],
            "ryhmiä": len(t["groups"]),
            "ryhmät": ", ".join(name(g, g) for g in t["groups"]),
        }
        for c in result["cells"]
        for t in c["themes"]
        if t["common"]
    ]


def markdown(result: dict[str, Any]) -> str:
    """The compilation in the shape of the county's summary slides, for the Prefect UI."""
    lines = ["# Koonti", "", f"Yhteinen teema: vähintään {result['threshold']} kuntaryhmää.", ""]
    suggested = sum(len(c.get("suggestions", [])) for c in result["cells"])
    if suggested:
        lines += [
            f"Koonti ei ollut varma {suggested} noston parista: ne odottavat tarkistusta "
            "(yhdistä tai pidä erillään) ennen muistioiden hyväksymistä.",
            "",
        ]
    current = None
    for c in result["cells"]:
        if c["priority_area"] != current:
            current = c["priority_area"]
            lines += [f"## {current}", ""]
        common = [t for t in c["themes"] if t["common"]]
        if common:
            lines.append(f"### {c['service_area']}")
            lines += [f"- {t['text']} ({', '.join(t['groups'])})" for t in common]
            lines.append("")
    if result.get("cross_cutting"):
        lines += ["## Läpileikkaavat teemat", ""]
        for x in result["cross_cutting"]:
            where = ", ".join(f"{c['priority_area']}/{c['service_area']}" for c in x["cells"])
            lines.append(f"- {x['text']} ({where})")
        lines.append("")
    names = {g["key"]: g["name"] for g in result["groups"]}
    lines += ["## Kuntaryhmäkohtaiset painotukset", ""]
    for key, items in result["specific"].items():
        lines.append(f"### {names.get(key, key)}")
        lines += [f"- {i['text']} ({i['priority_area']}/{i['service_area']})" for i in items]
        lines.append("")
    lines += ["## Järjestöt ja seurakunnat", ""]
    lines += [f"- {t}" for t in sorted({s["text"] for s in result["stakeholders"]})]
    lines += ["", "## Palveluntuottajafoorumi", ""]
    lines += [f"- {t}" for t in result["forum"]]
    fb = result["feedback"]
    lines += [
        "",
        "## Palaute",
        "",
        f"- vastauksia {fb['total']}, ajallaan {fb['on_time']}, myöhässä {fb['late']}",
        f"- luokittelematta {fb.get('unclassified', 0)}",
    ]
    if result.get("unclassified"):
        lines += ["", "### Luokittelematta (hytetu findings reclassify ID --cell PA/SA)", ""]
        for u in result["unclassified"]:
            hint = ", ".join(
                f"{x['priority_area']}/{x['service_area']} {x['confidence']:.2f}"
                for x in u.get("suggestions", [])
            )
            lines.append(f"- #{u['id']}: {u['text']}" + (f" (ehdotukset: {hint})" if hint else ""))
    return "\n".join(lines) + "\n"
