"""A new yearly cycle from the last one (``hytetu cycle new``): next year's config folder.

cycle.yaml is rewritten by a YAML round trip (ruamel.yaml), so the coordinator's comments
and layout stay. The goal matrix is carried over as it is; each session moves a year with
its weekday kept (the same date next year, then the nearest day with the same weekday:
Thursday 23.10.2025 → Thursday 22.10.2026), at the same local time, and gets a ``check:``
note and a comment: ``hytetu validate`` and ``load`` warn about every note until the
coordinator has checked the session and removed it. The feedback window moves the same way.
The year in the title and the feedback URL is replaced; the registry reference is a new
case each year, so it is left empty (null) with last year's in a comment. region.yaml, the
region's templates/ and indicators/ are copied; feedback/ and notes/ are not (they are the
year's own). Nothing is overwritten.
"""

from __future__ import annotations

import io
import re
import shutil
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from hytetu.config import CYCLE_FILE, REGION_FILE, load_config
from hytetu.errors import ConfigError, Problem

#: Copied beside cycle.yaml when the old folder has them.
COPIED = (REGION_FILE, "templates", "indicators")

_WEEKDAYS = {
    "fi": ["ma", "ti", "ke", "to", "pe", "la", "su"],
    "sv": ["mån", "tis", "ons", "tors", "fre", "lör", "sön"],
}
_TEXTS = {
    "fi": {
        "header": "# Tehty komennolla `hytetu cycle new` vuoden {old} tiedostosta {source} "
        "({today}).\n# Alla olevat kommentit ovat vuoden {old} tiedostosta.\n",
        "session": "Siirretty vuoden {old} istunnosta {old_id} ({old_day}) samalle "
        "viikonpäivälle: tarkista päivä, kellonaika, paikka ja etäyhteyden linkki, "
        "ja poista sitten tämä rivi.",
        "comment": "TARKISTA: {old_day} → {new_day}",
        "feedback": "Palauteaika siirretty vuodesta {old} samoille viikonpäiville: "
        "tarkista avautumis- ja määräpäivä ja lomakkeen osoite, ja poista sitten tämä rivi.",
        "reference": "uusi asianumero kirjaamosta; vuonna {old}: {reference}",
    },
    "sv": {
        "header": "# Skapad med `hytetu cycle new` från {old} års fil {source} ({today}).\n"
        "# Kommentarerna nedan kommer från {old} års fil.\n",
        "session": "Flyttad från {old} års möte {old_id} ({old_day}) till samma veckodag: "
        "kontrollera dag, tid, plats och länken till distansmötet och ta sedan bort "
        "den här raden.",
        "comment": "KONTROLLERA: {old_day} → {new_day}",
        "feedback": "Responstiden flyttad från {old} till samma veckodagar: kontrollera "
        "öppnings- och sista dagen och formulärets adress och ta sedan bort den här raden.",
        "reference": "nytt diarienummer från registraturen; {old}: {reference}",
    },
}


@dataclass
class NewCycle:
    folder: Path
    year: int
    copied: list[str] = field(default_factory=list)
    sessions: list[tuple[str, str]] = field(default_factory=list)  # (old id, new id)
    warnings: list[Problem] = field(default_factory=list)


def shift_date(day: date, year: int) -> date:
    """``day`` in ``year``, on the same weekday: the same date (28.2 for a 29.2), moved to
    the nearest day with ``day``'s weekday (at most three days either way), and a week
    earlier if that left the year (31.12)."""
    same = day.replace(year=year, day=28) if (day.month, day.day) == (2, 29) else None
    same = same or day.replace(year=year)
    offset = (day.weekday() - same.weekday()) % 7
    if offset > 3:
        offset -= 7
    moved = same + timedelta(days=offset)
    if moved.year != year:
        moved -= timedelta(days=7 if moved.year > year else -7)
    return moved


def _shift_moment(value: datetime, year: int, tz: ZoneInfo) -> datetime:
    """The same local time on the shifted day, with the zone's offset on that day."""
    local = value.astimezone(tz) if value.tzinfo else value.replace(tzinfo=tz)
    day = shift_date(local.date(), year)
    moved = datetime.combine(day, local.time().replace(tzinfo=None), tzinfo=tz)
    offset = moved.utcoffset() or timedelta()
    return moved.replace(tzinfo=None).replace(tzinfo=_fixed(offset))


def _fixed(offset: timedelta) -> Any:
    from datetime import timezone

    return timezone(offset)


