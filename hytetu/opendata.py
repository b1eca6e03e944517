"""Open data (avoin data): a cycle's public compilation as JSON and CSV for an open-data
portal (avoindata.fi): the goal matrix, the themes per cell with the groups that raised
them, each group's emphases and the number of feedback responses per cell.

Never personal data: no contact, no respondent's organisation, e-mail or words (a feedback
response is personal data here: only counts of them are published), no attendee list.
The themes are the compilation's wordings of the session notes, which the memos already
publish to the municipalities' registries. The schema is docs/open-data.schema.json,
described in docs/open-data.md; ``SCHEMA_VERSION`` changes with it.

CSV: UTF-8 with a byte order mark and ``;`` between fields, as Excel in a Finnish or
Swedish locale opens it without an import dialogue (the comma is the decimal separator
there); every text is protected against formula injection (``safe.csv_cell``).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hytetu import db
from hytetu.findings import latest_compilation
from hytetu.state import CycleView

SCHEMA_VERSION = "hytetu-open-data/1"
#: The CSV files and their columns (docs/open-data.md); indicators add their own columns.
CSV_FIELDS = {
    "themes": [
        "region",
        "year",
        "priority_area",
        "service_area",
        "theme",
        "groups",
        "group_count",
        "common",
    ],
    "emphases": ["region", "year", "group", "priority_area", "service_area", "emphasis"],
    "feedback_counts": [
        "region",
        "year",
        "priority_area",
        "service_area",
        "themes",
        "common_themes",
        "feedback_responses",
    ],
}


def _compilation(view: CycleView) -> tuple[db.Compilation | None, str]:
    """The compilation the approved memos came from ("approved"), else the newest
    ("draft")."""
    approved = view.session.scalars(
        select(db.MemoVersion.compilation_id)
        .join(db.Memo)
        .where(db.Memo.cycle_id == view.cycle.id, db.MemoVersion.status == "approved")
        .order_by(db.MemoVersion.id.desc())
        .limit(1)
    ).first()
    if approved is not None:
        return view.session.get(db.Compilation, approved), "approved"
    return latest_compilation(view), "draft"


def indicator_rows(view: CycleView) -> list[dict[str, Any]]:
    """The cycle's indicator values, one row per indicator, area and year (a missing
    value has no row). ``area`` is a municipality's key, ``county`` or ``country``."""
    from hytetu.indicator_report import cycle_indicators

    rows: list[dict[str, Any]] = []
    for ind in cycle_indicators(view):
        for v in sorted(ind.values, key=lambda v: (v.area, v.year)):
            rows.append(
                {
                    "indicator": ind.key,
                    "source": ind.source,
                    "sotkanet_id": ind.sotkanet_id,
                    "label": view.text(ind.label),
                    "unit": view.text(ind.unit) if ind.unit else "",
                    "better": ind.better,
                    "cells": " ".join(ind.cells),
                    "area": v.area,
                    "value_year": v.year,  # the statistics' year; "year" is the cycle's
                    "value": v.value,
                }
            )
    return rows


