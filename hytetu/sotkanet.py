"""Fetching a cycle's Sotkanet indicators from THL's open REST API into its
``indicators/`` folder, in the JSON the API returns, kept to the region's municipalities,
its county and the whole country (docs/indicators.md).

    GET {base}/regions
    GET {base}/json?indicator=3342&years=2019&years=2020&...&genders=total

A request that times out, cannot connect or gets a 5xx or 429 answer is retried with a
growing pause; the files are written only when every answer was read and checked, so a
failed fetch leaves the folder as it was.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from hytetu.config import Config
from hytetu.errors import IndicatorError, Problem
from hytetu.indicators import (
    REGIONS_FILE,
    area_of_regions,
    folder_of,
    parse_regions,
    parse_sotkanet,
)

BASE_URL = "https://sotkanet.fi/rest/1.1"
#: Where a county points hytetu at another address (a proxy or a mirror of the API).
BASE_URL_VAR = "HYTETU_SOTKANET_URL"
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
RETRIES = 3


def _get(
    client: httpx.Client,
    url: str,
    params: list[tuple[str, str | int | float | bool | None]] | None,
    retries: int,
    pause: float,
    sleep: Callable[[float], None],
) -> bytes:
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            sleep(pause * 2 ** (attempt - 1))
        try:
            response = client.get(url, params=params)
        except httpx.TimeoutException:
            last = "no answer in time"
            continue
        except httpx.TransportError as e:
            last = f"no connection ({type(e).__name__})"
            continue
        if response.status_code >= 500 or response.status_code == 429:
            last = f"HTTP {response.status_code}"
            continue
        if response.status_code != 200:
            raise IndicatorError(
                "Sotkanet refused the request",
                problems=[Problem(str(response.url), None, "", f"HTTP {response.status_code}")],
            )
        return response.content
    raise IndicatorError(
        "Sotkanet could not be reached",
        problems=[Problem(url, None, "", f"{last} after {retries + 1} tries")],
    )


def fetch(
    config: Config,
    years: range,
    *,
    base_url: str | None = None,
    retries: int = RETRIES,
    pause: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    transport: httpx.BaseTransport | None = None,
) -> list[Path]:
    """Fetch the regions and every Sotkanet indicator of ``config`` for ``years`` into
    its indicators folder. Returns the files written. Raises IndicatorError naming the
    address, or the answer that could not be read (nothing is written then)."""
    base = (base_url or os.environ.get(BASE_URL_VAR) or BASE_URL).rstrip("/")
    items = [i for i in config.cycle_file.indicators.items if i.source == "sotkanet"]
    headers = {"User-Agent": "hytetu (HYTE negotiations; indicators fetch)"}
    answers: dict[str, bytes] = {}
    with httpx.Client(
        timeout=TIMEOUT, headers=headers, transport=transport, follow_redirects=True
    ) as client:
        raw = _get(client, f"{base}/regions", None, retries, pause, sleep)
        regions = parse_regions(raw, f"{base}/regions")
        areas, _ = area_of_regions(config, regions, f"{base}/regions")
        kept_regions = [r for r in json.loads(raw) if r.get("id") in areas]
        answers[REGIONS_FILE] = _dump(kept_regions)
        kept = {r.id: r for r in regions.values() if r.id in areas}
        for item in items:
            params: list[tuple[str, str | int | float | bool | None]] = [
                ("indicator", item.sotkanet or 0)
            ]
            params += [("years", y) for y in years]
            params.append(("genders", "total"))
            url = f"{base}/json"
            raw = _get(client, url, params, retries, pause, sleep)
            shown = f"{url}?indicator={item.sotkanet}"
            rows = _rows(raw, shown)
            ours = [r for r in rows if isinstance(r, dict) and r.get("region") in kept]
            data = _dump(ours)
            parse_sotkanet(data, shown, item, kept, areas)  # the loader will read it so
            answers[f"sotkanet-{item.sotkanet}.json"] = data
    folder = folder_of(config)
    folder.mkdir(exist_ok=True)
    written = []
    for name, data in answers.items():
        temporary = folder / f".{name}.part"
        temporary.write_bytes(data)
        written.append((temporary, folder / name))
    for temporary, final in written:
        temporary.replace(final)
    return [final for _, final in written]


def _rows(raw: bytes, shown: str) -> list[Any]:
    try:
        rows = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise IndicatorError(
            "Sotkanet's answer is not JSON", problems=[Problem(shown, None, "", str(e)[:200])]
        ) from None
    if not isinstance(rows, list):
        raise IndicatorError(
            "Sotkanet's answer is not a list of values",
            problems=[Problem(shown, None, "", f"got a {type(rows).__name__}")],
        )
    return rows


def _dump(rows: list[Any]) -> bytes:
    """One row a line: a person can read the file, and an error names a useful line."""
    body = ",\n".join(json.dumps(r, ensure_ascii=False) for r in rows)
    return f"[\n{body}\n]\n".encode() if rows else b"[]\n"


def parse_years(text: str) -> range:
    """'2019-2025' or '2024' as a range of years."""
    first, _, last = text.replace("–", "-").partition("-")
    try:
        start, end = int(first), int(last or first)
    except ValueError:
        raise ValueError(f"years as 2019-2025 or 2024, not {text!r}") from None
    if not 1990 <= start <= end <= 2100:
        raise ValueError(f"years as 2019-2025 or 2024, not {text!r}")
    return range(start, end + 1)