def _yaml() -> YAML:
    y = YAML()  # round trip: comments, order and flow style kept
    y.preserve_quotes = True
    y.width = 4096  # never fold a long goal onto two lines
    y.indent(mapping=2, sequence=4, offset=2)
    y.representer.add_representer(
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    y.representer.add_representer(
        datetime, lambda r, d: r.represent_scalar("tag:yaml.org,2002:timestamp", d.isoformat())
    )
    return y


def default_target(source: Path, old_year: int, year: int) -> Path:
    """keski-suomi-2025 → keski-suomi-2026 beside it; a folder without the year: NAME-2026."""
    name = source.name
    new = name.replace(str(old_year), str(year)) if str(old_year) in name else f"{name}-{year}"
    return source.parent / new


def _day(value: date, language: str) -> str:
    names = _WEEKDAYS.get(language, _WEEKDAYS["fi"])
    return f"{names[value.weekday()]} {value.day}.{value.month}.{value.year}"


def new_cycle(
    source: Path, year: int, target: Path | None = None, today: date | None = None
) -> NewCycle:
    """Write ``year``'s config folder from ``source`` (which must load). Raises
    ``ConfigError`` when the source is invalid, the year is not after it, or the target
    exists; nothing is written then."""
    source = Path(source)
    config = load_config(source)  # a broken source fails here, before anything is written
    old = config.cycle.year
    language = config.language
    texts = _TEXTS.get(language, _TEXTS["fi"])
    target = Path(target) if target is not None else default_target(source, old, year)
    cycle_path = source / CYCLE_FILE
    if year <= old:
        raise ConfigError(
            f"{cycle_path}: the new cycle must come after {old}",
            problems=[Problem(str(cycle_path), None, "cycle.year", f"{year} is not after {old}")],
        )
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(
            f"{target}: exists already; nothing was written",
            problems=[
                Problem(
                    str(target),
                    None,
                    "",
                    "the folder exists and is not empty: give another --to, or remove it "
                    "first (cycle new never overwrites)",
                )
            ],
        )

    y = _yaml()
    doc: CommentedMap = y.load(cycle_path.read_text(encoding="utf-8-sig"))
    tz = config.tz
    result = NewCycle(target, year)

    cycle = doc["cycle"]
    cycle["year"] = year
    title = cycle.get("title")
    if isinstance(title, dict):
        for lang, text in title.items():
            title[lang] = _replace_year(text, old, year)
    elif isinstance(title, str):
        cycle["title"] = _replace_year(title, old, year)
    if cycle.get("reference"):
        cycle.yaml_add_eol_comment(
            texts["reference"].format(old=old, reference=cycle["reference"]), "reference"
        )
        cycle["reference"] = None

    feedback = doc["feedback"]
    for key in ("opens", "deadline"):
        feedback[key] = shift_date(getattr(config.cycle_file.feedback, key), year)
    if isinstance(feedback.get("url"), str):
        feedback["url"] = _replace_year(feedback["url"], old, year)
    _set_check(feedback, texts["feedback"].format(old=old), after="deadline")

    for raw, loaded in zip(doc["sessions"], config.cycle_file.sessions, strict=True):
        old_id = str(raw["id"])
        old_day = loaded.start.astimezone(tz).date()
        start = _shift_moment(loaded.start, year, tz)
        end = _shift_moment(loaded.end, year, tz)
        new_id = _new_id(old_id, old_day, start.date())
        raw["id"] = new_id
        raw["start"], raw["end"] = start, end
        if "status" in raw:
            raw["status"] = "scheduled"
        if isinstance(raw.get("online_url"), str) and old_id in raw["online_url"]:
            raw["online_url"] = raw["online_url"].replace(old_id, new_id)
        days = {"old_day": _day(old_day, language), "new_day": _day(start.date(), language)}
        _set_check(raw, texts["session"].format(old=old, old_id=old_id, **days), after="id")
        raw.yaml_add_eol_comment(texts["comment"].format(**days), "id")
        result.sessions.append((old_id, new_id))

    header = texts["header"].format(
        old=old, source=cycle_path, today=(today or date.today()).isoformat()
    )
    out = io.StringIO()
    y.dump(doc, out)
    text = header + out.getvalue()

    staging = target.parent / f".{target.name}.new"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        (staging / CYCLE_FILE).write_text(text, encoding="utf-8")
        for name in COPIED:
            src = source / name
            if src.is_dir():
                shutil.copytree(src, staging / name)
                result.copied.append(name + "/")
            elif src.is_file():
                shutil.copy2(src, staging / name)
                result.copied.append(name)
        written = load_config(staging)  # what it wrote must load (with its check: warnings)
        if target.exists():
            target.rmdir()  # empty, checked above
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result.warnings = [
        Problem(str(target / Path(p.file).name), p.line, p.field, p.message, p.severity)
        for p in written.warnings
    ]
    return result


def _replace_year(text: str, old: int, year: int) -> str:
    return re.sub(rf"(?<!\d){old}(?!\d)", str(year), text)


def _new_id(old_id: str, old_day: date, new_day: date) -> str:
    """A session id that starts with its date (2025-10-23-jamsa) gets the new date."""
    prefix = old_day.isoformat()
    if old_id.startswith(prefix):
        return new_day.isoformat() + old_id[len(prefix) :]
    return _replace_year(old_id, old_day.year, new_day.year)


def _set_check(mapping: CommentedMap, note: str, after: str) -> None:
    keys = list(mapping.keys())
    if "check" in mapping:
        mapping["check"] = note
        return
    position = keys.index(after) + 1 if after in keys else len(keys)
    mapping.insert(position, "check", note)