def public_compilation(view: CycleView) -> dict[str, Any]:
    """The cycle's open data as one JSON-ready dict (docs/open-data.schema.json)."""
    compilation, status = _compilation(view)
    if compilation is None:
        from hytetu.errors import StateError

        raise StateError(
            f"cycle {view.cycle.year} has no compilation yet: nothing to export "
            "(the compile phase runs after the feedback window closes)"
        )
    result = compilation.result
    pas, sas, cells = view.matrix()
    languages = list(view.region.languages)
    sessions = {s.group.key: s for s in view.sessions() if s.group is not None}
    feedback = result.get("feedback", {})
    per_cell = feedback.get("per_cell", {})
    out_cells = []
    for cell in result["cells"]:
        key = (cell["priority_area"], cell["service_area"])
        goal = cells.get(key)
        out_cells.append(
            {
                "priority_area": key[0],
                "service_area": key[1],
                "goal": dict(goal.goal) if goal is not None else {},
                "themes": [
                    {
                        "text": t["text"],
                        "groups": sorted(t["groups"]),
                        "group_count": len(t["groups"]),
                        "common": bool(t["common"]),
                    }
                    for t in cell["themes"]
                ],
                "feedback_responses": int(per_cell.get(f"{key[0]}/{key[1]}", 0)),
            }
        )
    groups = []
    for g in result["groups"]:
        s = sessions.get(g["key"])
        groups.append(
            {
                "key": g["key"],
                "name": dict(s.group.name) if s and s.group else {languages[0]: g["name"]},
                "municipalities": sorted(m.key for m in s.group.municipalities)
                if s and s.group
                else [],
                "session_date": view.local(s.start).date().isoformat() if s else None,
                "notes_imported": bool(g["imported"]),
                "emphases": [
                    {
                        "priority_area": i["priority_area"],
                        "service_area": i["service_area"],
                        "text": i["text"],
                    }
                    for i in result["specific"].get(g["key"], [])
                ],
            }
        )
    return {
        "schema": SCHEMA_VERSION,
        "region": {"key": view.region.key, "name": dict(view.region.name)},
        "languages": languages,
        "cycle": {
            "year": view.cycle.year,
            "title": dict(view.cycle.title),
            "plan_period": view.cycle.plan_period,
            "reference": view.cycle.reference,
        },
        "status": status,
        "compiled_at": compilation.created_at.isoformat(),
        "common_threshold": int(result["threshold"]),
        "priority_areas": [{"key": p.key, "name": dict(p.name)} for p in pas],
        "service_areas": [{"key": s.key, "name": dict(s.name)} for s in sas],
        "cells": out_cells,
        "groups": groups,
        "feedback": {
            "total": int(feedback.get("total", 0)),
            "on_time": int(feedback.get("on_time", 0)),
            "late": int(feedback.get("late", 0)),
            "unclassified": int(feedback.get("unclassified", 0)),
            "per_respondent_type": {
                k: int(v) for k, v in feedback.get("per_respondent_type", {}).items()
            },
        },
        "indicators": indicator_rows(view),
    }


def csv_tables(data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The JSON's tables, flat: one row per theme, emphasis, cell and indicator value."""
    year = data["cycle"]["year"]
    region = data["region"]["key"]
    themes = [
        {
            "region": region,
            "year": year,
            "priority_area": c["priority_area"],
            "service_area": c["service_area"],
            "theme": t["text"],
            "groups": " ".join(t["groups"]),
            "group_count": t["group_count"],
            "common": "1" if t["common"] else "0",
        }
        for c in data["cells"]
        for t in c["themes"]
    ]
    emphases = [
        {
            "region": region,
            "year": year,
            "group": g["key"],
            "priority_area": e["priority_area"],
            "service_area": e["service_area"],
            "emphasis": e["text"],
        }
        for g in data["groups"]
        for e in g["emphases"]
    ]
    counts = [
        {
            "region": region,
            "year": year,
            "priority_area": c["priority_area"],
            "service_area": c["service_area"],
            "themes": len(c["themes"]),
            "common_themes": sum(1 for t in c["themes"] if t["common"]),
            "feedback_responses": c["feedback_responses"],
        }
        for c in data["cells"]
    ]
    return {
        "themes": themes,
        "emphases": emphases,
        "feedback_counts": counts,
        "indicators": [{"region": region, "year": year, **r} for r in data["indicators"]],
    }


def to_csv(rows: list[dict[str, Any]], fields: list[str]) -> bytes:
    from hytetu.safe import csv_row

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, delimiter=";", lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(csv_row(row))
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def write_export(data: dict[str, Any], folder: Path) -> list[Path]:
    """The JSON and the CSV files into ``folder`` (created); the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{data['region']['key']}-{data['cycle']['year']}"
    written = [folder / f"{stem}.json"]
    written[0].write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    for name, rows in csv_tables(data).items():
        fields = CSV_FIELDS.get(name) or (list(rows[0]) if rows else [])
        if not fields:
            continue  # no indicators: no file
        path = folder / f"{stem}-{name}.csv"
        path.write_bytes(to_csv(rows, fields))
        written.append(path)
    return written


def export_cycle(
    out: Path, region: str | None = None, year: int | None = None, url: str | None = None
) -> tuple[dict[str, Any], list[Path]]:
    """The cycle's open data into ``out/open-data/``: (the data, the files written)."""
    from hytetu.state import cycle_view

    with db.session_scope(url) as s:
        data = public_compilation(cycle_view(s, region, year))
    return data, write_export(data, out / "open-data")
