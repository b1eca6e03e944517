"""Memos (muistio) per municipality group and the regional summary (koonti).

Every render whose HTML differs from the newest version makes a new version with a content
hash. A bilingual region gets one document per language: the first language's file name
is named in that language (``2025-muistio-jamsa-keuruu.pdf``,
``2025-promemoria-jamsa-keuruu-sv.pdf``: see ``document_filename``), and each language is
a separate memo with its own approval.
A human approves or rejects a version; only an approved version can be dispatched, and an
approved version never changes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hytetu import db, findings, followup, indicator_report, reports
from hytetu.errors import StateError
from hytetu.feedback import PRIVATE_TYPES
from hytetu.language import Matcher
from hytetu.mail import slug
from hytetu.render import PdfJob, html_to_pdfs
from hytetu.safe import csv_row
from hytetu.state import CycleView, cycle_view

#: The order in which participants are listed, by the ``type`` of the notes' attendees.
ORGANISATION_TYPES = (
    "municipality",
    "employment_area",
    "ngo",
    "parish",
    "company",
    "county_unit",
    "public_body",
    "other",
)

_TITLES = {
    "fi": {"group": "Muistio", "summary": "Koonti"},
    "sv": {"group": "Promemoria", "summary": "Sammandrag"},
}


def document_filename(year: int, kind: str, name: str, language: str) -> str:
    """The file name of a memo (``kind`` "group") or summary, in its own language: the
    kind's word in that language (muistio / promemoria, koonti / sammandrag) and, for
    every language but Finnish, the language as a suffix, so a registry sees from the
    name alone which is which: ``2026-muistio-kust.pdf``, ``2026-promemoria-kust-sv.pdf``.
    Finnish names stay plain whatever the region's first language is."""
    word = _TITLES.get(language, _TITLES["fi"])[kind].lower()
    suffix = "" if language == "fi" else f"-{slug(language)}"
    return f"{year}-{word}-{slug(name)}{suffix}.pdf"


#: The annex's word in its file name, per language: ``2025-muistio-jamsa-liite.pdf``.
_ANNEX_WORD = {"fi": "liite", "sv": "bilaga"}
_ANNEX_TITLE = {"fi": "Liite", "sv": "Bilaga"}
#: The annex CSV's columns, per language (the county's own use: Excel in Finland reads a
#: semicolon-separated UTF-8 file with a byte order mark as it is).
_ANNEX_COLUMNS = {
    "fi": [
        "painopiste",
        "palvelualue",
        "vastaaja",
        "vastaajaryhmä",
        "saapunut",
        "myöhässä",
        "lainattu muistiossa",
        "palaute",
    ],
    "sv": [
        "prioritetsområde",
        "serviceområde",
        "respondent",
        "respondentgrupp",
        "inkommen",
        "försenad",
        "citerad i promemorian",
        "respons",
    ],
}
_YES = {"fi": ("kyllä", ""), "sv": ("ja", "")}


def annex_filename(memo_filename: str, language: str) -> str:
    """The annex's file name, from its memo's (``memos`` names the memo in its language):
    the annex word of that language before the language suffix, if the memo has one.
    ``2025-muistio-jamsa-keuruu.pdf`` → ``2025-muistio-jamsa-keuruu-liite.pdf``;
    ``…-jamsa-keuruu-sv.pdf`` → ``…-jamsa-keuruu-bilaga-sv.pdf``."""
    stem = memo_filename.removesuffix(".pdf")
    suffix = f"-{slug(language)}"
    tail = suffix if stem.endswith(suffix) else ""
    stem = stem.removesuffix(tail)
    return f"{stem}-{_ANNEX_WORD.get(language, _ANNEX_WORD['fi'])}{tail}.pdf"


