"""Follow-up (seuranta, Act 612/2021 s. 7(4)): this cycle's compilation beside last year's.

Last year is the same region's cycle of ``year - 1`` in the database, with the compilation
its newest approved memos were rendered from (else its newest compilation); without one,
there is no follow-up and the documents show none of it.

Two themes of one goal cell, one from each year, are the same point when the compilation
itself would have merged them: their findings' average similarity, by the compilation's
matcher (``findings.matcher``, word weights from both years' findings and this year's goal
matrix), reaches ``findings.MERGE_THRESHOLD``. A reworded point is so the same one. A theme
of this year that matches none of last year's is new; one of last year's that none of this
year's matches was dropped. Cells are compared by key (priority area / service area).

A group is last year's group of the same key. A group renamed or re-formed under a new key
is the last year's group with the same municipalities, else the one that held more than
half of its municipalities (the most of them); else the group has no last year.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select

from hytetu import db
from hytetu.findings import MERGE_THRESHOLD, latest_compilation, matcher
from hytetu.language import Matcher
from hytetu.state import CycleView

_CACHE = "hytetu.followup"


@dataclass
class LastYear:
    """Last year's cycle and the compilation its follow-up compares with."""

    year: int
    cycle_id: int
    result: dict[str, Any]
    #: group key -> its municipalities' keys, for the groups of last year's compilation
    groups: dict[str, frozenset[str]]


@dataclass
class Recurring:
    text: str  # this year's wording (the theme's)
    last_text: str  # last year's: its theme's finding most like this year's theme
    groups: list[str]
    last_groups: list[str]


@dataclass
class CellFollowUp:
    """One goal cell: what recurs, what is new, what was dropped since last year."""

    priority_area: str
    service_area: str
    recurring: list[Recurring] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.priority_area}/{self.service_area}"


@dataclass
class Emphasis:
    """A point a group raised last year, in its own words, and whether it did again."""

    text: str
    again: bool | None  # None: this year's session is not compiled yet (the invitation)


def last_year(view: CycleView) -> LastYear | None:
    """The same region's cycle of the year before, with a compilation; None for a first
    cycle. Read once per database session."""
    cache = view.session.info.setdefault(_CACHE, {})
    if view.cycle.id in cache:
        found: LastYear | None = cache[view.cycle.id]
        return found
    found = None
    previous = view.session.scalars(
        select(db.Cycle).filter_by(region_id=view.region.id, year=view.cycle.year - 1)
    ).one_or_none()
    if previous is not None:
        compilation = _compilation_of(view, previous)
        if compilation is not None:
            keys = [g["key"] for g in compilation.result.get("groups", [])]
            groups = {
                g.key: frozenset(m.key for m in g.municipalities)
                for g in view.session.scalars(
                    select(db.MunicipalityGroup).where(
                        db.MunicipalityGroup.region_id == view.region.id,
                        db.MunicipalityGroup.key.in_(keys),
                    )
                )
            }
            found = LastYear(previous.year, previous.id, compilation.result, groups)
    cache[view.cycle.id] = found
    return found


def _compilation_of(view: CycleView, cycle: db.Cycle) -> db.Compilation | None:
    approved = view.session.scalars(
        select(db.MemoVersion.compilation_id)
        .join(db.Memo)
        .where(db.Memo.cycle_id == cycle.id, db.MemoVersion.status == "approved")
        .order_by(db.MemoVersion.id.desc())
        .limit(1)
    ).first()
    if approved is not None:
        return view.session.get(db.Compilation, approved)
    return latest_compilation(CycleView(view.session, cycle, view.region))


def match_group(view: CycleView, last: LastYear, group_key: str) -> str | None:
    """Last year's key of the group ``group_key`` (see the module's docstring)."""
    if group_key in last.groups:
        return group_key
    group = view.session.scalars(
        select(db.MunicipalityGroup).filter_by(region_id=view.region.id, key=group_key)
    ).one_or_none()
    if group is None:
        return None
    members = frozenset(m.key for m in group.municipalities)
    if not members:
        return None
    for key, theirs in sorted(last.groups.items()):
        if theirs == members:
            return key
    best = max(sorted(last.groups.items()), key=lambda kv: len(kv[1] & members), default=None)
    if best is not None and len(best[1] & members) * 2 > len(members):
        return best[0]
    return None


