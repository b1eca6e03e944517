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
from functools import lru_cache
from typing import Any

from sqlalchemy import select

from hytetu import db
from hytetu.classify import CONFIDENCE_THRESHOLD, CellClassifier, same_word, stems
from hytetu.errors import StateError
from hytetu.state import CycleView

MERGE_THRESHOLD = 0.6
# Across cells the claim is stronger (the same theme, elsewhere), so the bar is higher:
# generic words ("yhteistyö", "kunnat") otherwise chain unrelated themes together.
CROSS_THRESHOLD = 0.75
#: The corrections ``add_correction`` accepts; all but reclassify name a goal cell.
CORRECTION_KINDS = ("merge", "split", "keep_apart", "move", "rename", "common", "reclassify")
MAX_WORDING = 500  # characters of a theme's wording set by the coordinator


@lru_cache(maxsize=20000)
def signature(text: str) -> tuple[str, ...]:
    """Stemmed content words of a finding, order-free and case-free."""
    return tuple(sorted(set(stems(text))))


def similarity(a: str, b: str) -> float:
    """How alike two findings are, 0..1.

    The Dice coefficient over stemmed words, where inflections and compound heads match
    (``classify.same_word``), each word paired with one word of the other. A finding of two
    or more words wholly contained in one at most three times as long scores 1
    ("Kaatumisten ehkäisy" in "Kaatumisten ehkäisy ja toimintakyvyn tukeminen").
    """
    sa, sb = signature(a), signature(b)
    if not sa or not sb:
        return 1.0 if _norm(a) == _norm(b) else 0.0
    small, big = (sa, sb) if len(sa) <= len(sb) else (sb, sa)
    # One word matches one word: "liikuntaneuvonta" and "elämäntapaneuvonta" do not both
    # pair with a single "neuvonta".
    free = list(big)
    matched = narrower = 0
    for x in small:
        y = next((y for y in free if same_word(x, y)), None)
        if y is not None:
            free.remove(y)
            matched += 1
            # "potilasjärjestö" is narrower than "järjestö": not contained in it.
            narrower += len(x) > len(y) + 2 and x.endswith(y)
    if len(small) >= 2 and matched == len(small) and not narrower and len(big) <= 3 * len(small):
        return 1.0
    return 2 * matched / (len(sa) + len(sb))


def same_theme(a: str, b: str) -> bool:
    return similarity(a, b) >= MERGE_THRESHOLD


@lru_cache(maxsize=50000)
def word_keys(text: str) -> frozenset[str]:
    """Keys two findings share whenever ``similarity`` can be above 0: the first four
    letters of each stem (inflections, slips), every ending of five letters or more
    (compound heads), short stems whole, and the text itself when it has no content
    words. Comparing only findings that share a key gives the same result as comparing
    all pairs, without the quadratic cost (the whole country has 20,000 findings)."""
    sig = signature(text)
    if not sig:
        return frozenset({"n:" + _norm(text)})
    keys: set[str] = set()
    for w in sig:
        if len(w) < 4:
            keys.add("e:" + w)
            continue
        keys.add("p:" + w[:4])
        keys.update("s:" + w[-k:] for k in range(5, len(w) + 1))
    return frozenset(keys)


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


@dataclass
class _Item:
    group: str
    text: str


def cluster(items: list[_Item]) -> list[list[_Item]]:
    """Single-link clustering of findings whose similarity reaches the threshold."""
    clusters: list[list[_Item]] = []
    for item in items:
        joined = [c for c in clusters if any(same_theme(item.text, o.text) for o in c)]
        merged = [item]
        for c in joined:
            merged = c + merged
            clusters.remove(c)
        clusters.append(merged)
    return clusters


def _representative(texts: list[str]) -> str:
    """The wording most like the others (the medoid); the shorter one on a tie."""
    if len(texts) <= 2:
        return min(texts, key=lambda t: (len(t), t))
    return max(
        texts, key=lambda t: (sum(similarity(t, o) for o in texts if o is not t), -len(t), t)
    )