@dataclass
class RenderResult:
    created: list[db.MemoVersion] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _base_context(view: CycleView, language: str) -> dict[str, Any]:
    pas, sas, cells = view.matrix()
    texts = view.texts(language)
    return {
        "language": language,
        "topic": texts["topic"],
        "agenda": texts["agenda"],
        "background": texts["background"],
        "contact": view.contact(language),
        "region": view.text(view.region.name, language),
        "cycle_title": view.text(view.cycle.title, language),
        "year": view.cycle.year,
        "plan_period": view.cycle.plan_period or "",
        "reference": view.cycle.reference,
        "priority_areas": [{"key": p.key, "name": view.text(p.name, language)} for p in pas],
        "service_areas": [{"key": s.key, "name": view.text(s.name, language)} for s in sas],
        "goals": {f"{k[0]}/{k[1]}": view.text(c.goal, language) for k, c in cells.items()},
        "backgrounds": {
            f"{k[0]}/{k[1]}": view.text(c.background, language) for k, c in cells.items()
        },
        "sender": view.sender_name(language),
        "sender_email": view.region.sender_email,
        "feedback_deadline": view.cycle.feedback_deadline,
    }


def participants_by_type(attendees: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Attendees grouped by organisation type, in ``ORGANISATION_TYPES`` order."""
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in attendees or []:
        kind = a.get("type") or "other"
        by_type[kind if kind in ORGANISATION_TYPES else "other"].append(
            {"organisation": a["organisation"], "count": int(a.get("count", 1))}
        )
    return [
        {
            "type": t,
            "organisations": by_type[t],
            "people": sum(o["count"] for o in by_type[t]),
        }
        for t in ORGANISATION_TYPES
        if by_type.get(t)
    ]


def feedback_matcher(view: CycleView) -> Matcher:
    """The compilation's matcher, its word weights from this cycle's feedback responses."""
    texts = view.session.scalars(
        select(db.FeedbackResponse.text).filter_by(cycle_id=view.cycle.id)
    ).all()
    return findings.matcher(view, list(texts))


def group_feedback(
    view: CycleView,
    result: dict[str, Any],
    group_key: str,
    language: str,
    m: Matcher | None = None,
) -> list[dict[str, Any]]:
    """The feedback of a group's municipalities (or sent for the group), per goal cell in
    the matrix's order and then the rest ("other"), as the compilation placed it: each
    cell's responses, their count, and the ``QUOTES`` that stand for them
    (``findings.representatives``)."""
    s = next(x for x in view.sessions() if x.group is not None and x.group.key == group_key)
    assert s.group is not None
    members = {mu.key for mu in s.group.municipalities}
    names = {mu.key: view.text(mu.name, language) for mu in s.group.municipalities}
    cell_of = {
        e["id"]: f"{cell['priority_area']}/{cell['service_area']}"
        for cell in result["cells"]
        for e in cell.get("feedback", [])
    }
    by_cell: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in view.session.scalars(
        select(db.FeedbackResponse)
        .filter_by(cycle_id=view.cycle.id)
        .order_by(db.FeedbackResponse.received_at, db.FeedbackResponse.id)
    ):
        if (r.late and not r.include_late) or not (
            r.municipality_key in members or r.group_key == group_key
        ):
            continue
        by_cell[cell_of.get(r.id, "")].append(
            {
                "id": r.id,
                # A resident's "organisation" may be their own name: never print it.
                "org": (
                    names.get(r.municipality_key or "", "")
                    if r.respondent_type in PRIVATE_TYPES
                    else r.respondent_org or names.get(r.municipality_key or "", "")
                ),
                "type": r.respondent_type or "other",
                "text": r.text,
                "received": view.local(r.received_at),
                "late": r.late,
                "quoted": False,
            }
        )
    if not by_cell:
        return []
    # The compilation chose the quotes (findings.QUOTES per cell and group); a compilation
    # stored before it did has none, and they are chosen here the same way.
    chosen_ids: dict[str, list[int]] = {
        f"{c['priority_area']}/{c['service_area']}": c["quotes"].get(group_key, [])
        for c in result["cells"]
        if "quotes" in c
    }
    if "unclassified_quotes" in result:
        chosen_ids[""] = result["unclassified_quotes"].get(group_key, [])
    pas, sas, _ = view.matrix()
    keys = [(f"{pa.key}/{sa.key}", pa, sa) for pa in pas for sa in sas]
    out = []
    for key, pa, sa in [*keys, ("", None, None)]:
        responses = by_cell.get(key)
        if not responses:
            continue
        if key in chosen_ids:
            ids = chosen_ids[key]
            chosen = [i for i, r in enumerate(responses) if r["id"] in ids]
        else:
            m = m or feedback_matcher(view)
            texts = [r["text"] for r in responses]
            chosen = findings.representatives(texts, m, findings.QUOTES)
        for i in chosen:
            responses[i]["quoted"] = True
        out.append(
            {
                "key": key,
                "priority_area": view.text(pa.name, language) if pa else None,
                "service_area": view.text(sa.name, language) if sa else None,
                "count": len(responses),
                "quotes": [responses[i] for i in sorted(chosen)],
                "responses": responses,
            }
        )
    return out


def annex_csv(feedback: list[dict[str, Any]], language: str) -> bytes:
    """The annex's responses as CSV: UTF-8 with a byte order mark, semicolons, CRLF, each
    cell protected from running as a spreadsheet formula (``safe.csv_row``)."""
    columns = _ANNEX_COLUMNS.get(language, _ANNEX_COLUMNS["fi"])
    yes, no = _YES.get(language, _YES["fi"])
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns, delimiter=";")
    writer.writeheader()
    for section in feedback:
        for r in section["responses"]:
            values = [
                section["priority_area"] or "",
                section["service_area"] or "",
                r["org"],
                r["type"],
                r["received"].strftime("%Y-%m-%d %H:%M"),
                yes if r["late"] else no,
                yes if r["quoted"] else no,
                r["text"],
            ]
            writer.writerow(csv_row(dict(zip(columns, values, strict=True))))
    return buffer.getvalue().encode("utf-8-sig")


def group_memo_context(
    view: CycleView,
    result: dict[str, Any],
    group_key: str,
    language: str | None = None,
    m: Matcher | None = None,
) -> dict[str, Any]:
    language = language or view.language
    s = next(x for x in view.sessions() if x.group is not None and x.group.key == group_key)
    assert s.group is not None
    discussion: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for cell in result["cells"]:
        for theme in cell["themes"]:
            own = [m["text"] for m in theme["members"] if m["group"] == group_key]
            if not own:
                continue
            # The group's own words, unless the coordinator worded the theme on the review
            # page: then that wording, once, in every group's memo. Only what the
            # compilation shows is said of the other groups: that they raised the same point
            # (``shared``: how many), never that they did not (a point worded otherwise
            # elsewhere may have been missed).
            lines = [theme["text"]] if theme.get("wording_by") else list(dict.fromkeys(own))
            shared = len(set(theme["groups"]) - {group_key})
            for text in lines:
                discussion[f"{cell['priority_area']}/{cell['service_area']}"].append(
                    {"text": text, "member": own[0] if text not in own else text, "shared": shared}
                )
    feedback = group_feedback(view, result, group_key, language, m)
    return _base_context(view, language) | {
        "group": view.text(s.group.name, language),
        "municipalities": [view.text(m.name, language) for m in s.group.municipalities],
        "start": view.local(s.start),
        "end": view.local(s.end),
        "online": bool(s.online_url),
        "place": s.place,
        "attendees": s.attendees or [],
        "participants": participants_by_type(s.attendees),
        "discussion": dict(discussion),
        "shared_count": sum(1 for v in discussion.values() for f in v if f["shared"]),
        "general": [g["text"] for g in result["general"] if g["group"] == group_key],
        "stakeholder_remarks": [
            g["text"] for g in result["stakeholders"] if g["group"] == group_key
        ],
        "feedback": feedback,
        "followup": group_followup(view, result, group_key),
        "indicators": indicator_report.group_panels(view, s.group, language),
    }


def group_followup(
    view: CycleView, result: dict[str, Any] | None, group_key: str
) -> dict[str, Any] | None:
    """What the group raised last year per cell ("pa/sa"), each marked whether raised again
    (with this year's ``result``; the invitation has none yet): None for a first cycle or a
    group with no last year (``hytetu.followup``)."""
    last = followup.last_year(view)
    if last is None:
        return None
    emphases = followup.group_emphases(view, last, group_key, result)
    if not emphases:
        return None
    items = {k: [{"text": e.text, "again": e.again} for e in v] for k, v in emphases.items()}
    flat = [e for v in emphases.values() for e in v]
    return {
        "year": last.year,
        "cells": items,
        "total": len(flat),
        "again": sum(1 for e in flat if e.again),
    }


def summary_followup(view: CycleView, result: dict[str, Any]) -> dict[str, Any] | None:
    """Per cell, the themes that recur, are new or were dropped since last year; None for
    a first cycle."""
    last = followup.last_year(view)
    if last is None:
        return None
    cells = followup.compare(view, result, last)
    return {
        "year": last.year,
        "cells": {
            c.key: {
                "recurring": [{"text": r.text, "last_text": r.last_text} for r in c.recurring],
                "new": c.new,
                "dropped": c.dropped,
            }
            for c in cells
            if c.recurring or c.new or c.dropped
        },
        "totals": {
            "recurring": sum(len(c.recurring) for c in cells),
            "new": sum(len(c.new) for c in cells),
            "dropped": sum(len(c.dropped) for c in cells),
        },
    }


def summary_context(
    view: CycleView, result: dict[str, Any], language: str | None = None
) -> dict[str, Any]:
    language = language or view.language
    common: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for cell in result["cells"]:
        for theme in cell["themes"]:
            if theme["common"]:
                common[f"{cell['priority_area']}/{cell['service_area']}"].append(
                    {"text": theme["text"], "count": len(theme["groups"])}
                )
    sessions = {s.group.key: s for s in view.sessions() if s.group is not None}
    groups = []
    for g in result["groups"]:
        s = sessions.get(g["key"])
        items = result["specific"].get(g["key"], [])
        by_pa: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for i in items:
            by_pa[i["priority_area"]].append(i)
        groups.append(
            {
                "key": g["key"],
                "name": view.text(s.group.name, language) if s and s.group else g["name"],
                "date": view.local(s.start) if s else None,
                "imported": g["imported"],
                "items": items,
                "by_priority_area": dict(by_pa),
            }
        )
    return _base_context(view, language) | {
        "common": dict(common),
        "threshold": result["threshold"],
        "general": sorted({g["text"] for g in result["general"]}),
        "groups": groups,
        "stakeholder_remarks": sorted({g["text"] for g in result["stakeholders"]}),
        "forum": result["forum"],
        "feedback": result["feedback"],
        "followup": summary_followup(view, result),
        "indicator_tables": indicator_report.summary_tables(view, language),
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


def document_title(view: CycleView, memo: db.Memo) -> str:
    """A memo's name in its own language: "Muistio: <group>" or "Koonti: <cycle title>"."""
    language = memo_language(view, memo)
    titles = _TITLES.get(language, _TITLES["fi"])
    if memo.group is not None:
        return f"{titles['group']}: {view.text(memo.group.name, language)}"
    return f"{titles['summary']}: {view.text(view.cycle.title, language)}"


@dataclass
class _Annex:
    """A group memo's annex: its responses verbatim, as HTML (for the PDF) and CSV."""

    html: str
    filename: str
    title: str
    csv: bytes


@dataclass
class _Document:
    memo: db.Memo
    html: str
    filename: str
    title: str
    language: str
    annex: _Annex | None = None

    @property
    def digest(self) -> str:
        """The content hash of a version: the memo's HTML and its annex's, if any."""
        content = self.html if self.annex is None else self.html + "\0" + self.annex.html
        return hashlib.sha256(content.encode()).hexdigest()


def _documents(view: CycleView, result: dict[str, Any]) -> list[_Document]:
    """Every document of the compilation, in every language of the region."""
    sessions = {s.group.key: s for s in view.sessions() if s.group is not None}
    docs = []
    for language in view.region.languages:
        suffix = "" if language == view.language else f"-{slug(language)}"
        for g in result["groups"]:
            if not g["imported"]:
                continue
            s = sessions[g["key"]]
            filename = document_filename(view.cycle.year, "group", g["key"], language)
            context = group_memo_context(view, result, g["key"], language) | {
                "annex_filename": annex_filename(filename, language)
            }
            memo = _memo(view, f"memo-{g['key']}{suffix}", "group", s.group)
            title = document_title(view, memo)
            annex = None
            if context["feedback"]:
                annex = _Annex(
                    view.render("annex.html.j2", language, context),
                    context["annex_filename"],
                    f"{_ANNEX_TITLE.get(language, _ANNEX_TITLE['fi'])}: {title}",
                    annex_csv(context["feedback"], language),
                )
            docs.append(
                _Document(
                    memo,
                    view.render("memo.html.j2", language, context),
                    filename,
                    title,
                    language,
                    annex,
                )
            )
        context = summary_context(view, result, language)
        summary = _memo(view, f"summary{suffix}", "summary", None)
        docs.append(
            _Document(
                summary,
                view.render("summary.html.j2", language, context),
                document_filename(
                    view.cycle.year, "summary", view.text(view.region.name, language), language
                ),
                document_title(view, summary),
                language,
            )
        )
    return docs


def render_memos(
    view: CycleView, compilation: db.Compilation, workers: int | None = None
) -> RenderResult:
    """Render every group memo and the regional summary from ``compilation``.

    The HTML of every document is rendered first; only documents whose content changed
    become PDFs, in ``workers`` processes (default: ``hytetu.render.render_workers()``).
    """
    out = RenderResult()
    changed: list[tuple[_Document, str]] = []
    for doc in _documents(view, compilation.result):
        digest = doc.digest
        if doc.memo.versions and doc.memo.versions[-1].content_hash == digest:
            out.unchanged.append(doc.memo.key)
        else:
            changed.append((doc, digest))
    author = view.text(view.region.name)
    jobs = []
    for doc, _ in changed:
        by = view.text(view.region.name, doc.language) or author
        subject = view.text(view.cycle.title, doc.language)
        jobs.append(PdfJob(doc.html, doc.title, doc.language, by, subject))
        if doc.annex is not None:
            jobs.append(PdfJob(doc.annex.html, doc.annex.title, doc.language, by, subject))
    pdfs = iter(html_to_pdfs(jobs, workers))
    for doc, digest in changed:
        pdf = next(pdfs)
        annex_pdf = next(pdfs) if doc.annex is not None else None
        number = len(doc.memo.versions) + 1
        filename = doc.filename
        annex_name = doc.annex.filename if doc.annex is not None else None
        if number > 1:
            filename = filename.replace(".pdf", f"-v{number}.pdf")
            annex_name = annex_name and annex_name.replace(".pdf", f"-v{number}.pdf")
        version = db.MemoVersion(
            memo=doc.memo,
            number=number,
            content_hash=digest,
            compilation_id=compilation.id,
            html=doc.html,
            pdf=pdf,
            filename=filename,
            annex_filename=annex_name,
            annex_pdf=annex_pdf,
            annex_csv=doc.annex.csv if doc.annex is not None else None,
            status="draft",
        )
        view.session.add(version)
        view.session.flush()
        out.created.append(version)
    return out


def latest_versions(view: CycleView) -> list[db.MemoVersion]:
    memos = view.session.scalars(
        select(db.Memo).filter_by(cycle_id=view.cycle.id).order_by(db.Memo.key)
    )
    return [m.versions[-1] for m in memos if m.versions]


def drafts(view: CycleView) -> list[db.MemoVersion]:
    """The newest version of each memo that still waits for a decision."""
    return [v for v in latest_versions(view) if v.status == "draft"]


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


@dataclass
class Decision:
    """A reviewer's decision on one version: approve (True), reject (False) or leave (None)."""

    version_id: int
    approve: bool | None
    comment: str | None = None


def apply_review(
    view: CycleView,
    decisions: list[Decision],
    *,
    actor: str,
    approve_all: bool = False,
    comment: str | None = None,
    at: datetime | None = None,
) -> list[db.MemoVersion]:
    """Record a review: each decision, or with ``approve_all`` every draft not decided
    otherwise. A decision's own comment wins over the review's common ``comment``."""
    explicit = {d.version_id: d for d in decisions if d.approve is not None}
    if approve_all:
        for v in drafts(view):
            explicit.setdefault(v.id, Decision(v.id, True))
    done = []
    for d in explicit.values():
        done.append(
            decide(
                view,
                d.version_id,
                approve=bool(d.approve),
                actor=actor,
                comment=d.comment or comment,
                at=at,
            )
        )
    return done


# --- Markdown for review -------------------------------------------------------------


def _md_text(text: str) -> str:
    """Text as Markdown that shows it literally: no HTML, no emphasis, no links."""
    text = escape(text, quote=False)
    return re.sub(r"([\\`*_\[\]#|])", r"\\\1", text)


class _Markdown(HTMLParser):
    """A small HTML to Markdown converter for the documents' own markup."""

    _SKIP = {"head", "style", "script", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self.line: list[str] = []
        self.lists: list[list[int | str]] = []  # [kind, counter]
        self.skip = 0
        self.table: list[list[tuple[str, str]]] | None = None
        self.cell: tuple[str, list[str]] | None = None

    def _flush(self, prefix: str = "") -> None:
        text = re.sub(r"[ \t\xa0]+", " ", "".join(self.line)).strip()
        text = re.sub(r" *\n *", "  \n", text)
        self.line = []
        if text:
            self.blocks.append(prefix + text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skip += 1
            return
        if self.skip:
            return
        if self.cell is not None:
            if tag == "li" and self.cell[1]:
                self.cell[1].append("; ")
            elif tag == "br":
                self.cell[1].append(" ")
            return
        if tag in ("h1", "h2", "h3", "h4", "p", "ul", "ol", "table", "div", "section"):
            self._flush()
        if tag in ("ul", "ol"):
            self.lists.append([tag, 0])
        elif tag == "li":
            self._flush()
        elif tag == "br":
            self.line.append("\n")
        elif tag in ("strong", "b"):
            self.line.append("**")
        elif tag in ("em", "i"):
            self.line.append("*")
        elif tag == "table":
            self.table = []
        elif tag == "tr" and self.table is not None:
            self.table.append([])
        elif tag in ("th", "td") and self.table is not None:
            self.cell = (tag, [])

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skip = max(0, self.skip - 1)
            return
        if self.skip:
            return
        if self.cell is not None:
            if tag == self.cell[0] and self.table:
                text = re.sub(r"\s+", " ", "".join(self.cell[1])).strip()
                self.table[-1].append((self.cell[0], text))
                self.cell = None
            return
        if tag in ("h1", "h2", "h3", "h4"):
            self._flush("#" * int(tag[1]) + " ")
        elif tag in ("p", "div", "section"):
            self._flush()
        elif tag == "li" and self.lists:
            kind = self.lists[-1]
            kind[1] = int(kind[1]) + 1
            marker = f"{kind[1]}. " if kind[0] == "ol" else "- "
            self._flush("  " * (len(self.lists) - 1) + marker)
        elif tag in ("ul", "ol") and self.lists:
            self.lists.pop()
            self._merge_list()
        elif tag in ("strong", "b"):
            self.line.append("**")
        elif tag in ("em", "i"):
            self.line.append("*")
        elif tag == "table" and self.table is not None:
            self._table(self.table)
            self.table = None

    def _merge_list(self) -> None:
        """List items are one block, not a paragraph each."""
        items: list[str] = []
        while self.blocks and re.match(r"^\s*(- |\d+\. )", self.blocks[-1]):
            items.insert(0, self.blocks.pop())
        if items:
            self.blocks.append("\n".join(items))

    def _table(self, rows: list[list[tuple[str, str]]]) -> None:
        rows = [r for r in rows if r]
        if not rows:
            return
        if all(len(r) == 2 and r[0][0] == "th" for r in rows):
            self.blocks.append("\n".join(f"- **{k[1]}**: {v[1]}" for k, v in rows))
            return
        width = max(len(r) for r in rows)
        lines = []
        for i, r in enumerate(rows):
            cells = [c[1] or " " for c in r] + [" "] * (width - len(r))
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
            if i == 0:
                lines.append("|" + " --- |" * width)
        self.blocks.append("\n".join(lines))

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.cell is not None:
            self.cell[1].append(_md_text(data))
        else:
            self.line.append(_md_text(data))

    def result(self) -> str:
        self._flush()
        return "\n\n".join(self.blocks) + "\n"


def html_to_markdown(html: str) -> str:
    """The document's text as readable Markdown (headings, lists, tables, emphasis)."""
    parser = _Markdown()
    parser.feed(html)
    parser.close()
    return parser.result()


def review_markdown(
    version: db.MemoVersion, saved_at: str | None = None, region: str | None = None
) -> str:
    """What the coordinator reads in the Prefect UI before approving one version: links
    that open its PDF and HTML in the browser (through the review page, see
    ``reports.document_url``) and its text."""
    pdf = reports.document_url(version.id, version.filename, region)
    page = reports.document_url(version.id, version.filename.removesuffix(".pdf") + ".html", region)
    head = [
        f"**{version.filename}** · versio / version {version.number} · {version.status} · "
        f"sha256 `{version.content_hash[:12]}`",
        f"Avaa / Öppna: [PDF]({pdf}) · [HTML]({page})",
    ]
    if saved_at:
        head.append(f"Tallennettu myös / Sparad även: `{saved_at}`")
    if version.annex_filename:
        head.append(
            "Liite, hyväksytään muistion mukana / Bilaga, godkänns med promemorian "
            f"(palautteet sanatarkasti / responserna ordagrant): `{version.annex_filename}`, "
            f"`{version.annex_filename.replace('.pdf', '.csv')}`"
        )
    return "\n\n".join(head) + "\n\n---\n\n" + html_to_markdown(version.html)


# --- Review: what the flows and the CLI call ----------------------------------------


def artifact_key(version: db.MemoVersion) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes) for a memo's review."""
    return "memo-" + slug(version.filename.removesuffix(".pdf"), 100)


def prepare_review(
    out: Path, url: str | None = None, region: str | None = None
) -> list[dict[str, Any]]:
    """Every draft waiting for a decision, with its PDF written under ``out/memos`` and its
    review Markdown. Plain dicts, for artifacts and the review form."""
    items: list[dict[str, Any]] = []
    with db.session_scope(url) as s:
        view = cycle_view(s, region)
        folder = out / "memos"
        for v in drafts(view):
            folder.mkdir(parents=True, exist_ok=True)
            path = (folder / v.filename).resolve()
            if not path.exists() or path.read_bytes() != v.pdf:
                path.write_bytes(v.pdf)
            items.append(
                {
                    "version_id": v.id,
                    "filename": v.filename,
                    "number": v.number,
                    "pdf": str(path),
                    "key": reports.artifact_key(artifact_key(v), region),
                    "markdown": review_markdown(v, str(path), region),
                }
            )
    return items


def record_review(
    decisions: list[Decision],
    *,
    actor: str,
    approve_all: bool = False,
    comment: str | None = None,
    url: str | None = None,
    at: datetime | None = None,
    region: str | None = None,
) -> dict[str, list[str]]:
    """``apply_review`` in one transaction; returns the file names approved and rejected."""
    with db.session_scope(url) as s:
        done = apply_review(
            cycle_view(s, region),
            decisions,
            actor=actor,
            approve_all=approve_all,
            comment=comment,
            at=at,
        )
        return {
            "approved": [v.filename for v in done if v.status == "approved"],
            "rejected": [v.filename for v in done if v.status == "rejected"],
        }


def memo_language(view: CycleView, memo: db.Memo) -> str:
    """The language a memo is written in: a suffix ``-<language>`` on its key, else the
    region's first language (for dispatch: the cover letter's language)."""
    for language in view.region.languages[1:]:
        if memo.key.endswith(f"-{slug(language)}"):
            return language
    return view.language
