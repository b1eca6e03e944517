"""What the memos show of the indicators: per goal cell, the group's municipalities'
latest values and trend beside the county's and the country's, with a chart; and the
summary's table per priority area. Missing values stay missing (None; the templates show
"–"), never 0. Words are the templates'; only the charts' alt texts are made here."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from hytetu import db
from hytetu.charts import Line, data_uri, line_chart
from hytetu.indicators import COUNTRY, COUNTY
from hytetu.state import CycleView

#: A change or a difference under this share of the value is "about the same".
SAME = 0.03

_ALT = {
    "fi": {
        "chart": "Viivakuvio",
        "years": "vuosina",
        "missing": "ei tietoa",
        "county": "hyvinvointialue",
        "country": "Koko maa",
        "source": "Lähde: THL, Sotkanet",
        "hyte": "Lähde: THL, HYTE-kerroin",
    },
    "sv": {
        "chart": "Linjediagram",
        "years": "åren",
        "missing": "uppgift saknas",
        "county": "välfärdsområdet",
        "country": "Hela landet",
        "source": "Källa: THL, Sotkanet",
        "hyte": "Källa: THL, HYTE-koefficienten",
    },
}

#: Charts made in this process, by (indicator id, areas, language, data): a render makes
#: each (indicator, group) chart once, however many documents show it.
_charts: dict[tuple[Any, ...], str] = {}


def _words(language: str) -> dict[str, str]:
    return _ALT.get(language, _ALT["fi"])


def number(value: float | None, decimals: int) -> str | None:
    """``value`` as a Finnish or Swedish reader writes it (decimal comma); None stays
    None (missing)."""
    if value is None:
        return None
    return f"{value:.{decimals}f}".replace(".", ",").replace("-", "\u2212")


def _compare(a: float | None, b: float | None, better: str) -> str | None:
    """'better', 'worse' or 'same' for ``a`` against ``b``; None when either is missing."""
    if a is None or b is None:
        return None
    scale = max(abs(a), abs(b))
    if scale == 0 or abs(a - b) / scale < SAME:
        return "same"
    return "better" if (a < b) == (better == "lower") else "worse"


def cycle_indicators(view: CycleView) -> list[db.Indicator]:
    """The cycle's indicators in cycle.yaml's order, with their values loaded."""
    return list(
        view.session.scalars(
            select(db.Indicator)
            .filter_by(cycle_id=view.cycle.id)
            .options(selectinload(db.Indicator.values))
            .order_by(db.Indicator.position)
        )
    )


def _series(indicator: db.Indicator) -> tuple[list[int], dict[str, dict[int, float]]]:
    by_area: dict[str, dict[int, float]] = defaultdict(dict)
    for v in indicator.values:
        by_area[v.area][v.year] = v.value
    years = sorted({v.year for v in indicator.values})
    return years, by_area


def _trend(series: dict[int, float], better: str) -> dict[str, Any]:
    """The first and the last value of an area's own series, and which way it went."""
    if len(series) < 2:
        return {"trend": None, "from": None, "to": None}
    first, last = min(series), max(series)
    return {
        "trend": _compare(series[last], series[first], better),
        "from": first,
        "to": last,
    }


def _chart(
    view: CycleView,
    indicator: db.Indicator,
    years: list[int],
    areas: list[tuple[str, str, str]],
    by_area: dict[str, dict[int, float]],
    language: str,
) -> tuple[str, str]:
    """The chart's data: URI and its alt text (every value, missing ones said so)."""
    unit = view.text(indicator.unit, language) if indicator.unit else ""
    w = _words(language)
    lines = tuple(
        Line(
            name if by_area.get(area) else f"{name} ({w['missing']})",
            tuple(by_area.get(area, {}).get(y) for y in years),
            style,
        )
        for area, name, style in areas
    )
    key = (indicator.key, tuple(a[0] for a in areas), language, tuple(years), lines, unit)
    if key not in _charts:
        if len(_charts) > 500:  # a long-lived worker renders many cycles: stay bounded
            _charts.clear()
        _charts[key] = data_uri(line_chart(tuple(years), lines, unit))
    label = view.text(indicator.label, language)
    parts = []
    for line in lines:
        shown = ", ".join(
            f"{y} {number(v, indicator.decimals) or w['missing']}"
            for y, v in zip(years, line.values, strict=True)
        )
        parts.append(f"{line.name}: {shown}")
    alt = (
        f"{w['chart']}: {label}"
        + (f" ({unit})" if unit else "")
        + f" {w['years']} {years[0]}–{years[-1]}. "
        + "; ".join(parts)
        + "."
    )
    return _charts[key], alt


