"""Fetch THL's Sotkanet indicators of a cycle and load them with its config."""

from __future__ import annotations

from prefect import flow

from hytetu.errors import HytetuError
from tasks import phases
from tasks.indicators import fetch_indicators as fetch_task
from tasks.reporting import publish, publish_failure


@flow(name="fetch-indicators", log_prints=True)
def fetch_indicators(
    config: str = "config/examples/keski-suomi-2025", years: str | None = None
) -> dict:
    """Fetch the cycle's Sotkanet indicators (sotkanet.fi; needs network access to it)
    into its indicators/ folder, then load the config, which imports them.

    Args:
        config: The region's config folder.
        years: e.g. 2019-2025; default the cycle's year and the six before.
    """
    try:
        written = fetch_task(config, years)
        print(f"wrote {len(written)} file(s). Lähde: THL, Sotkanet")
        report = phases.load_config(config)
    except HytetuError as e:
        publish_failure("load", e)
        raise
    publish(report)
    return report
