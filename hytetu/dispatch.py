"""Dispatch (lähetys): approved memos to each municipality's registry (kirjaamo), once, with proof.

One outgoing message per (approved version, recipient), queued in the outbox under a
deterministic key, so a re-run or a second worker never makes a second letter; then the
unsent ones are delivered at the configured rate, with retries of temporary errors, and a
CSV report of what went where (with each attachment's SHA-256) is written for the record.
"""

from __future__ import annotations

import csv
import email
import hashlib
import re
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import EmailMessage
from functools import partial
from pathlib import Path
from typing import Any, cast

from sqlalchemy import select, update

from hytetu import db
from hytetu.config import DispatchSettings
from hytetu.mail import Attachment, Transport, build_message, make_transport
from hytetu.memos import memo_language
from hytetu.outbox import DeliveryReport, RetryPolicy, deliver_pending, enqueue, run_id
from hytetu.ratelimit import RateLimiter
from hytetu.safe import csv_row
from hytetu.state import CycleView, cycle_view

REPORT_COLUMNS = [
    "row_id",
    "recipient",
    "cc",
    "municipality",
    "document",
    "version",
    "attachment_sha256",
    "message_id",
    "state",
    "attempts",
    "sent_at",
    "error",
    "this_run",
    "registry_reference",
    "receipt_at",
    "bounced_at",
]


@dataclass
class DispatchPlan:
    queued: int = 0
    already: int = 0
    superseded: int = 0
    waiting_approval: list[str] | None = None
    problems: list[str] = field(default_factory=list)  # letters not queued, and why
    notes: list[str] = field(default_factory=list)  # letters queued without their annex, and why
    resent_after_bounce: list[str] = field(default_factory=list)  # to a corrected address
    bounced: list[str] = field(default_factory=list)  # bounced, the address not yet corrected


def dispatch_settings(view: CycleView) -> DispatchSettings:
    return DispatchSettings.model_validate(view.cycle.settings.get("dispatch") or {})


def is_pdfa(pdf: bytes) -> bool:
    """A PDF whose XMP metadata declares PDF/A (``pdfaid:part``), compressed or not."""
    if not pdf.startswith(b"%PDF-"):
        return False
    if b"pdfaid:part" in pdf:
        return True
    for match in re.finditer(rb"stream\r?\n", pdf):
        chunk = pdf[match.end() : match.end() + 200_000]
        try:
            text = zlib.decompressobj().decompress(chunk, 1_000_000)
        except zlib.error:
            continue
        if b"pdfaid:part" in text:
            return True
    return False


def check_attachments(attachments: list[Attachment], limit_mb: float) -> str | None:
    """Why these attachments cannot go out, or None: each a PDF/A, the total under the limit."""
    for a in attachments:
        if a.mimetype == "application/pdf" and not is_pdfa(a.content):
            return f"{a.filename} is not a PDF/A document (no pdfaid:part in its XMP metadata)"
    total = sum(len(a.content) for a in attachments)
    if total > limit_mb * 1024 * 1024:
        names = ", ".join(a.filename for a in attachments)
        return (
            f"{names}: the attachments are {total / 1024 / 1024:.1f} MB, over the limit of "
            f"{limit_mb:g} MB (dispatch.max_attachment_mb in cycle.yaml); not sent"
        )
    return None


def letter_attachments(
    version: db.MemoVersion, limit_mb: float
) -> tuple[list[Attachment], str | None]:
    """The memo and its annex (the feedback verbatim), when both fit in ``limit_mb``
    together; else the memo alone, and why the annex was left out (the cover letter says
    so too, and where to ask for it)."""
    memo = Attachment(version.filename, version.pdf)
    if not version.annex_filename or version.annex_pdf is None:
        return [memo], None
    annex = Attachment(version.annex_filename, version.annex_pdf)
    total = len(memo.content) + len(annex.content)
    if total <= limit_mb * 1024 * 1024 or len(memo.content) > limit_mb * 1024 * 1024:
        return [memo, annex], None
    return [memo], (
        f"{annex.filename} ({len(annex.content) / 1024 / 1024:.1f} MB) not attached to "
        f"{memo.filename}: together {total / 1024 / 1024:.1f} MB, over the limit of "
        f"{limit_mb:g} MB (dispatch.max_attachment_mb in cycle.yaml); the letter says so"
    )


@dataclass(frozen=True)
class Recipient:
    """Where one letter goes: a registry (with its cc) or a stakeholder's contacts."""

    key: str  # in the dedupe key: the municipality's key, or stakeholder:<key>
    name: str
    to: list[tuple[str, str]]
    cc: list[tuple[str, str]]


