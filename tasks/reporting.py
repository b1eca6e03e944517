"""What a flow run leaves for the coordinator in the Prefect UI: artifacts.

Each phase run leaves a Markdown report and, when it sent anything, a table of what was
sent to whom. The daily tick adds its summary and, while drafts wait, a request for
approval under a fixed key (so the Artifacts page always shows the newest one). A failed
run leaves the error's own text, without a traceback.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from hytetu import reports

APPROVAL_KEY = "hytetu-approval-request"


def publish(report: dict[str, Any], region: str | None = None) -> None:
    """What a phase did, under a key per phase (and region), so each artifact's versions
    line up in the UI's artifact list."""
    key = "hytetu-" + report["phase"].replace("_", "-")
    create_markdown_artifact(
        markdown=reports.phase_markdown(report),
        key=reports.artifact_key(key, region),
        description=f"hytetu: {report['phase']}",
    )
    rows = reports.sent_table(report.get("sent_ids") or [])
    if rows:
        create_table_artifact(
            table=rows,
            key=reports.artifact_key(f"{key}-sent", region),
            description=f"hytetu: {reports.title(report['phase'])}: {len(rows)} sent",
        )


def publish_compilation(region: str | None = None) -> None:
    """The newest compilation: its common themes as a table, the whole as Markdown."""
    from hytetu import db, findings
    from hytetu.state import cycle_view

    with db.session_scope() as s:
        view = cycle_view(s, region)
        row = findings.latest_compilation(view)
        result = row.result if row is not None else None
        names = findings.display_names(view)
    if result is None:
        return
    table = findings.common_table(result, names)
    if table:
        create_table_artifact(
            table=table,
            key=reports.artifact_key("hytetu-common-themes", region),
            description=f"hytetu: {len(table)} common themes per goal cell",
        )
    create_markdown_artifact(
        markdown=review_link(region) + findings.markdown(result),
        key=reports.artifact_key("hytetu-compilation", region),
        description="hytetu: compilation (koonti)",
    )


def review_link(region: str | None = None) -> str:
    """The line at the top of the compilation's artifact that takes the coordinator to the
    review page: ``HYTETU_REVIEW_URL`` (default: the page on this machine), where
    ``{region}`` stands for the region's key when each region has a page of its own."""
    url = reports.review_url(region)
    return (
        f"**Tarkista koonti ennen muistioiden hyväksymistä:** [{url}]({url}) "
        "(`hytetu serve-review`)\n\n"
    )


def publish_tick(
    as_of: datetime,
    results: dict[str, dict[str, Any]],
    dry_run: bool,
    region: str | None = None,
) -> None:
    create_markdown_artifact(
        markdown=reports.tick_markdown(as_of, results, dry_run),
        key=reports.artifact_key("hytetu-daily-tick", region),
        description="hytetu: daily tick",
    )


def publish_approval_request(out_dir: str, region: str | None = None) -> int:
    """Leave the request for approval if drafts wait; returns how many wait."""
    waiting = reports.waiting_for_approval(region=region)
    if waiting:
        create_markdown_artifact(
            markdown=reports.approval_markdown(waiting, out_dir, region),
            key=reports.artifact_key(APPROVAL_KEY, region),
            description=f"hytetu: {len(waiting)} memo versions wait for approval",
        )
    return len(waiting)


def publish_failure(phase: str, error: BaseException, region: str | None = None) -> None:
    create_markdown_artifact(
        markdown=reports.failure_markdown(phase, error),
        key=reports.artifact_key("hytetu-failure", region),
        description=f"hytetu: {phase} failed",
    )
