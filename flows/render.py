"""Render the memo of each municipality group and the regional summary (HTML + PDF/A)."""

from __future__ import annotations

from prefect import flow

from hytetu.phases import default_out_dir
from tasks import phases, review
from tasks.reporting import publish


@flow(name="render-memos", log_prints=True)
def render_memos(out_dir: str | None = None, region: str | None = None) -> dict:
    """Render new versions of the memos whose content changed; they wait for approval.

    Args:
        out_dir: The folder the memos (PDF/A and HTML) are written to, under memos/. Empty
            means the worker's HYTETU_OUT.
        region: The region's key (region.yaml). Empty means the only region loaded.
    """
    out_dir = out_dir or default_out_dir()
    report = phases.render_memos(out_dir, region)
    publish(report, region)
    # Each draft as a Markdown artifact to read; the review-memos flow takes the decisions.
    review.publish_memo_artifacts(out_dir, region)
    return report
