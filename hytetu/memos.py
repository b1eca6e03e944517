"""Memos (muistio) per municipality group and the regional summary (koonti).

Every render whose HTML differs from the newest version makes a new version with a content
hash. A human approves or rejects a version; only an approved version can be dispatched,
and an approved version never changes.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from hytetu import db
from hytetu.errors import StateError
from hytetu.mail import slug
from hytetu.render import html_to_pdf
from hytetu.state import CycleView


@dataclass
class RenderResult:
    created: list[db.MemoVersion] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _matrix_context(view: CycleView) -> tuple[list[dict], list[dict]]:
    pas, sas, cells = view.matrix()
    return (
        [{"key": p.key, "name": view.text(p.name)} for p in pas],
        [{"key": s.key, "name": view.text(s.name)} for s in sas],
    )


def _base_context(view: CycleView) -> dict[str, Any]:
    pas, sas = _matrix_context(view)
    _, _, cells = view.matrix()
    return {
        "region": view.text(view.region.name),
        "cycle_title": view.text(view.cycle.title),
        "year": view.cycle.year,
        "plan_period": view.cycle.plan_period or "",
        "reference": view.cycle.reference,
        "priority_areas": pas,
        "service_areas": sas,
        "goals": {f"{k[0]}/{k[1]}": view.text(c.goal) for k, c in cells.items()},
        "sender": view.region.sender_name,
        "sender_email": view.region.sender_email,
        "feedback_deadline": view.cycle.feedback_deadline,
    }


def group_memo_context(view: CycleView, result: dict[str, Any], group_key: str) -> dict[str, Any]:
    s = next(x for x in view.sessions() if x.group is not None and x.group.key == group_key)
    assert s.group is not None
    discussion: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for cell in result["cells"]:
        for theme in cell["themes"]:
            for m in theme["members"]:
                if m["group"] == group_key:
                    discussion[f"{cell['priority_area']}/{cell['service_area']}"].append(
                        {"text": m["text"], "specific": theme["groups"] == [group_key]}
                    )
    members = {m.key for m in s.group.municipalities}
    feedback = [
        {"org": r.respondent_org or "", "text": r.text}
        for r in view.session.scalars(
            select(db.FeedbackResponse)
            .filter_by(cycle_id=view.cycle.id, late=False)
            .order_by(db.FeedbackResponse.received_at)
        )
        if r.municipality_key in members or r.group_key == group_key
    ]
    return _base_context(view) | {
        "group": view.text(s.group.name),
        "municipalities": [view.text(m.name) for m in s.group.municipalities],
        "start": view.local(s.start),
        "end": view.local(s.end),
        "online": bool(s.online_url),
        "place": s.place,
        "attendees": s.attendees,
        "discussion": dict(discussion),
        "general": [g["text"] for g in result["general"] if g["group"] == group_key],
        "stakeholder_remarks": [
            g["text"] for g in result["stakeholders"] if g["group"] == group_key
        ],
        "feedback": feedback,
    }


def summary_context(view: CycleView, result: dict[str, Any]) -> dict[str, Any]:
    common: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for cell in result["cells"]:
        for theme in cell["themes"]:
            if theme["common"]:
                common[f"{cell['priority_area']}/{cell['service_area']}"].append(
                    {"text": theme["text"], "count": len(theme["groups"])}
                )
    names = {g["key"]: g["name"] for g in result["groups"]}
    return _base_context(view) | {
        "common": dict(common),
        "threshold": result["threshold"],
        "general": sorted({g["text"] for g in result["general"]}),
        "groups": [{"name": names[k], "items": items} for k, items in result["specific"].items()],
        "stakeholder_remarks": sorted({g["text"] for g in result["stakeholders"]}),
        "forum": result["forum"],
        "feedback": result["feedback"],
    }


def _memo(view: CycleView, key: str, kind: str, group: db.MunicipalityGroup | None) -> db.Memo:
    memo = view.session.scalars(
        select(db.Memo).filter_by(cycle_id=view.cycle.id, key=key)
    ).one_or_none()
    if memo is None:
        memo = db.Memo(cycle_id=view.cycle.id, key=key, kind=kind, group=group)
        view.session.add(memo)
        view.session.flush()
    return memo


def _version(
    view: CycleView,
    memo: db.Memo,
    html: str,
    compilation: db.Compilation,
    filename: str,
    title: str,
    out: RenderResult,
) -> None:
    digest = hashlib.sha256(html.encode()).hexdigest()
    if memo.versions and memo.versions[-1].content_hash == digest:
        out.unchanged.append(memo.key)
        return
    number = len(memo.versions) + 1
    if number > 1:
        filename = filename.replace(".pdf", f"-v{number}.pdf")
    pdf = html_to_pdf(
        html,
        title=title,
        language=view.language,
        author=view.text(view.region.name),
        subject=view.text(view.cycle.title),
    )
    version = db.MemoVersion(
        memo=memo,
        number=number,
        content_hash=digest,
        compilation_id=compilation.id,
        html=html,
        pdf=pdf,
        filename=filename,
        status="draft",
    )
    view.session.add(version)
    view.session.flush()
    out.created.append(version)


def render_memos(view: CycleView, compilation: db.Compilation) -> RenderResult:
    """Render every group memo and the regional summary from ``compilation``."""
    out = RenderResult()
    result = compilation.result
    language = view.language
    sessions = {s.group.key: s for s in view.sessions() if s.group is not None}
    for g in result["groups"]:
        if not g["imported"]:
            continue
        s = sessions[g["key"]]
        context = group_memo_context(view, result, g["key"])
        html = view.render("memo.html.j2", language, context)
        title = f"{'Muistio' if language == 'fi' else 'Promemoria'}: {g['name']}"
        _version(
            view,
            _memo(view, f"memo-{g['key']}", "group", s.group),
            html,
            compilation,
            f"{view.cycle.year}-muistio-{slug(g['key'])}.pdf",
            title,
            out,
        )
    context = summary_context(view, result)
    html = view.render("summary.html.j2", language, context)
    _version(
        view,
        _memo(view, "summary", "summary", None),
        html,
        compilation,
        f"{view.cycle.year}-koonti-{slug(view.text(view.region.name))}.pdf",
        view.text(view.cycle.title),
        out,
    )
    return out


def latest_versions(view: CycleView) -> list[db.MemoVersion]:
    memos = view.session.scalars(
        select(db.Memo).filter_by(cycle_id=view.cycle.id).order_by(db.Memo.key)
    )
    return [m.versions[-1] for m in memos if m.versions]


def decide(
    view: CycleView,
    version_id: int,
    *,
    approve: bool,
    actor: str,
    comment: str | None = None,
    at: datetime | None = None,
) -> db.MemoVersion:
    """Approve or reject a draft version. Approved versions are frozen."""
    version = view.session.get(db.MemoVersion, version_id)
    if version is None or version.memo.cycle_id != view.cycle.id:
        raise StateError(f"no memo version {version_id} in cycle {view.cycle.year}")
    if version.status != "draft":
        raise StateError(
            f"{version.filename} is already {version.status}; render a new version to change it"
        )
    if version is not version.memo.versions[-1]:
        raise StateError(f"{version.filename} is not the newest version of its memo")
    version.status = "approved" if approve else "rejected"
    version.decided_at = at or db.utcnow()
    version.decided_by = actor
    version.comment = comment
    db.audit(
        view.session,
        "memo.approve" if approve else "memo.reject",
        version.filename,
        actor,
        version=version.id,
        comment=comment,
    )
    return version