def _cells(result: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {f"{c['priority_area']}/{c['service_area']}": c["themes"] for c in result["cells"]}


def _texts(theme: dict[str, Any]) -> list[str]:
    return [m["text"] for m in theme["members"]] or [theme["text"]]


def followup_matcher(view: CycleView, result: dict[str, Any], last: LastYear) -> Matcher:
    """The compilation's matcher over both years' findings; one per result and session
    (every memo of a render shares it)."""
    cache = view.session.info.setdefault(_CACHE + ".matcher", {})
    key = (view.cycle.id, id(result))
    if key in cache and cache[key][0] is result:
        found: Matcher = cache[key][1]
        return found
    texts = [
        t
        for r in (result, last.result)
        for c in r["cells"]
        for theme in c["themes"]
        for t in _texts(theme)
    ]
    m = matcher(view, texts)
    cache[key] = (result, m)  # the result kept alive, so its id is not reused
    return m


def _scores(
    old: list[dict[str, Any]], new: list[dict[str, Any]], m: Matcher
) -> tuple[np.ndarray, np.ndarray]:
    """Theme × theme: the average similarity of their findings (the compilation's
    average link), and for each pair the index in the old theme of its finding most like
    the new theme (the wording shown beside it)."""
    scores = np.zeros((len(old), len(new)))
    closest = np.zeros((len(old), len(new)), dtype=np.int64)
    if not old or not new:
        return scores, closest
    old_texts = [_texts(t) for t in old]
    new_texts = [_texts(t) for t in new]
    flat_old = [t for ts in old_texts for t in ts]
    flat_new = [t for ts in new_texts for t in ts]
    sim = m.similarities(flat_old, flat_new)
    rows = np.cumsum([0] + [len(ts) for ts in old_texts])
    cols = np.cumsum([0] + [len(ts) for ts in new_texts])
    for i in range(len(old)):
        for j in range(len(new)):
            block = sim[rows[i] : rows[i + 1], cols[j] : cols[j + 1]]
            scores[i, j] = block.mean()
            closest[i, j] = int(block.mean(axis=1).argmax())
    return scores, closest


def compare(
    view: CycleView, result: dict[str, Any], last: LastYear, m: Matcher | None = None
) -> list[CellFollowUp]:
    """Every goal cell of this year's compilation, in its order, beside last year's."""
    m = m or followup_matcher(view, result, last)
    before = _cells(last.result)
    out = []
    for cell in result["cells"]:
        key = f"{cell['priority_area']}/{cell['service_area']}"
        now, then = cell["themes"], before.get(key, [])
        scores, closest = _scores(then, now, m)
        item = CellFollowUp(cell["priority_area"], cell["service_area"])
        for j, theme in enumerate(now):
            column = scores[:, j] if then else np.zeros(0)
            if column.size and column.max() >= MERGE_THRESHOLD:
                i = int(column.argmax())
                wording = _texts(then[i])[int(closest[i, j])]
                item.recurring.append(
                    Recurring(theme["text"], wording, theme["groups"], then[i]["groups"])
                )
            else:
                item.new.append(theme["text"])
        for i, theme in enumerate(then):
            if not now or scores[i].max() < MERGE_THRESHOLD:
                item.dropped.append(theme["text"])
        out.append(item)
    return out


def group_emphases(
    view: CycleView,
    last: LastYear,
    group_key: str,
    result: dict[str, Any] | None = None,
    m: Matcher | None = None,
) -> dict[str, list[Emphasis]]:
    """What the group raised last year, per cell ("pa/sa"), in its own words; with this
    year's ``result``, whether it raised each again: whether its own findings of the point
    match, by the average link, its own findings of one of this year's themes. Empty when
    the group has no last year."""
    last_key = match_group(view, last, group_key)
    if last_key is None:
        return {}
    now = _cells(result) if result is not None else {}
    if result is not None and m is None:
        m = followup_matcher(view, result, last)
    out: dict[str, list[Emphasis]] = {}
    for key, themes in _cells(last.result).items():
        theirs = [t for t in themes if last_key in t["groups"]]
        if not theirs:
            continue
        again: list[bool | None] = [None] * len(theirs)
        if result is not None and m is not None:
            # The group's own findings of each year, not the whole themes: what other
            # groups said does not make a point this group's again.
            own_then = [_own(t, last_key) for t in theirs]
            own_now = [_own(t, group_key) for t in now.get(key, []) if group_key in t["groups"]]
            scores, _ = _scores(own_then, own_now, m)
            again = [
                bool(own_now) and bool(scores[i].max() >= MERGE_THRESHOLD)
                for i in range(len(theirs))
            ]
        out[key] = [
            Emphasis(_own_words(t, last_key), a) for t, a in zip(theirs, again, strict=True)
        ]
    return out


def _own(theme: dict[str, Any], group_key: str) -> dict[str, Any]:
    """The theme with only the group's own findings."""
    members = [x for x in theme["members"] if x["group"] == group_key]
    return {**theme, "members": members or theme["members"]}


def _own_words(theme: dict[str, Any], group_key: str) -> str:
    """The group's own finding of a theme (the coordinator's wording if it set one)."""
    if theme.get("wording_by"):
        return str(theme["text"])
    own = [m["text"] for m in theme["members"] if m["group"] == group_key]
    return own[0] if own else str(theme["text"])