def _recipients(view: CycleView, memo: db.Memo, settings: DispatchSettings) -> list[Recipient]:
    """Who gets ``memo``: the registry of every municipality of its group (of the region,
    for the summary) whose languages include the memo's, named in that language.

    A bilingual municipality gets two letters, one per language, not one with both: each
    language version is a document of its own (its own approval, versions and cover
    letter, and a corrected version replaces only that language's letter), and a registry
    records each incoming document with its own subject line in its own language. A
    Swedish-speaking municipality gets only the Swedish one.
    """
    s = view.session
    language = memo_language(view, memo)
    if memo.group is not None:
        municipalities = [m for m in memo.group.municipalities if m.active]
    else:
        municipalities = list(
            s.scalars(
                select(db.Municipality)
                .filter_by(region_id=view.region.id, active=True)
                .order_by(db.Municipality.key)
            )
        )
    municipalities = [m for m in municipalities if language in view.municipality_languages(m)]
    hyte: dict[str, list[tuple[str, str]]] = {}
    if settings.cc_contacts:
        for c in view.contacts():
            # A coordinator is copied on the letter in their own language, or on every
            # letter when their municipality gets none in it.
            own = c.language or view.language
            if c.role == "hyte_coordinator" and (
                own == language or own not in _languages_of(view, c.org_key)
            ):
                hyte.setdefault(c.org_key, []).append((c.name, c.email))
    out = []
    for m in municipalities:
        name = view.text(m.name, language)
        cc = [p for p in hyte.get(m.key, []) if p[1].lower() != m.registry_email.lower()]
        out.append(Recipient(m.key, name, [(name, m.registry_email)], cc))
    if memo.group is None and settings.summary_to_stakeholders:
        contacts: dict[str, list[tuple[str, str]]] = {}
        for c in view.contacts():
            if (c.language or view.language) == language:  # each in their own language
                contacts.setdefault(c.org_key, []).append((c.name, c.email))
        for st in s.scalars(
            select(db.Stakeholder)
            .filter_by(region_id=view.region.id, active=True)
            .order_by(db.Stakeholder.key)
        ):
            if contacts.get(st.key):
                out.append(
                    Recipient(
                        f"stakeholder:{st.key}", view.text(st.name, language), contacts[st.key], []
                    )
                )
    return out


def _languages_of(view: CycleView, municipality_key: str) -> list[str]:
    m = view.session.scalars(
        select(db.Municipality).filter_by(region_id=view.region.id, key=municipality_key)
    ).one_or_none()
    return view.municipality_languages(m) if m is not None else list(view.region.languages)


def queue_letters(
    view: CycleView, as_of: datetime, settings: DispatchSettings | None = None
) -> DispatchPlan:
    """Queue a letter to every recipient for the newest approved version of each memo.

    A letter of an older version that is still unsent is superseded (never sent); the new
    version's cover letter says it replaces the earlier one where that one went out.
    """
    settings = settings or dispatch_settings(view)
    plan = DispatchPlan(waiting_approval=[])
    s = view.session
    memos = s.scalars(select(db.Memo).filter_by(cycle_id=view.cycle.id).order_by(db.Memo.key))
    for memo in memos:
        if not memo.versions:
            continue
        if memo.versions[-1].status == "draft":
            plan.waiting_approval.append(memo.versions[-1].filename)  # type: ignore[union-attr]
        approved = [v for v in memo.versions if v.status == "approved"]
        if not approved:
            continue
        version = approved[-1]
        earlier = {v.id: v for v in approved[:-1]}
        if earlier:
            plan.superseded += _supersede(s, list(earlier), version)
        attachments, annex_left_out = letter_attachments(version, settings.max_attachment_mb)
        problem = check_attachments(attachments, settings.max_attachment_mb)
        if problem is not None:
            plan.problems.append(problem)
            continue
        if annex_left_out:
            plan.notes.append(annex_left_out)
        for r in _recipients(view, memo, settings):
            key = f"memo:{version.id}:{r.key}"
            replaces = _replaced(s, earlier, r.key) if earlier else None
            _, created = enqueue(
                s,
                cycle_id=view.cycle.id,
                dedupe_key=key,
                purpose="memo",
                sender_email=view.region.sender_email,
                build=partial(
                    _letter,
                    view,
                    memo,
                    version,
                    r,
                    replaces,
                    attachments,
                    bool(annex_left_out),
                    as_of,
                ),
                memo_version_id=version.id,
            )
            if created:
                plan.queued += 1
            else:
                plan.already += 1
    return plan


