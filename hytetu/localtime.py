"""Times as a coordinator writes them: in the region's own zone, never off by an hour.

A form field in the Prefect UI that takes a datetime attaches whatever offset its zone
picker holds (UTC by default, or the offset of today rather than of the chosen day), so
the flows take ``as_of`` as text instead and read it here, in the region's zone.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator

from hytetu.errors import StateError

# The daily tick's hour (prefect.yaml: cron "0 7 * * *" in the region's zone): a date
# alone means that morning's tick.
TICK_TIME = time(7, 0)

AS_OF_HELP = (
    "a date or a local time in the region's time zone: 2025-10-02, 2025-10-02 07:00, "
    "2.10.2025 or 2.10.2025 7.00 (a date alone means that day's 07:00 tick); an explicit "
    "offset (2025-10-02T07:00:00+03:00) is kept"
)


def _as_text(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


# A flow parameter for a time: text in the Prefect UI (no zone picker to get wrong); a
# caller in Python may still pass a datetime or a date, which is kept exactly.
LocalTime = Annotated[str | None, BeforeValidator(_as_text)]

_FINNISH = re.compile(
    r"^(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4})"
    r"(?:\s+(?:klo\s+)?(?P<H>\d{1,2})[.:](?P<M>\d{2}))?$"
)


def local_datetime(naive: datetime, tz: ZoneInfo) -> datetime:
    """``naive`` as a wall-clock time in ``tz``; refuses a time that does not exist (the
    hour skipped in spring) or that exists twice (the hour repeated in autumn)."""
    first, second = naive.replace(tzinfo=tz, fold=0), naive.replace(tzinfo=tz, fold=1)
    shown = naive.isoformat(timespec="minutes")
    offsets = first.isoformat()[-6:], second.isoformat()[-6:]
    back = first.astimezone(ZoneInfo("UTC")).astimezone(tz).replace(tzinfo=None)
    if back != naive:
        raise StateError(
            f"{shown} does not exist in {tz.key}: the clocks go forward over it that night "
            f"({offsets[0]} to {offsets[1]}); give a time that exists"
        )
    if first.utcoffset() != second.utcoffset():
        raise StateError(
            f"{shown} happens twice in {tz.key}: the clocks go back that night; give the "
            f"UTC offset, {shown}{offsets[0]} for the first or {shown}{offsets[1]} for the "
            "second"
        )
    return first


def parse_local(value: str | datetime | date, tz: ZoneInfo) -> datetime:
    """A time given as text, a datetime or a date, made aware in ``tz`` (see AS_OF_HELP)."""
    if isinstance(value, datetime):
        return local_datetime(value, tz) if value.tzinfo is None else value.astimezone(tz)
    if isinstance(value, date):
        return local_datetime(datetime.combine(value, TICK_TIME), tz)
    text = value.strip()
    m = _FINNISH.match(text)
    try:
        if m:
            day = date(int(m["y"]), int(m["m"]), int(m["d"]))
            if m["H"] is None:
                return parse_local(day, tz)
            clock = time(int(m["H"]), int(m["M"]))
            return local_datetime(datetime.combine(day, clock), tz)
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return parse_local(date.fromisoformat(text), tz)
        return parse_local(datetime.fromisoformat(text), tz)
    except ValueError:
        raise StateError(f"as_of {value!r} is not a date or time: use {AS_OF_HELP}") from None
