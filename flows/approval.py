"""The coordinator's review of the rendered memos: read them in the Prefect UI, then
approve or reject each with a comment. Only approved versions are ever dispatched."""

from __future__ import annotations

from typing import Literal

from prefect import flow
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import BaseModel, Field

from hytetu.memos import Decision
from hytetu.phases import default_out_dir
from hytetu.reports import artifact_key
from tasks import review

DEFAULT_TIMEOUT_DAYS = 14.0


class MemoDecision(BaseModel):
    """The decision on one memo version."""

    version_id: int = Field(description="The version's id (shown in its artifact)")
    filename: str = Field("", description="The PDF, for the reader of this form")
    decision: Literal["approve", "reject", "undecided"] = Field(
        "undecided", description="approve: can be sent; reject: never sent as it is"
    )
    comment: str = Field("", description="Kept with the decision, e.g. what to correct")


class MemoReview(RunInput):
    """The review form the flow run waits for."""

    reviewer: str = Field(description="Who decides; kept with every decision")
    approve_all: bool = Field(False, description="Approve every memo that is not rejected below")
    comment: str = Field("", description="A note kept with every decision without its own")
    decisions: list[MemoDecision] = Field(default_factory=list)

    def to_decisions(self) -> list[Decision]:
        out = []
        for d in self.decisions:
            if d.decision == "undecided" and self.approve_all:
                continue  # approve_all covers it
            out.append(
                Decision(
                    d.version_id,
                    None if d.decision == "undecided" else d.decision == "approve",
                    d.comment or None,
                )
            )
        return out


@flow(name="review-memos", log_prints=True)
def review_memos(
    out_dir: str | None = None,
    timeout_days: float = DEFAULT_TIMEOUT_DAYS,
    poll_seconds: int = 10,
    region: str | None = None,
) -> dict:
    """Publish every memo waiting for approval as an artifact, pause until the coordinator
    answers the review form (at most ``timeout_days``), and record the decisions.

    Args:
        out_dir: The folder the PDFs to read are written to (memos/). Empty: HYTETU_OUT.
        timeout_days: How long the run waits for the answer before it fails.
        poll_seconds: How often the paused run looks for the answer.
        region: The region's key (region.yaml). Empty means the only region loaded.
    """
    drafts = review.drafts_for_review(out_dir or default_out_dir(), region)
    review.publish_memo_artifacts(drafts)
    if not drafts:
        print("No memo is waiting for approval.")
        return {"approved": [], "rejected": []}
    print(f"{len(drafts)} memos wait for approval: {', '.join(d['filename'] for d in drafts)}")
    form = MemoReview.with_initial_data(
        description=(
            "Read the memo artifacts of this flow run, then approve or reject each memo "
            "(or tick approve_all) and resume."
        ),
        decisions=[
            MemoDecision(version_id=d["version_id"], filename=d["filename"]) for d in drafts
        ],
    )
    answer = pause_flow_run(
        wait_for_input=form,
        timeout=int(timeout_days * 24 * 3600),
        poll_interval=poll_seconds,
        key=artifact_key("memo-review", region),
    )
    result = review.record_review(
        answer.to_decisions(),
        actor=answer.reviewer,
        approve_all=answer.approve_all,
        comment=answer.comment or None,
        region=region,
    )
    print(f"approved: {result['approved'] or '-'}; rejected: {result['rejected'] or '-'}")
    return result
