"""What a flow run leaves for the coordinator in the Prefect UI: one Markdown artifact."""

from __future__ import annotations

from prefect.artifacts import create_markdown_artifact

from hytetu.reports import phase_markdown


def publish(report: dict, key: str | None = None) -> None:
    create_markdown_artifact(
        markdown=phase_markdown(report),
        key=key,
        description=f"hytetu: {report['phase']}",
    )