def _supersede(s: Any, earlier_ids: list[int], version: db.MemoVersion) -> int:
    result = s.execute(
        update(db.OutgoingMessage)
        .where(
            db.OutgoingMessage.memo_version_id.in_(earlier_ids),
            db.OutgoingMessage.state == "pending",
        )
        .values(
            state="superseded",
            last_error=f"replaced by {version.filename} before it was sent",
        )
    )
    return int(result.rowcount or 0)


def _replaced(s: Any, earlier: dict[int, db.MemoVersion], recipient_key: str) -> str | None:
    """The filename of the newest earlier version that went (or may have gone) to them."""
    for vid in sorted(earlier, reverse=True):
        state = s.scalar(
            select(db.OutgoingMessage.state).filter_by(dedupe_key=f"memo:{vid}:{recipient_key}")
        )
        if state in ("sent", "sending"):
            return earlier[vid].filename
    return None


def _letter(
    view: CycleView,
    memo: db.Memo,
    version: db.MemoVersion,
    r: Recipient,
    replaces: str | None,
    attachments: list[Attachment],
    annex_left_out: bool,
    as_of: datetime,
    message_id: str,
) -> EmailMessage:
    language = memo_language(view, memo)  # a Swedish memo gets a Swedish cover letter
    context = {
        "registry_name": r.name,
        "region": view.text(view.region.name, language),
        "cycle_title": view.text(view.cycle.title, language),
        "document_kind": ("muistio" if memo.kind == "group" else "koonti")
        if language == "fi"
        else ("promemoria" if memo.kind == "group" else "sammandrag"),
        "group": view.text(memo.group.name, language) if memo.group else None,
        "reference": view.cycle.reference,
        "replaces": replaces,
        "filename": version.filename,
        "annex": version.annex_filename if not annex_left_out else None,
        "annex_left_out": version.annex_filename if annex_left_out else None,
        "contact": view.contact(language),
        "sender": view.sender_name(language),
        "sender_email": view.region.sender_email,
    }
    return build_message(
        sender=(view.sender_name(language), view.region.sender_email),
        to=r.to,
        cc=r.cc or None,
        subject=view.render("cover_letter_subject.txt.j2", language, context).strip(),
        text=view.render("cover_letter.txt.j2", language, context),
        attachments=attachments,
        message_id=message_id,
        date=as_of,
        # a registry's automatic receipt is wanted; people (the summary to stakeholders) get
        # the letter with Out of Office replies suppressed (mail.AUTOMATIC_REPLIES)
        purpose="contact_letter" if r.key.startswith("stakeholder:") else "registry_letter",
        language=language,
    )


# --- bounced letters ----------------------------------------------------------------------

#: Where the coordinator corrects a registry's address, named in every bounce report.
REGISTRY_FIELD = "region.yaml: municipalities[{key}].registry"


def unresolved_bounces(s: Any, cycle_id: int) -> list[db.OutgoingMessage]:
    """The cycle's memo letters that bounced and have not been sent again."""
    M = db.OutgoingMessage
    resent = select(M.replaces_id).where(M.replaces_id.is_not(None)).scalar_subquery()
    bounced = s.scalars(
        select(M)
        .where(M.cycle_id == cycle_id, M.purpose == "memo", M.state == "bounced")
        .where(M.id.not_in(resent))
        .order_by(M.id)
    )
    return [m for m in bounced if not _replaced_by_newer_version(s, m)]


def _replaced_by_newer_version(s: Any, m: db.OutgoingMessage) -> bool:
    """A newer approved version of the memo has its own letter to the same recipient
    (which carries the new address if it was corrected): the bounce of the old one is
    history, not a letter to send again."""
    version = s.get(db.MemoVersion, m.memo_version_id) if m.memo_version_id else None
    if version is None:
        return False
    recipient = m.dedupe_key.split(":", 2)[2].split("#", 1)[0]
    newer = select(db.MemoVersion.id).where(
        db.MemoVersion.memo_id == version.memo_id, db.MemoVersion.number > version.number
    )
    keys = s.scalars(
        select(db.OutgoingMessage.dedupe_key).where(
            db.OutgoingMessage.memo_version_id.in_(newer),
            db.OutgoingMessage.state != "bounced",
        )
    )
    return any(k.split(":", 2)[2].split("#", 1)[0] == recipient for k in keys)


