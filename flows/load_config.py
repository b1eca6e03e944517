"""Load (or reload) a region's configuration into the database."""

from __future__ import annotations

from prefect import flow

from hytetu.errors import HytetuError
from tasks import phases
from tasks.reporting import publish, publish_failure


@flow(name="load-config", log_prints=True)
def load_config(config: str = "config/examples/keski-suomi-2025") -> dict:
    """Validate the config folder, migrate the database, load the region and the cycle.

    A config with errors fails the run with every problem as file:line: field: what is
    wrong, and nothing is written.

    Args:
        config: The region's config folder (region.yaml, cycle.yaml, notes/), absolute or
            relative to the checkout the worker runs from.
    """
    try:
        report = phases.load_config(config)
    except HytetuError as e:
        publish_failure("load", e)
        raise
    publish(report)
    return report