def _theme(members: list[_Item], cell: str) -> dict[str, Any]:
    groups = sorted({m.group for m in members})
    texts = [m.text for m in members]
    key = hashlib.sha1("\n".join([cell, *sorted(texts)]).encode()).hexdigest()[:10]
    return {
        "key": key,
        "text": _representative(texts),
        "groups": groups,
        "members": [{"group": m.group, "text": m.text} for m in members],
    }


# --- corrections ----------------------------------------------------------------------


def _find(clusters: list[list[_Item]], text: str) -> list[_Item] | None:
    want = _norm(text)
    for c in clusters:
        if any(_norm(m.text) == want for m in c):
            return c
    return None


def _apply(clusters: list[list[_Item]], correction: db.FindingCorrection) -> bool:
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
        out = [m for m in c if _norm(m.text) == _norm(p["text"])]
        if len(out) < len(c):
            for m in out:
                c.remove(m)
            clusters.append(out)
        return True
    if correction.kind == "keep_apart":
        a, b = _find(clusters, p["a"]), _find(clusters, p["b"])
        if a is None or b is None:
            return False
        if a is b:
            clusters.append(_separate(a, p["a"], p["b"]))
        return True
    return False


def _separate(members: list[_Item], a: str, b: str) -> list[_Item]:
    """Take ``b`` out of the cluster it shares with ``a``, with the members more like ``b``
    than like ``a``; returns them (``members`` keeps the rest)."""
    na, nb = _norm(a), _norm(b)
    out = [
        m
        for m in members
        if _norm(m.text) == nb
        or (_norm(m.text) != na and similarity(m.text, b) > similarity(m.text, a))
    ]
    for m in out:
        members.remove(m)
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
        want = _norm(p["text"])
        moving = [
            i
            for i in source
            if _norm(i.text) == want and (not p.get("group") or i.group == p["group"])
        ]
        for item in moving:
            source.remove(item)
            target.append(item)
        applied[fix.id] = bool(moving)


