"""Fetching the Sotkanet indicators: one retried task (the network is the side effect);
the work is in ``hytetu.sotkanet``."""

from __future__ import annotations

from prefect import task

from hytetu import sotkanet
from hytetu.config import load_config


@task(name="fetch-indicators", retries=3, retry_delay_seconds=[60, 300, 900])
def fetch_indicators(config: str, years: str | None = None) -> list[str]:
    """Fetch into the config folder's indicators/; ``years`` as '2019-2025' (default: the
    cycle's year and the six before). Each HTTP request is retried inside too (a 5xx, a
    timeout); this task's retries cover a longer outage."""
    cfg = load_config(config)
    span = sotkanet.parse_years(years) if years else range(cfg.cycle.year - 6, cfg.cycle.year + 1)
    return [str(p) for p in sotkanet.fetch(cfg, span)]
