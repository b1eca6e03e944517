"""Compile the findings of all sessions: common themes, group emphases, stakeholders."""

from __future__ import annotations

from prefect import flow

from tasks import phases
from tasks.reporting import publish, publish_compilation


@flow(name="compile-findings", log_prints=True)
def compile_findings() -> dict:
    """Pool the findings per goal cell, merge near-duplicates, mark common themes."""
    report = phases.compile_findings()
    publish(report)
    publish_compilation()
    return report
