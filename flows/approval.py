"""The coordinator's review of the rendered memos: read them, then approve or reject each
with a comment in the run's form. Only approved versions are ever dispatched.

As a deployment run the review *suspends*: the run leaves the worker (nothing holds a
process, a concurrency slot or a lease for the 14 days it may wait, and a worker restart
does not matter) and runs again from the top once the coordinator answers. Prefect then
hands back the answer instead of suspending a second time. Outside a deployment (a local
run) the process itself waits (``pause_flow_run``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, Literal

from prefect import flow
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.input import RunInput
from pydantic import Field, create_model

from hytetu import approval
from hytetu.errors import HytetuError
from hytetu.localtime import LocalTime
from hytetu.phases import default_out_dir, resolve_as_of
from hytetu.reports import artifact_key
from tasks import review

DEFAULT_TIMEOUT_DAYS = 14.0


def review_form(
    lang: str, items: list[approval.FormItem], days: float, until: datetime
) -> type[RunInput]:
    """The form's model: who decides, one choice and comment per memo (titled with the
    memo's name), approve-all and a common comment; every label in ``lang``."""
    texts = approval.TEXTS[lang]
    choices = approval.CHOICES[lang]
    answer = create_model(
        "MemoAnswer",
        __config__={"title": texts["decision"]},
        decision=(Literal[choices], Field(choices[2], title=texts["decision"])),  # type: ignore[valid-type]
        comment=(str, Field("", title=texts["memo_comment"], max_length=2000)),
    )
    intro = texts["intro"].format(days=f"{days:g}", until=f"{until:%d.%m.%Y %H:%M}")
    fields: dict[str, Any] = {
        "reviewer": (
            str,
            Field(
                title=texts["reviewer"],
                # The UI's resume dialog draws the form's own description with no
                # height (Prefect 3.9), so the instructions open the first field.
                description=f"{intro} {texts['reviewer_help']}",
                min_length=1,
                max_length=200,
            ),
        )
    }
    for item in items:
        help_text = texts["memo_help"].format(
            number=item.number, filename=item.filename, link=item.link
        )
        fields[item.key] = (
            answer,
            Field(default_factory=answer, title=item.title, description=help_text),
        )
    fields["approve_all"] = (
        bool,
        Field(False, title=texts["approve_all"], description=texts["approve_all_help"]),
    )
    fields["comment"] = (
        str,
        Field("", title=texts["comment"], description=texts["comment_help"], max_length=2000),
    )
    model = create_model("MemoReview", __base__=RunInput, **fields)
    links = "\n".join(f"- [{i.title}]({i.link}) · {i.filename}" for i in items)
    return model.with_initial_data(description=f"{intro}\n\n{links}")


def _suspendable() -> bool:
    """A deployment run can leave the worker while it waits; a local run cannot."""
    context = FlowRunContext.get()
    return bool(context and context.flow_run and context.flow_run.deployment_id)


@flow(name="review-memos", log_prints=True)
def review_memos(
    out_dir: str | None = None,
    timeout_days: float = DEFAULT_TIMEOUT_DAYS,
    poll_seconds: int = 10,
    region: str | None = None,
    as_of: LocalTime = None,
) -> dict:
    """Publish every memo waiting for approval, wait until the coordinator answers the
    review form (at most ``timeout_days``), and record the decisions.

    Args:
        out_dir: The folder the PDFs are also written to (memos/). Empty: HYTETU_OUT.
        timeout_days: How long the run waits for the answer before it fails.
        poll_seconds: How often a local (non-deployment) run looks for the answer.
        region: The region's key (region.yaml). Empty means the only region loaded.
        as_of: When the decisions count as made, in a simulated year (a date or a time
            in the region's time zone). Empty means when the coordinator answers.
    """
    waiting = review.active_reviews(region)
    if waiting:
        print(f"A review already waits for the same memos: {', '.join(waiting)}")
        return {"approved": [], "rejected": [], "already_waiting": waiting}
    lang, items = review.form_items(region)
    review.publish_memo_artifacts(out_dir or default_out_dir(), region)
    if not items:
        print("No memo is waiting for approval.")
        return {"approved": [], "rejected": []}
    print(f"{len(items)} memos wait for approval: {', '.join(i.filename for i in items)}")
    until = resolve_as_of(None, region=region) + timedelta(days=timeout_days)
    form = review_form(lang, items, timeout_days, until)
    # The same drafts, the same key: a resumed run gets its answer back; new drafts (a
    # render while the form waited) ask again rather than apply the answer to them.
    ids = ",".join(str(i.version_id) for i in items)
    key = artifact_key(f"memo-review-{hashlib.sha256(ids.encode()).hexdigest()[:12]}", region)
    timeout = int(timeout_days * 24 * 3600)
    try:
        if _suspendable():
            answer = suspend_flow_run(wait_for_input=form, timeout=timeout, key=key)
        else:
            answer = pause_flow_run(
                wait_for_input=form, timeout=timeout, poll_interval=poll_seconds, key=key
            )
        data = answer.model_dump()
        result = review.record_review(
            approval.decisions_from(data, items, lang),
            actor=data["reviewer"],
            approve_all=data["approve_all"],
            comment=data["comment"] or None,
            at=resolve_as_of(as_of, region=region) if as_of else None,
            region=region,
        )
    except FlowPauseTimeout:
        review.publish_review_failure(approval.EXPIRED, f"{timeout_days:g}", region)
        raise
    except HytetuError as e:
        review.publish_review_failure(approval.FAILED, str(e), region)
        raise
    print(f"approved: {result['approved'] or '-'}; rejected: {result['rejected'] or '-'}")
    return result
