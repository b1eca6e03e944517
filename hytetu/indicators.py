"""Indicators beside the findings: THL's Sotkanet data and the HYTE coefficient, read from
a cycle's ``indicators/`` folder, checked, and stored per municipality, county and country
and year (see docs/indicators.md).

The folder holds what Sotkanet's open REST API (``https://sotkanet.fi/rest/1.1``) returns,
as ``hytetu indicators fetch`` writes it: ``regions.json`` (``/regions``) and one
``sotkanet-<id>.json`` per indicator (``/json?indicator=<id>&years=...&genders=total``);
and, if the region has it, ``hyte-kerroin.csv`` or ``.xlsx``. A missing value is a row
that is absent or has no ``value``: it stays missing, never 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hytetu import db
from hytetu.config import Config, Indicator, localized
from hytetu.errors import FeedbackImportError, IndicatorError, Problem
from hytetu.inputs import MB, Limits, UnreadableFile, read_input

FOLDER = "indicators"
COUNTY = "county"
COUNTRY = "country"
REGIONS_FILE = "regions.json"
HYTE_FILES = ("hyte-kerroin.csv", "hyte-kerroin.xlsx")
#: Sotkanet's files for one county are well under a megabyte; a whole-country download
#: of one indicator over ten years is about 5 MB.
LIMITS = Limits(file_bytes=50 * MB, rows=500_000, setting="the indicators folder")

_HYTE_COLUMNS = {
    "area": ("alue", "kunta", "område", "kommun", "area", "koodi", "code"),
    "year": ("vuosi", "år", "year"),
    "value": ("kerroin", "hyte-kerroin", "koefficient", "value", "arvo"),
}
_COUNTRY_NAMES = {"koko maa", "suomi", "hela landet", "finland", "sss"}
_MISSING = {"", "-", "–", "..", ".", "ei tietoa", "uppgift saknas"}


@dataclass(frozen=True)
class Value:
    """One value: ``indicator`` is the id in cycle.yaml; ``area`` a municipality's id,
    ``COUNTY`` or ``COUNTRY``."""

    indicator: str
    area: str
    year: int
    value: float
    abs_value: float | None = None


@dataclass
class Loaded:
    values: list[Value]
    warnings: list[Problem]
    files: list[Path]


def folder_of(config: Config) -> Path:
    return config.folder / FOLDER


def data_files(config: Config) -> list[Path]:
    """The files of the indicators folder that ``read_folder`` reads (for the load's
    fingerprint): only those that exist."""
    folder = folder_of(config)
    names = [REGIONS_FILE, *HYTE_FILES] + [
        f"sotkanet-{i.sotkanet}.json" for i in config.cycle_file.indicators.items if i.sotkanet
    ]
    return [folder / n for n in names if (folder / n).is_file()]


def _fail(problems: list[Problem]) -> IndicatorError:
    return IndicatorError(
        "the indicator files have errors; nothing was imported", problems=problems
    )


# --- JSON with the line of each item ------------------------------------------------


def _json_items(raw: bytes, display: str) -> list[tuple[int, Any]]:
    """The items of a JSON array, each with the line it starts on; or IndicatorError
    naming line and column of a syntax error."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise _fail(
            [Problem(display, line, "", "not UTF-8 text (Sotkanet writes UTF-8)")]
        ) from None
    decoder = json.JSONDecoder()
    items: list[tuple[int, Any]] = []

    def skip(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    def syntax(i: int, message: str) -> IndicatorError:
        line = text.count("\n", 0, i) + 1
        column = i - (text.rfind("\n", 0, i) + 1) + 1
        return _fail([Problem(display, line, "", f"column {column}: {message}")])

    i = skip(0)
    if i >= len(text) or text[i] != "[":
        raise syntax(i, "expected a JSON list [...] as Sotkanet's API returns it")
    i = skip(i + 1)
    if i < len(text) and text[i] == "]":
        return items
    while True:
        try:
            item, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as e:
            raise syntax(e.pos, f"invalid JSON: {e.msg}") from None
        items.append((text.count("\n", 0, i) + 1, item))
        i = skip(end)
        if i < len(text) and text[i] == ",":
            i = skip(i + 1)
            continue
        if i < len(text) and text[i] == "]":
            break
        raise syntax(i, "expected ',' or ']'")
    if skip(i + 1) < len(text):
        raise syntax(skip(i + 1), "text after the end of the list")
    return items


def _read(path: Path, display: str) -> bytes:
    try:
        return read_input(path, display, LIMITS)
    except UnreadableFile as e:
        raise _fail([e.problem]) from None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- regions ------------------------------------------------------------------------


@dataclass(frozen=True)
class SotkanetRegion:
    id: int
    code: str
    category: str
    title: dict[str, str]


def parse_regions(raw: bytes, display: str) -> dict[int, SotkanetRegion]:
    """Sotkanet's ``/regions``: ``[{"id": 301, "code": "179", "category": "KUNTA",
    "title": {"fi": "Jyväskylä", "sv": ...}, ...}, ...]``."""
    out: dict[int, SotkanetRegion] = {}
    problems = []
    for n, (line, item) in enumerate(_json_items(raw, display), start=1):
        where = f"region {n}"
        if not isinstance(item, dict):
            problems.append(Problem(display, line, where, "expected an object {...}"))
            continue
        ident, code, category = item.get("id"), item.get("code"), item.get("category")
        title = item.get("title")
        if not isinstance(ident, int) or isinstance(ident, bool):
            problems.append(Problem(display, line, f"{where}.id", "expected a whole number"))
            continue
        if not isinstance(code, str | int) or not isinstance(category, str):
            problems.append(
                Problem(display, line, where, "expected 'code' and 'category' (e.g. KUNTA)")
            )
            continue
        if isinstance(title, str):
            title = {"fi": title}
        if not isinstance(title, dict):
            title = {}
        out[ident] = SotkanetRegion(
            ident, str(code), category.upper(), {k: str(v) for k, v in title.items()}
        )
    if problems:
        raise _fail(problems)
    return out


def area_of_regions(
    config: Config, regions: dict[int, SotkanetRegion], display: str
) -> tuple[dict[int, str], list[Problem]]:
    """Sotkanet region id → area (a municipality's id, COUNTY, COUNTRY), and warnings
    for the region's municipalities that have no Sotkanet region."""
    lang = config.language
    by_code = {
        (r.category, r.code.zfill(3) if r.category == "KUNTA" else r.code): r
        for r in regions.values()
    }
    by_name = {(r.category, r.title.get("fi", "").casefold()): r for r in regions.values()}
    out: dict[int, str] = {}
    warnings = []
    for m in config.region_file.municipalities:
        name = localized(m.name, "fi", lang)
        region = (by_code.get(("KUNTA", m.code)) if m.code else None) or by_name.get(
            ("KUNTA", name.casefold())
        )
        if region is None:
            warnings.append(
                Problem(
                    display,
                    None,
                    "",
                    f"no Sotkanet region for {name}"
                    + (f" (code {m.code})" if m.code else "")
                    + ": its indicator values are missing",
                    severity="warning",
                )
            )
        else:
            out[region.id] = m.id
    county_code = config.cycle_file.indicators.county
    county_name = localized(config.region.name, "fi", lang).casefold()
    county = (
        by_code.get(("HYVINVOINTIALUE", county_code))
        if county_code
        else by_name.get(("HYVINVOINTIALUE", county_name))
    )
    if county is None:
        warnings.append(
            Problem(
                display,
                None,
                "",
                "no Sotkanet region for the county"
                + (f" (code {county_code})" if county_code else f" ({county_name})")
                + ": set indicators.county in cycle.yaml",
                severity="warning",
            )
        )
    else:
        out[county.id] = COUNTY
    countries = [r for r in regions.values() if r.category == "MAA"]
    country = next(
        (r for r in countries if r.title.get("fi", "").casefold() in _COUNTRY_NAMES),
        countries[0] if len(countries) == 1 else None,
    )
    if country is not None:
        out[country.id] = COUNTRY
    return out, warnings


# --- Sotkanet data ------------------------------------------------------------------


def parse_sotkanet(
    raw: bytes,
    display: str,
    indicator: Indicator,
    regions: dict[int, SotkanetRegion],
    areas: dict[int, str],
) -> list[Value]:
    """Sotkanet's ``/json`` rows for ``indicator``: ``{"indicator": 3342, "region": 301,
    "year": 2023, "gender": "total", "value": 1.2, "absValue": 52}``. Rows of other
    genders and of regions outside the county are skipped; a row without a value is a
    missing value. Raises IndicatorError listing every bad row (file, line, field)."""
    values: dict[tuple[str, int], Value] = {}
    problems = []
    for n, (line, row) in enumerate(_json_items(raw, display), start=1):
        where = f"row {n}"

        def bad(field: str, message: str, line: int = line, where: str = where) -> None:
            problems.append(Problem(display, line, f"{where}.{field}" if field else where, message))

        if not isinstance(row, dict):
            bad("", "expected an object {...} with indicator, region, year, gender, value")
            continue
        for field in ("indicator", "region", "year"):
            if field not in row:
                bad(field, "required field is missing")
            elif not isinstance(row[field], int) or isinstance(row[field], bool):
                bad(field, f"expected a whole number (got {row[field]!r:.40})")
        if any(p.line == line and p.field.startswith(where) for p in problems):
            continue
        if row["indicator"] != indicator.sotkanet:
            bad(
                "indicator",
                f"a value of indicator {row['indicator']}, but this file is indicator "
                f"{indicator.sotkanet}'s ({indicator.id} in cycle.yaml)",
            )
            continue
        if row["region"] not in regions:
            bad("region", f"unknown region {row['region']} (not in {REGIONS_FILE})")
            continue
        if not 1900 <= row["year"] <= 2100:
            bad("year", f"not a year: {row['year']}")
            continue
        gender = row.get("gender", "total")
        if not isinstance(gender, str):
            bad("gender", "expected 'total', 'male' or 'female'")
            continue
        value = row.get("value")
        if value is not None and not _number(value):
            bad("value", f"expected a number or null (got {value!r:.40})")
            continue
        absolute = row.get("absValue")
        if absolute is not None and not _number(absolute):
            bad("absValue", f"expected a number or null (got {absolute!r:.40})")
            continue
        area = areas.get(row["region"])
        if gender != "total" or area is None or value is None:
            continue
        key = (area, row["year"])
        if key in values:
            bad("year", f"a second value for {regions[row['region']].code} in {row['year']}")
            continue
        values[key] = Value(
            indicator.id,
            area,
            row["year"],
            float(value),
            float(absolute) if absolute is not None else None,
        )
    if problems:
        raise _fail(problems)
    return list(values.values())


# --- the HYTE coefficient -----------------------------------------------------------


def _cell(value: Any) -> str:
    return "" if value is None else str(value).strip()


def parse_hyte(path: Path, display: str, config: Config, items: list[Indicator]) -> list[Value]:
    """The HYTE coefficient file: a header row with ``alue`` (a municipality's name or
    number, the county's name, or ``Koko maa``), ``vuosi`` and ``kerroin``, in CSV
    (UTF-8 with or without BOM, or Windows-1252; ``;`` or ``,``) or XLSX."""
    from hytetu.feedback_import import read_rows

    try:
        rows = read_rows(path, display, LIMITS)
    except FeedbackImportError as e:
        raise _fail(e.problems) from None
    if not rows:
        raise _fail([Problem(display, 1, "", "the file is empty")])
    header_line, header = rows[0]
    names = [_cell(h).casefold() for h in header]
    index: dict[str, int] = {}
    for key, aliases in _HYTE_COLUMNS.items():
        found = next((i for i, n in enumerate(names) if n in aliases), None)
        if found is None:
            raise _fail(
                [
                    Problem(
                        display,
                        header_line,
                        aliases[0],
                        f"no column {aliases[0]!r} in the header (found: "
                        f"{', '.join(repr(n) for n in names if n) or 'none'})",
                    )
                ]
            )
        index[key] = found
    lang = config.language
    areas: dict[str, str] = {}
    for m in config.region_file.municipalities:
        areas[localized(m.name, "fi", lang).casefold()] = m.id
        for text in m.name.values():
            areas[text.casefold()] = m.id
        if m.code:
            areas[m.code] = m.id
            areas[m.code.lstrip("0")] = m.id
    for text in config.region.name.values():
        areas[text.casefold()] = COUNTY
    areas.update(dict.fromkeys(_COUNTRY_NAMES, COUNTRY))
    out: dict[tuple[str, int], float] = {}
    problems = []
    for line, row in rows[1:]:
        cells = [_cell(c) for c in row]
        if not any(cells):
            continue
        get = {k: (cells[i] if i < len(cells) else "") for k, i in index.items()}
        area = areas.get(get["area"].casefold())
        if area is None:
            # Another county's municipality: THL's file covers the whole country.
            continue
        try:
            year = int(float(get["year"]))
        except ValueError:
            problems.append(Problem(display, line, "vuosi", f"not a year: {get['year']!r}"))
            continue
        if get["value"].casefold() in _MISSING:
            continue
        try:
            value = float(get["value"].replace(",", ".").replace("\u00a0", "").replace(" ", ""))
        except ValueError:
            problems.append(
                Problem(display, line, "kerroin", f"not a number: {get['value']!r:.40}")
            )
            continue
        if (area, year) in out:
            problems.append(
                Problem(display, line, "vuosi", f"a second value for {get['area']} in {year}")
            )
            continue
        out[(area, year)] = value
    if problems:
        raise _fail(problems)
    return [Value(item.id, a, y, v) for item in items for (a, y), v in out.items()]


# --- the folder ---------------------------------------------------------------------


def read_folder(config: Config) -> Loaded:
    """Every value of the cycle's indicators from its folder. Raises IndicatorError with
    every problem of every file; nothing is read into the database before all are good.
    An indicator whose file is missing has no values (a warning)."""
    block = config.cycle_file.indicators
    folder = folder_of(config)
    values: list[Value] = []
    warnings: list[Problem] = []
    files: list[Path] = []
    problems: list[Problem] = []
    if not block.items:
        return Loaded(values, warnings, files)
    shown = f"{config.folder.name}/{FOLDER}"
    sotkanet = [i for i in block.items if i.source == "sotkanet"]
    if sotkanet:
        regions_path = folder / REGIONS_FILE
        if not regions_path.is_file():
            warnings.append(
                Problem(
                    f"{shown}/{REGIONS_FILE}",
                    None,
                    "",
                    "missing: no Sotkanet values (hytetu indicators fetch writes it)",
                    severity="warning",
                )
            )
        else:
            display = f"{shown}/{REGIONS_FILE}"
            regions = parse_regions(_read(regions_path, display), display)
            areas, missing = area_of_regions(config, regions, display)
            warnings += missing
            files.append(regions_path)
            for item in sotkanet:
                name = f"sotkanet-{item.sotkanet}.json"
                display = f"{shown}/{name}"
                if not (folder / name).is_file():
                    warnings.append(
                        Problem(display, None, "", f"missing: {item.id} has no values", "warning")
                    )
                    continue
                try:
                    values += parse_sotkanet(
                        _read(folder / name, display), display, item, regions, areas
                    )
                except IndicatorError as e:
                    problems += e.problems
                files.append(folder / name)
    hyte = [i for i in block.items if i.source == "hyte-kerroin"]
    if hyte:
        path = next((folder / n for n in HYTE_FILES if (folder / n).is_file()), None)
        if path is None:
            warnings.append(
                Problem(
                    f"{shown}/{HYTE_FILES[0]}",
                    None,
                    "",
                    "missing: no HYTE coefficient values",
                    severity="warning",
                )
            )
        else:
            try:
                values += parse_hyte(path, f"{shown}/{path.name}", config, hyte)
            except IndicatorError as e:
                problems += e.problems
            files.append(path)
    if problems:
        raise _fail(problems)
    return Loaded(values, warnings, files)


def store(session: Session, cycle: db.Cycle, config: Config, values: Iterable[Value]) -> bool:
    """Replace the cycle's indicators and values with ``config``'s and ``values``, in the
    caller's transaction. Returns whether anything changed."""
    block = config.cycle_file.indicators
    lang = config.language
    cells: dict[str, list[str]] = {i.id: [] for i in block.items}
    for cell, mapped in block.goal_cells.items():
        for ident in mapped:
            cells[ident].append(cell)
    wanted_defs = {
        i.id: (
            i.source,
            i.sotkanet,
            _norm(i.label, lang),
            _norm(i.unit, lang) if i.unit else None,
            i.better,
            i.decimals,
            n,
            cells[i.id],
        )
        for n, i in enumerate(block.items)
    }
    wanted_values = {(v.indicator, v.area, v.year, v.value, v.abs_value) for v in values}
    existing = session.scalars(select(db.Indicator).filter_by(cycle_id=cycle.id)).all()
    have_defs = {
        r.key: (r.source, r.sotkanet_id, r.label, r.unit, r.better, r.decimals, r.position, r.cells)
        for r in existing
    }
    have_values = {
        (r.key, v.area, v.year, v.value, v.abs_value) for r in existing for v in r.values
    }
    if have_defs == wanted_defs and have_values == wanted_values:
        return False
    ids = [r.id for r in existing]
    if ids:
        session.execute(delete(db.IndicatorValue).where(db.IndicatorValue.indicator_id.in_(ids)))
        session.execute(delete(db.Indicator).where(db.Indicator.id.in_(ids)))
        session.expire_all()
    rows = {}
    for key, (source, sid, label, unit, better, decimals, pos, cs) in wanted_defs.items():
        rows[key] = db.Indicator(
            cycle_id=cycle.id,
            key=key,
            source=source,
            sotkanet_id=sid,
            label=label,
            unit=unit,
            better=better,
            decimals=decimals,
            position=pos,
            cells=cs,
        )
        session.add(rows[key])
    session.flush()
    session.add_all(
        db.IndicatorValue(
            indicator_id=rows[ind].id, area=area, year=year, value=value, abs_value=absolute
        )
        for ind, area, year, value, absolute in sorted(wanted_values, key=lambda t: t[:3])
    )
    session.flush()
    return True


def _norm(text: dict[str, str], default: str) -> dict[str, str]:
    return {(default if k == "*" else k): v for k, v in text.items()}
