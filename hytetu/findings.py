"""Compilation (koonti): the findings of every session pooled per goal cell into themes.

A theme is a set of near-duplicate findings ("Kaatumisten ehkäisy" and "Kaatumisten
ennaltaehkäisy") from one or more groups. A theme raised by at least ``threshold`` groups
is common; a group's themes that no other group raised are its specific emphases.
The result is plain JSON, stored per run with the hash of its inputs.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import snowballstemmer
from sqlalchemy import select

from hytetu import db
from hytetu.state import CycleView

_STOPWORDS = {
    "ja",
    "sekä",
    "tai",
    "on",
    "ovat",
    "eri",
    "esim",
    "mm",
    "kanssa",
    "osana",
    "myös",
    "sen",
    "että",
    "kuin",
    "tarve",
    "tarvetta",
    "vahvistaminen",
    "kehittäminen",
    "tukeminen",
}
_stemmer = snowballstemmer.stemmer("finnish")


@lru_cache(maxsize=20000)
def signature(text: str) -> tuple[str, ...]:
    """Stemmed content words of a finding, order-free and case-free."""
    words = re.findall(r"[^\W\d_]+", text.lower())
    stems = _stemmer.stemWords([w for w in words if w not in _STOPWORDS and len(w) > 2])
    return tuple(sorted(set(stems)))


def _same_word(a: str, b: str) -> bool:
    if a == b or (len(a) >= 5 and len(b) >= 5 and a[:5] == b[:5]):
        return True
    short, long_ = sorted((a, b), key=len)
    return len(short) >= 5 and long_.endswith(short)  # ennaltaehkäisy ~ ehkäisy


def similarity(a: str, b: str) -> float:
    """Dice coefficient over stemmed words, with compounds and inflections matched."""
    sa, sb = signature(a), signature(b)
    if not sa or not sb:
        return 1.0 if a.strip().lower() == b.strip().lower() else 0.0
    matched_a = sum(1 for x in sa if any(_same_word(x, y) for y in sb))
    matched_b = sum(1 for y in sb if any(_same_word(x, y) for x in sa))
    return (matched_a + matched_b) / (len(sa) + len(sb))


MERGE_THRESHOLD = 0.6


@dataclass
class _Item:
    group: str
    text: str


def cluster(items: list[_Item]) -> list[list[_Item]]:
    """Single-link clustering of findings whose similarity reaches the threshold."""
    clusters: list[list[_Item]] = []
    for item in items:
        joined = [
            c for c in clusters if any(similarity(item.text, o.text) >= MERGE_THRESHOLD for o in c)
        ]
        merged = [item]
        for c in joined:
            merged = c + merged
            clusters.remove(c)
        clusters.append(merged)
    return clusters


def _theme(members: list[_Item]) -> dict[str, Any]:
    groups = sorted({m.group for m in members})
    # The shortest wording usually names the theme best ("Kaatumisten ehkäisy").
    representative = min((m.text for m in members), key=lambda t: (len(t), t))
    return {
        "text": representative,
        "groups": groups,
        "members": [{"group": m.group, "text": m.text} for m in members],
    }


def compile_cycle(view: CycleView) -> tuple[dict[str, Any], str]:
    """Compile every imported session of the cycle. Returns (result, input hash)."""
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

    cell_results = []
    specific: dict[str, list[dict[str, Any]]] = {g["key"]: [] for g in groups}
    for pa in pas:
        for sa in sas:
            if (pa.key, sa.key) not in cells:
                continue
            themes = [_theme(c) for c in cluster(per_cell[(pa.key, sa.key)])]
            themes.sort(key=lambda t: (-len(t["groups"]), t["text"]))
            for t in themes:
                t["common"] = len(t["groups"]) >= threshold
                if len(t["groups"]) == 1 and t["groups"][0] in specific:
                    specific[t["groups"][0]].append(
                        {"priority_area": pa.key, "service_area": sa.key, "text": t["text"]}
                    )
            cell_results.append({"priority_area": pa.key, "service_area": sa.key, "themes": themes})
    responses = list(
        view.session.scalars(select(db.FeedbackResponse).filter_by(cycle_id=view.cycle.id))
    )
    result = {
        "threshold": threshold,
        "groups": groups,
        "cells": cell_results,
        "specific": specific,
        "general": general,
        "stakeholders": stakeholders,
        "forum": forum,
        "feedback": {
            "total": len(responses),
            "on_time": sum(1 for r in responses if not r.late),
            "late": sum(1 for r in responses if r.late),
        },
    }
    digest = hashlib.sha256(
        json.dumps(result, sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()
    return result, digest


def compile_and_store(view: CycleView) -> tuple[db.Compilation, bool]:
    """Store a compilation unless the newest one came from the same inputs."""
    result, digest = compile_cycle(view)
    latest = latest_compilation(view)
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
