"""Tasks of the memo review: drafts out as Markdown artifacts, decisions back into the DB."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact

from hytetu import memos


@task(name="drafts-for-review")
def drafts_for_review(out_dir: str, region: str | None = None) -> list[dict]:
    return memos.prepare_review(Path(out_dir), region=region)


@task(name="publish-memo-artifacts")
def publish_memo_artifacts(items: list[dict]) -> int:
    """One Markdown artifact per draft: the memo's text and where its PDF is."""
    for item in items:
        create_markdown_artifact(
            markdown=item["markdown"],
            key=item["key"],
            description=f"hytetu: {item['filename']} (version {item['number']}), for review",
        )
    return len(items)


@task(name="record-review")
def record_review(
    decisions: list[memos.Decision],
    actor: str,
    approve_all: bool,
    comment: str | None,
    at: datetime | None = None,
    region: str | None = None,
) -> dict[str, list[str]]:
    return memos.record_review(
        decisions, actor=actor, approve_all=approve_all, comment=comment, at=at, region=region
    )