def _theme_of(themes: list[dict[str, Any]], text: str) -> dict[str, Any] | None:
    want = _norm(text)
    return next((t for t in themes if any(_norm(m["text"]) == want for m in t["members"])), None)


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
        (f.payload["cell"], frozenset({_norm(f.payload["a"]), _norm(f.payload["b"])}))
        for f in fixes
        if f.kind == "keep_apart"
    }
    for c in cell_results:
        if not c.get("suggestions"):
            continue
        cell = _cell_key(c["priority_area"], c["service_area"])
        theme_of = {_norm(m["text"]): i for i, t in enumerate(c["themes"]) for m in t["members"]}
        c["suggestions"] = [
            x
            for x in c["suggestions"]
            if (cell, frozenset({_norm(x["a"]), _norm(x["b"])})) not in apart
            and not (
                _norm(x["a"]) in theme_of
                and theme_of.get(_norm(x["a"])) == theme_of.get(_norm(x["b"]))
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
    exact = [t for t in texts if _norm(t) == _norm(wanted)]
    if exact:
        return exact[0]
    partial = sorted({t for t in texts if _norm(wanted) in _norm(t)})
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
            clusters = cluster(per_cell[(pa.key, sa.key)])
            for fix in fixes:
                if fix.kind in ("merge", "split", "keep_apart") and fix.payload.get("cell") == ck:
                    applied[fix.id] = _apply(clusters, fix)
            themes = [_theme(c, ck) for c in clusters]
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
                {"priority_area": pa.key, "service_area": sa.key, "themes": themes, "feedback": []}
            )

    _prune_suggestions(cell_results, fixes)
    feedback, unclassified = _feedback(view, cell_results, fixes, applied)
    result = {
        "inputs": inputs or inputs_digest(view),
        "threshold": threshold,
        "groups": groups,
        "cells": cell_results,
        "specific": specific,
        "cross_cutting": cross_cutting(cell_results),
        "general": general,
        "stakeholders": stakeholders,
        "forum": forum,
        "feedback": feedback,
        "unclassified": unclassified,
        "corrections": [
            {"id": f.id, "kind": f.kind, **f.payload, "applied": applied.get(f.id, False)}
            for f in fixes
        ],
    }
    digest = hashlib.sha256(
        json.dumps(result, sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()
    return result, digest


def cross_cutting(cell_results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Themes that recur in two or more cells. ``along`` names the priority area or service
    area whose cells they run through; it is empty when the cells share neither
    (lähisuhdeväkivalta raised under safety × health care and mental wellbeing × older
    people)."""
    nodes = [(c["priority_area"], c["service_area"], t) for c in cell_results for t in c["themes"]]
    parent = list(range(len(nodes)))
    node_keys = [set().union(*(word_keys(m["text"]) for m in t["members"])) for _, _, t in nodes]
    index: dict[str, list[int]] = {}
    for i, keys in enumerate(node_keys):
        for key in keys:
            index.setdefault(key, []).append(i)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(nodes)):
        for j in sorted({j for key in node_keys[i] for j in index[key] if j > i}):
            if nodes[i][:2] == nodes[j][:2] or root(i) == root(j):
                continue
            ti, tj = nodes[i][2], nodes[j][2]
            if any(
                word_keys(a["text"]) & word_keys(b["text"])
                and similarity(a["text"], b["text"]) >= CROSS_THRESHOLD
                for a in ti["members"]
                for b in tj["members"]
            ):
                parent[root(j)] = root(i)
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
                "text": _representative(texts),
                "cells": [{"priority_area": pa, "service_area": sa} for pa, sa in where],
                "along": sorted(along, key=lambda a: (a["axis"], a["key"])),
                "groups": sorted({g for i in idx for g in nodes[i][2]["groups"]}),
            }
        )
    out.sort(key=lambda x: (-len(x["cells"]), -len(x["groups"]), x["text"]))
    return out


def _classifier(view: CycleView, cell_results: list[dict[str, Any]]) -> CellClassifier:
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
    return CellClassifier(docs)


def _feedback(
    view: CycleView,
    cell_results: list[dict[str, Any]],
    fixes: list[db.FindingCorrection],
    applied: dict[int, bool],
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
            classifier = classifier or _classifier(view, cell_results)
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
        cell = by_cell[target]
        cell["feedback"].append(entry)
        keys = word_keys(r.text)
        for t in cell["themes"]:
            if any(
                keys & word_keys(m["text"]) and same_theme(r.text, m["text"]) for m in t["members"]
            ):
                t["feedback"] = t.get("feedback", 0) + 1
                break
    counts = {
        "total": len(responses),
        "on_time": sum(1 for r in responses if not r.late),
        "late": sum(1 for r in responses if r.late),
        "included": included,
        "per_cell": dict(sorted(per_cell.items())),
        "per_respondent_type": dict(sorted(per_type.items())),
        "unclassified": len(unclassified),
        "confidence_threshold": CONFIDENCE_THRESHOLD,
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


def previous_compilation(view: CycleView) -> db.Compilation | None:
    """The compilation before the newest one (what ``changes`` compares against)."""
    return view.session.scalars(
        select(db.Compilation)
        .filter_by(cycle_id=view.cycle.id)
        .order_by(db.Compilation.id.desc())
        .offset(1)
        .limit(1)
    ).first()


def _member_keys(theme: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m["group"], _norm(m["text"])) for m in theme["members"]}


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
                            m for m in c["members"] if (m["group"], _norm(m["text"])) not in pk
                        ],
                        "removed": [
                            m for m in p["members"] if (m["group"], _norm(m["text"])) not in ck_
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


def common_table(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The common themes as rows, for a table artifact."""
    return [
        {
            "painopiste": c["priority_area"],
            "palvelualue": c["service_area"],
            "teema": t["text"],
            "ryhmiä": len(t["groups"]),
            "ryhmät": ", ".join(t["groups"]),
        }
        for c in result["cells"]
        for t in c["themes"]
        if t["common"]
    ]


def markdown(result: dict[str, Any]) -> str:
    """The compilation in the shape of the county's summary slides, for the Prefect UI."""
    lines = ["# Koonti", "", f"Yhteinen teema: vähintään {result['threshold']} kuntaryhmää.", ""]
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
