"""The cycle's public compilation as open data (``hytetu export``)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from hytetu import reports
from hytetu.opendata import csv_tables, export_cycle
from hytetu.phases import default_out_dir


@task(name="export-open-data")
def _export(out_dir: str, region: str | None, year: int | None) -> dict:
    data, paths = export_cycle(Path(out_dir), region, year)
    return {"data": data, "paths": [str(p) for p in paths]}


@flow(name="export-open-data", log_prints=True)
def export_open_data(
    out_dir: str | None = None, region: str | None = None, year: int | None = None
) -> list[str]:
    """Write the cycle's themes per cell, group emphases and feedback counts as JSON and
    CSV into ``<out_dir>/open-data/`` for the county's open-data portal, and leave them as
    artifacts. Never personal data.

    Args:
        out_dir: The output folder (default: HYTETU_OUT).
        region: The region's key; needed when several regions are loaded.
        year: The cycle's year (default: the region's newest).
    """
    done = _export(out_dir or default_out_dir(), region, year)
    data = done["data"]
    key = reports.artifact_key("hytetu-open-data", region)
    create_table_artifact(
        table=csv_tables(data)["themes"],
        key=key,
        description=f"hytetu: open data {data['cycle']['year']}: themes per goal cell",
    )
    files = "\n".join(f"- `{p}`" for p in done["paths"])
    create_markdown_artifact(
        markdown=f"# Avoin data / Öppna data {data['cycle']['year']} ({data['status']})\n\n"
        f"{files}\n\nSchema: docs/open-data.schema.json ({data['schema']})\n",
        key=f"{key}-files",
        description=f"hytetu: open data {data['cycle']['year']}",
    )
    return list(done["paths"])
