"""Read the county's mailbox: RSVPs to the invitations, bounces, the registries' receipts.

Runs first on every daily tick. A mailbox that cannot be read (the server down, a wrong
password) fails this flow only; the tick's other phases still run.
"""

from __future__ import annotations

from datetime import datetime

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from hytetu import reports
from hytetu.localtime import LocalTime
from hytetu.phases import default_out_dir, resolve_as_of
from tasks import phases
from tasks.reporting import publish


@flow(name="read-mailbox", log_prints=True)
def read_mailbox(
    as_of: LocalTime = None, out_dir: str | None = None, region: str | None = None
) -> dict:
    """Read the replies in the county's mailbox once each: RSVPs, bounces, registry
    receipts; auto-replies are ignored and anything else is left where it is.

    Args:
        as_of: The moment to act as of, in the region's time zone: a date (that day's
            07:00 tick) or a time, e.g. 2.10.2025, 2025-10-02 07:00. Empty means now.
        out_dir: The folder of the file transport's inbox/. Empty means HYTETU_OUT.
        region: The region's key (region.yaml). Empty means the only region loaded.
    """
    return read_and_report(resolve_as_of(as_of, region=region), out_dir, region)


def read_and_report(moment: datetime, out_dir: str | None, region: str | None) -> dict:
    """Read the mailbox (one task) and, when it gave anything, leave the phase report and
    the attendance artifacts. The daily tick calls this inside its own run: a sub-flow
    run on every tick would cost more than reading an empty mailbox."""
    report = phases.read_mailbox(moment, out_dir or default_out_dir(), region)
    if report["did"].get("read") or report.get("failed") or report.get("warnings"):
        publish(report, region)
        summary = reports.mailbox_summary(moment, region=region)
        create_markdown_artifact(
            markdown=summary.markdown,
            key=reports.artifact_key("hytetu-attendance", region),
            description="hytetu: ilmoittautumiset / anmälningar / attendance",
        )
        if summary.rows:
            create_table_artifact(
                table=summary.rows,
                key=reports.artifact_key("hytetu-attendance-table", region),
                description="hytetu: attendance per session and organisation",
            )
    return report
