"""Dispatch (lähetys): approved memos to each municipality's registry (kirjaamo).

One outgoing message per (approved version, registry), queued in the outbox under a
deterministic key, so a re-run or a second worker never makes a second letter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from hytetu import db
from hytetu.mail import Attachment, build_message
from hytetu.outbox import enqueue
from hytetu.state import CycleView


@dataclass
class DispatchPlan:
    queued: int = 0
    already: int = 0
    waiting_approval: list[str] | None = None


def _recipients(view: CycleView, memo: db.Memo) -> list[db.Municipality]:
    if memo.group is not None:
        return [m for m in memo.group.municipalities if m.active]
    return list(
        view.session.scalars(
            select(db.Municipality)
            .filter_by(region_id=view.region.id, active=True)
            .order_by(db.Municipality.key)
        )
    )


def queue_letters(view: CycleView, as_of: datetime) -> DispatchPlan:
    """Queue a letter to every registry for the newest approved version of each memo."""
    plan = DispatchPlan(waiting_approval=[])
    memos = view.session.scalars(
        select(db.Memo).filter_by(cycle_id=view.cycle.id).order_by(db.Memo.key)
    )
    for memo in memos:
        approved = [v for v in memo.versions if v.status == "approved"]
        if not memo.versions:
            continue
        if memo.versions[-1].status == "draft":
            plan.waiting_approval.append(memo.versions[-1].filename)  # type: ignore[union-attr]
        if not approved:
            continue
        version = approved[-1]
        replaces = approved[-2].filename if len(approved) > 1 else None
        for m in _recipients(view, memo):
            language = view.language
            context = {
                "registry_name": view.text(m.name, language),
                "region": view.text(view.region.name, language),
                "cycle_title": view.text(view.cycle.title, language),
                "document_kind": ("muistio" if memo.kind == "group" else "koonti")
                if language == "fi"
                else ("promemoria" if memo.kind == "group" else "sammandrag"),
                "group": view.text(memo.group.name, language) if memo.group else None,
                "reference": view.cycle.reference,
                "replaces": replaces,
                "filename": version.filename,
                "sender": view.region.sender_name,
                "sender_email": view.region.sender_email,
            }

            def build(
                message_id: str,
                m: db.Municipality = m,
                context: dict = context,
                version: db.MemoVersion = version,
                language: str = language,
            ):
                return build_message(
                    sender=(view.region.sender_name, view.region.sender_email),
                    to=[(context["registry_name"], m.registry_email)],
                    subject=view.render("cover_letter_subject.txt.j2", language, context).strip(),
                    text=view.render("cover_letter.txt.j2", language, context),
                    attachments=[Attachment(version.filename, version.pdf)],
                    message_id=message_id,
                    date=as_of,
                    language=language,
                )

            _, created = enqueue(
                view.session,
                cycle_id=view.cycle.id,
                dedupe_key=f"memo:{version.id}:{m.key}",
                purpose="memo",
                sender_email=view.region.sender_email,
                build=build,
                memo_version_id=version.id,
            )
            if created:
                plan.queued += 1
            else:
                plan.already += 1
    return plan