def bounce_message(view: CycleView, m: db.OutgoingMessage) -> str:
    """What the coordinator reads about a bounced letter: whose, why, and what to fix."""
    key = m.dedupe_key.split(":", 2)[2].split("#", 1)[0]
    region_yaml = Path(view.cycle.config_folder) / "region.yaml"
    if key.startswith("stakeholder:"):  # the summary to an NGO's or a parish's contacts
        return (
            f"{', '.join(m.recipients)}: {m.subject}: palautui / returned ({m.bounce_reason}). "
            "Tarkista yhteyshenkilön osoite / check the contact's address: region.yaml: "
            f"stakeholders[{key.split(':', 1)[1]}].contacts[].email in {region_yaml}; tätä "
            "kirjettä ei lähetetä uudelleen itsestään / this letter is not resent by itself"
        )
    where = REGISTRY_FIELD.format(key=key)
    return (
        f"{', '.join(m.recipients)}: {m.subject}: palautui / returned ({m.bounce_reason}). "
        f"Tarkista kirjaamon osoite / check the registry address: {where} in "
        f"{region_yaml}; korjattu osoite lähettää vain "
        "tämän kirjeen uudelleen / a corrected address resends only this letter"
    )


def resend_bounced(view: CycleView, as_of: datetime) -> tuple[list[str], list[str]]:
    """Each bounced letter whose registry has another address in the config now (a reload
    after the correction) is queued again to it: the same letter with a new Message-ID
    whose In-Reply-To and References name the first. Returns (resent, still bounced)."""
    s = view.session
    registries = {
        m.key: m.registry_email
        for m in s.scalars(select(db.Municipality).filter_by(region_id=view.region.id))
    }
    resent, waiting = [], []
    for m in unresolved_bounces(s, view.cycle.id):
        key = m.dedupe_key.split(":", 2)[2].split("#", 1)[0]
        address = registries.get(key)
        if address is None or address.lower() in (r.lower() for r in m.recipients):
            waiting.append(bounce_message(view, m))
            continue
        row, created = enqueue(
            s,
            cycle_id=m.cycle_id,
            dedupe_key=f"{m.dedupe_key.split('#', 1)[0]}#resend:{address.lower()}",
            purpose="memo",
            sender_email=view.region.sender_email,
            build=partial(_readdressed, m.raw, address, as_of),
            memo_version_id=m.memo_version_id,
        )
        row.replaces_id = m.id
        if created:
            resent.append(f"{', '.join(m.recipients)} -> {address}: {m.subject}")
    return resent, waiting


def _readdressed(raw: bytes, address: str, as_of: datetime, message_id: str) -> EmailMessage:
    """The bounced letter to ``address``: the same parts, a new Message-ID that refers to
    the first (In-Reply-To, References), today's date."""
    from email.utils import format_datetime

    from hytetu.mail import POLICY

    msg = cast(EmailMessage, email.message_from_bytes(raw, policy=POLICY))
    first = str(msg["Message-ID"])
    earlier = str(msg["References"] or "").split()
    name = msg["To"].addresses[0].display_name if msg["To"] else ""
    for header in ("To", "Message-ID", "Date", "In-Reply-To", "References"):
        del msg[header]
    username, domain = address.rsplit("@", 1)
    from email.headerregistry import Address

    msg["To"] = Address(display_name=name, username=username, domain=domain)
    msg["Date"] = format_datetime(as_of)
    msg["Message-ID"] = message_id
    msg["In-Reply-To"] = first
    msg["References"] = " ".join([*earlier, first])
    return msg


# --- delivery and the report -------------------------------------------------------------


@dataclass
class DispatchResult:
    plan: DispatchPlan
    delivery: DeliveryReport
    rows: list[dict[str, str]]
    csv_path: Path | None
    run: str

    def failures(self) -> list[str]:
        """Every failure of this run, for a person: recipient, document, reason."""
        by_id = {r["row_id"]: r for r in self.rows}
        out = list(self.plan.problems) + list(self.plan.bounced)
        for row_id, why in self.delivery.failed + self.delivery.retry_later:
            r = by_id.get(str(row_id), {})
            later = "" if (row_id, why) in self.delivery.failed else " (tried again next run)"
            out.append(f"{r.get('recipient', row_id)}: {r.get('document', '')}: {why}{later}")
        return out

    def resent(self) -> list[str]:
        by_id = {r["row_id"]: r for r in self.rows}
        return [
            f"{by_id[str(i)]['recipient']}: {by_id[str(i)]['document']} "
            f"(re-sent with the same Message-ID {by_id[str(i)]['message_id']})"
            for i in self.delivery.resent
            if str(i) in by_id
        ]


