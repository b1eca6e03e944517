"""Compile the findings of all sessions: common themes, group emphases, stakeholders."""

from __future__ import annotations

from prefect import flow

from tasks import phases
from tasks.reporting import publish, publish_compilation


@flow(name="compile-findings", log_prints=True)
def compile_findings(region: str | None = None) -> dict:
    """Pool the findings per goal cell, merge near-duplicates, mark common themes.

    Args:
        region: The region's key (region.yaml). Empty means the only region loaded.
    """
    report = phases.compile_findings(region)
    publish(report, region)
    publish_compilation(region)
    return report