def source_of(indicator: db.Indicator, language: str) -> str:
    w = _words(language)
    return w["hyte"] if indicator.source == "hyte-kerroin" else w["source"]


def group_panels(
    view: CycleView, group: db.MunicipalityGroup, language: str
) -> dict[str, list[dict[str, Any]]]:
    """Per goal cell key ('pa/sa'), the indicators mapped to it, for ``group``'s memo."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    w = _words(language)
    county_name = view.text(view.region.name, language) or w["county"]
    for indicator in cycle_indicators(view):
        if not indicator.cells:
            continue
        years, by_area = _series(indicator)
        if not years:
            continue
        latest = years[-1]
        areas = [(m.key, view.text(m.name, language), "municipality") for m in group.municipalities]
        areas += [(COUNTY, county_name, "county"), (COUNTRY, w["country"], "country")]
        rows = []
        for area, name, kind in areas:
            series = by_area.get(area, {})
            value = series.get(latest)
            rows.append(
                {
                    "name": name,
                    "kind": kind,
                    "value": number(value, indicator.decimals),
                    **_trend(series, indicator.better),
                    "vs_county": (
                        _compare(value, by_area.get(COUNTY, {}).get(latest), indicator.better)
                        if kind == "municipality"
                        else None
                    ),
                    "vs_country": (
                        _compare(value, by_area.get(COUNTRY, {}).get(latest), indicator.better)
                        if kind != "country"
                        else None
                    ),
                }
            )
        chart, alt = _chart(view, indicator, years, areas, by_area, language)
        panel = {
            "key": indicator.key,
            "label": view.text(indicator.label, language),
            "unit": view.text(indicator.unit, language) if indicator.unit else "",
            "better": indicator.better,
            "year": latest,
            "first_year": years[0],
            "rows": rows,
            "chart": chart,
            "alt": alt,
            "source": source_of(indicator, language),
        }
        for cell in indicator.cells:
            out[cell].append(panel)
    return dict(out)


def summary_tables(view: CycleView, language: str) -> dict[str, list[dict[str, Any]]]:
    """Per priority area key, one row per indicator mapped to one of its cells: the
    county's and the country's latest values, the county's trend, and the range of the
    municipalities' values."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    municipalities = {
        m.key
        for m in view.session.scalars(
            select(db.Municipality).filter_by(region_id=view.region.id, active=True)
        )
    }
    for indicator in cycle_indicators(view):
        years, by_area = _series(indicator)
        if not years:
            continue
        latest = years[-1]
        county = by_area.get(COUNTY, {})
        country = by_area.get(COUNTRY, {})
        known = [s[latest] for a, s in by_area.items() if a in municipalities and latest in s]
        row = {
            "label": view.text(indicator.label, language),
            "unit": view.text(indicator.unit, language) if indicator.unit else "",
            "year": latest,
            "county": number(county.get(latest), indicator.decimals),
            "country": number(country.get(latest), indicator.decimals),
            "vs_country": _compare(county.get(latest), country.get(latest), indicator.better),
            **_trend(county, indicator.better),
            "low": number(min(known), indicator.decimals) if known else None,
            "high": number(max(known), indicator.decimals) if known else None,
            "known": len(known),
            "of": len(municipalities),
            "source": source_of(indicator, language),
        }
        for pa in dict.fromkeys(cell.partition("/")[0] for cell in indicator.cells):
            out[pa].append(row)
    return dict(out)
