"""Load (or reload) a region's configuration into the database."""

from __future__ import annotations

from prefect import flow

from tasks import phases
from tasks.reporting import publish


@flow(name="load-config", log_prints=True)
def load_config(config: str = "config/examples/keski-suomi-2025") -> dict:
    """Validate the config folder, migrate the database, load the region and the cycle."""
    report = phases.load_config(config)
    publish(report)
    return report
