"""Tasks of the memo review: drafts out as artifacts, the form's items, decisions back into
the DB, and the Prefect side of it (is a review already waiting, start one, say why one
failed)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from uuid import UUID

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.context import FlowRunContext
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound

from hytetu import approval, memos, reports

REVIEW_FLOW = "review-memos"
REVIEW_DEPLOYMENT_ENV = "HYTETU_REVIEW_DEPLOYMENT"
REVIEW_DEPLOYMENT = "review-memos/01-review-memos"
# A run in one of these states is a review still going on (it waits, or runs).
ACTIVE = [
    StateType.SCHEDULED,
    StateType.PENDING,
    StateType.RUNNING,
    StateType.PAUSED,
    StateType.CANCELLING,
]
# What Prefect's server writes when a suspended run's time is up.
EXPIRED = "paused and never resumed"


def _current_run() -> tuple[UUID | None, bool]:
    """This flow run's id, and whether it is a deployment run."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None, False
    return context.flow_run.id, context.flow_run.deployment_id is not None


def _review_runs(region: str | None, states: list[StateType] | None, limit: int = 50) -> list:
    run_filter = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=states)) if states else None
    )
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[REVIEW_FLOW])),
            flow_run_filter=run_filter,
            sort=FlowRunSort.START_TIME_DESC,
            limit=limit,
        )
    return [r for r in runs if (r.parameters.get("region") or None) == (region or None)]


@task(name="active-reviews")
def active_reviews(region: str | None = None) -> list[str]:
    """The names of the other review runs of ``region`` that still wait or run: a second
    review of the same drafts would only make a second form."""
    me, _ = _current_run()
    return [r.name for r in _review_runs(region, ACTIVE) if r.id != me]


@task(name="start-review")
def start_review(out_dir: str, region: str | None = None, as_of: str | None = None) -> str:
    """Start the review deployment when drafts wait and no review does yet, so that the
    coordinator only answers its form. Outside a deployment (a local run, the demo) there is
    nothing to start: the approval request artifact says how to approve. A tick run with
    an explicit ``as_of`` (a simulated year) has the decisions dated at that moment."""
    _, deployed = _current_run()
    if not deployed:
        return "see the approval request artifact"
    active = active_reviews.fn(region)
    if active:
        return f"the review {active[0]} waits for the coordinator's answer"
    last = _review_runs(region, None, limit=1)
    if last and last[0].state and last[0].state.is_failed():
        message = last[0].state.message or ""
        expired = EXPIRED in message
        create_markdown_artifact(
            markdown=approval.failure_markdown(
                approval.EXPIRED if expired else approval.FAILED, message, last[0].name
            ),
            key=reports.artifact_key("hytetu-review-failure", region),
            description="hytetu: the last memo review failed; a new one was started",
        )
    name = os.environ.get(REVIEW_DEPLOYMENT_ENV, "").strip() or REVIEW_DEPLOYMENT
    try:
        run: FlowRun = run_deployment(  # type: ignore[assignment]  # sync in a sync task
            name=name,
            parameters={"out_dir": out_dir, "region": region, "as_of": as_of},
            timeout=0,
            as_subflow=False,
            tags=["hytetu", "approval"],
        )
    except ObjectNotFound:
        return f"start the review by hand: the deployment {name} is not found"
    return f"the review {run.name} was started; answer its form in the Prefect UI"


@task(name="review-form-items")
def form_items(region: str | None = None) -> tuple[str, list[approval.FormItem]]:
    return approval.form_items(region=region)


@task(name="publish-memo-artifacts")
def publish_memo_artifacts(out_dir: str, region: str | None = None) -> int:
    """One Markdown artifact per draft: the memo's text and the links that open it."""
    items = memos.prepare_review(Path(out_dir), region=region)
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


@task(name="publish-review-failure")
def publish_review_failure(kind: str, detail: str, region: str | None = None) -> None:
    """Why the review failed (``approval.EXPIRED`` or ``FAILED``), in fi and sv."""
    create_markdown_artifact(
        markdown=approval.failure_markdown(kind, detail),
        key=reports.artifact_key("hytetu-review-failure", region),
        description="hytetu: the memo review failed",
    )
