"""Dispatch approved memos to each municipality's registry (kirjaamo).

The send rate and "never the same row twice" are kept by the database (a shared rate
limiter and leased claims in hytetu.outbox), so any number of these runs, from the daily
tick, the UI or another worker, can overlap safely.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from hytetu.dispatch import read_csv
from hytetu.localtime import LocalTime
from hytetu.phases import default_out_dir, resolve_as_of
from hytetu.reports import artifact_key
from tasks import phases
from tasks.reporting import publish

TABLE_COLUMNS = [
    "state",
    "this_run",
    "recipient",
    "cc",
    "municipality",
    "document",
    "attachment_sha256",
    "message_id",
    "sent_at",
    "attempts",
    "error",
]


@flow(name="dispatch-memos", log_prints=True)
def dispatch_memos(
    as_of: LocalTime = None, out_dir: str | None = None, region: str | None = None
) -> dict:
    """Send each approved memo to its registries, once; report what went where.

    Args:
        as_of: The moment to act as of, in the region's time zone: a date (that day's
            07:00 tick) or a time, e.g. 2.10.2025, 2025-10-02 07:00. Empty means now.
        out_dir: The folder for the file outbox and reports/. Empty means HYTETU_OUT.
        region: The region's key (region.yaml). Empty means the only region loaded.
    """
    report = phases.dispatch_memos(
        resolve_as_of(as_of, region=region), out_dir or default_out_dir(), region
    )
    publish(report, region)
    publish_letters(report, region)
    publish_bounced(report, region)
    return report


def publish_bounced(report: dict, region: str | None = None) -> None:
    """A bounced letter is a failure the coordinator must act on: the registry's address
    in region.yaml is wrong. Left under a fixed key while any letter stays bounced."""
    bounced = report.get("did", {}).get("bounced") or []
    if not bounced:
        return
    lines = [
        "# Epäonnistui / Misslyckades: kirje palautui / brevet returnerades",
        "",
        "Kirjaamo ei saanut kirjettä. Tarkista kirjaamon osoite (region.yaml, "
        "municipalities → registry) ja lataa asetukset uudelleen: vain tämä kirje lähetetään "
        "uudelleen. / Registratorskontoret fick inte brevet. Kontrollera adressen "
        "(region.yaml, municipalities → registry) och ladda inställningarna på nytt: bara "
        "detta brev skickas igen.",
        "",
        *[f"- {b}" for b in bounced],
        "",
    ]
    create_markdown_artifact(
        markdown="\n".join(lines),
        key=artifact_key("hytetu-dispatch-bounced", region),
        description=f"hytetu: {len(bounced)} letters bounced",
    )


def publish_letters(report: dict, region: str | None = None) -> None:
    """The proof of this run as a table artifact: every letter, its state and hashes."""
    reports = [f for f in report.get("files", []) if f.endswith(".csv")]
    if not reports:
        return
    rows = [{c: row.get(c, "") for c in TABLE_COLUMNS} for row in read_csv(Path(reports[0]))]
    create_table_artifact(
        table=rows,
        key=artifact_key("dispatch-letters", region),
        description=f"Kirjaamoihin lähetetyt kirjeet / letters to registries ({reports[0]})",
    )