def dispatch_memos(
    url: str | None,
    as_of: datetime,
    out: Path,
    region: str | None = None,
    *,
    transport: Transport | None = None,
    retry: RetryPolicy | None = None,
    limiter: Any | None = None,
) -> DispatchResult:
    """Queue the letters, deliver every unsent one (taking over those a dead run left), and
    write the report (unless the run did nothing). ``transport`` defaults to the one the
    region's config chooses."""
    run = run_id()
    with db.session_scope(url) as s:
        view = cycle_view(s, region)
        settings = dispatch_settings(view)
        plan = queue_letters(view, as_of, settings)
        plan.resent_after_bounce, plan.bounced = resend_bounced(view, as_of)
        cycle_id, year = view.cycle.id, view.cycle.year
        sender = view.region.sender_email
        mail = view.mail_settings()
        tz = view.tz
    if transport is None:
        transport = make_transport(mail, out)
    if limiter is None and transport.name != "file":  # the dry run protects no mail server
        limiter = RateLimiter(url, sender, limit=settings.rate_per_minute, window=60.0, run=run)
    delivery = deliver_pending(
        url,
        transport,
        cycle_id=cycle_id,
        sender_email=sender,
        purposes=["memo"],
        lease_seconds=settings.lease_seconds,
        retry=retry or RetryPolicy(attempts=4, base=2.0, cap=60.0),
        limiter=limiter,
        claimant=run,
    )
    d = delivery
    if not (
        plan.queued
        or plan.problems
        or plan.bounced
        or d.sent
        or d.failed
        or d.retry_later
        or d.recovered
    ):
        # Nothing queued, sent, failed or taken over: no report (the last one stands), so
        # a second run costs next to nothing instead of re-reading every letter.
        return DispatchResult(plan, delivery, [], None, run)
    with db.session_scope(url) as s:
        rows = report_rows(s, cycle_id, delivery)
    stamp = datetime.now(tz).strftime("%Y%m%dT%H%M%S")
    path = out / "reports" / f"dispatch-{year}-{stamp}-{run.rsplit(':', 1)[-1][:8]}.csv"
    write_csv(rows, path)
    return DispatchResult(plan, delivery, rows, path, run)


def _this_run(report: DeliveryReport) -> dict[int, str]:
    marks: dict[int, str] = {}
    for i in report.sent:
        marks[i] = "sent"
    for i in report.resent:
        marks[i] = "re-sent" if marks.get(i) == "sent" else "re-sent, " + marks.get(i, "")
    for i in report.found_sent:
        marks[i] = "found sent"
    for i, _ in report.failed:
        marks[i] = "failed"
    for i, _ in report.retry_later:
        marks[i] = "retry later"
    return marks


def report_rows(
    session: Any, cycle_id: int, report: DeliveryReport | None = None
) -> list[dict[str, str]]:
    """One row per memo letter of the cycle: what went where, when, and its proof."""
    marks = _this_run(report) if report else {}
    versions = {
        v.id: v
        for v in session.scalars(
            select(db.MemoVersion).join(db.Memo).where(db.Memo.cycle_id == cycle_id)
        )
    }
    rows = []
    for m in session.scalars(
        select(db.OutgoingMessage)
        .filter_by(cycle_id=cycle_id, purpose="memo")
        .order_by(db.OutgoingMessage.id)
    ):
        parsed = email.message_from_bytes(m.raw, policy=policy.default)
        hashes = [
            f"{part.get_filename()}={_sha256(part.get_payload(decode=True))}"
            for part in parsed.walk()
            if part.get_filename()
        ]
        version = versions.get(m.memo_version_id or -1)
        rows.append(
            {
                "row_id": str(m.id),
                "recipient": ", ".join(a.addr_spec for a in parsed["To"].addresses),
                "cc": ", ".join(a.addr_spec for a in getattr(parsed["Cc"], "addresses", ())),
                "municipality": m.dedupe_key.split(":", 2)[2].split("#", 1)[0],
                "document": version.filename if version else "",
                "version": str(version.number) if version else "",
                "attachment_sha256": "; ".join(hashes),
                "message_id": m.message_id,
                "state": m.state,
                "attempts": str(m.attempts),
                "sent_at": m.sent_at.isoformat() if m.sent_at else "",
                "error": m.bounce_reason or m.last_error or "",
                "this_run": marks.get(m.id, ""),
                "registry_reference": m.registry_reference or "",
                "receipt_at": m.receipt_at.isoformat() if m.receipt_at else "",
                "bounced_at": m.bounced_at.isoformat() if m.bounced_at else "",
            }
        )
    return rows


def _sha256(payload: Any) -> str:
    return hashlib.sha256(payload if isinstance(payload, bytes) else b"").hexdigest()


def write_csv(rows: list[dict[str, str]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=REPORT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(csv_row(r) for r in rows)  # no cell a spreadsheet would run
    tmp.replace(path)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with Path(path).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))
