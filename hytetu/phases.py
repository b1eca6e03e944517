"""The phases of the yearly cycle, each one transaction over the database.

Every phase can be re-run and does only what is still undone; ``due_phases`` tells the daily
tick which phases have work ``as_of``. Output files go under ``out`` (calendars/, memos/,
outbox/ for the file transport). These are plain functions: Prefect tasks wrap them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hytetu import (
    db,
    feedback,
    feedback_import,
    findings,
    invitations,
    localtime,
    memos,
    notes,
    state,
)
from hytetu.config import Config, load_config
from hytetu.dispatch import dispatch_memos, dispatch_settings
from hytetu.load import load_config_into_db
from hytetu.mail import make_transport
from hytetu.migrate import upgrade
from hytetu.outbox import deliver_pending, purposes_due
from hytetu.state import CycleView, cycle_view

PHASES = (
    "read_mailbox",
    "invitations",
    "open_feedback",
    "remind_feedback",
    "import_feedback",
    "import_notes",
    "close_feedback",
    "compile",
    "render",
    "dispatch",
)

# The messages each phase sends. A phase is due while one of them is still to be sent
# (pending, or left "sending" by a run that died), so a re-run finishes what a crash left.
DELIVERS = {
    "invitations": ["invitation", "reminder"],
    "open_feedback": ["feedback_open"],
    "remind_feedback": ["feedback_reminder"],
    "dispatch": ["memo"],
}


@dataclass
class PhaseReport:
    """What a phase did, for logs, artifacts and the demo's summary."""

    phase: str
    did: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    sent: int = 0
    failed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    sent_ids: list[int] = field(default_factory=list)  # outbox rows sent by this run

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load(config_folder: Path | str, url: str | None = None, actor: str = "hytetu") -> PhaseReport:
    """Validate the config, migrate the DB and load the config into it.

    When region.yaml and cycle.yaml are byte for byte what this folder's last load read
    (with the same loader), and no other folder of that region was loaded since, nothing
    is parsed again: the second run of a daily load costs a hash of two files."""
    folder = Path(config_folder).resolve()
    digest = config_digest(folder)
    config: Config | None = None
    if digest is None:  # unreadable files: let the loader say what is wrong
        config = load_config(folder)
    upgrade(url)
    with db.session_scope(url) as s:
        last = _last_load(s, str(folder), digest)
        if last is not None:
            return PhaseReport(
                "load", did={"changes": 0, "unchanged": True}, warnings=last.get("warnings", [])
            )
    config = config or load_config(folder)
    warnings = [str(w) for w in config.warnings]
    with db.session_scope(url) as s:
        result = load_config_into_db(config, s, actor=actor)
        warnings += result.warnings
        details = {"digest": digest, "region": config.region.id, "warnings": warnings}
        db.audit(s, "config.loaded", str(folder), actor, **details)
    return PhaseReport("load", did={"changes": len(result.changes)}, warnings=warnings)


def config_digest(folder: Path) -> str | None:
    """A fingerprint of what ``load`` reads: the two files and the loader's own code."""
    import hashlib

    h = hashlib.sha256(str(folder).encode())
    try:
        for path in (folder / "region.yaml", folder / "cycle.yaml"):
            h.update(path.read_bytes())
        # The indicator files it reads too (any of the folder's: cycle.yaml says which).
        indicators = folder / "indicators"
        if indicators.is_dir():
            for path in sorted(indicators.iterdir()):
                if path.is_file():
                    h.update(path.name.encode() + b"\0" + path.read_bytes())
        for module in ("config.py", "load.py", "yamlsource.py", "indicators.py"):
            h.update((Path(__file__).parent / module).read_bytes())
    except OSError:
        return None
    return h.hexdigest()


def _last_load(s: Any, folder: str, digest: str | None) -> dict[str, Any] | None:
    """The details of ``folder``'s last load if it read the same files and no load of the
    same region (from another folder) came after it."""
    if digest is None:
        return None
    later: set[str] = set()
    query = (
        select(db.AuditEvent)
        .filter_by(action="config.loaded")
        .order_by(db.AuditEvent.id.desc())
        .limit(1000)
    )
    for event in s.scalars(query):
        detail = event.detail or {}
        if event.entity == folder:
            same = detail.get("digest") == digest and detail.get("region") not in later
            return detail if same else None
        later.add(detail.get("region", ""))
    return None


def skip_stale_reminders(view: CycleView, as_of: datetime) -> list[str]:
    """Mark ``skipped`` (with the reason) every reminder still waiting to be sent whose
    point has passed: a session reminder once the session has begun, a feedback
    reminder once the window has closed. A run that died, or a tick that did not run,
    must not remind people of something over when it is recovered."""
    M = db.OutgoingMessage
    waiting = view.session.scalars(
        select(M).where(
            M.cycle_id == view.cycle.id,
            M.state == "pending",
            M.purpose.in_(("reminder", "feedback_reminder")),
        )
    )
    starts = {s.key: s.start for s in view.sessions()}
    skipped = []
    for m in waiting:
        if m.purpose == "reminder":
            start = starts.get(m.dedupe_key.split(":")[2]) if m.dedupe_key.count(":") >= 3 else None
            if start is None or as_of < start:
                continue
            reason = f"not sent: the session began at {view.local(start):%d.%m.%Y %H:%M}"
        else:
            closed = feedback.closes_at(view)
            if as_of < closed:
                continue
            reason = f"not sent: the feedback window closed at {view.local(closed):%d.%m.%Y %H:%M}"
        m.state, m.last_error = "skipped", reason
        skipped.append(f"message {m.id}: {reason}")
    return skipped


def _deliver(url: str | None, out: Path, phase: str, region: str | None = None) -> PhaseReport:
    """Send the cycle's pending messages of ``phase``, and those a dead run left sending;
    no session stays open meanwhile."""
    with db.session_scope(url) as s:
        view = cycle_view(s, region)
        settings = view.mail_settings()
        lease = dispatch_settings(view).lease_seconds
        cycle_id, sender = view.cycle.id, view.region.sender_email
    report = deliver_pending(
        url,
        make_transport(settings, out),
        cycle_id=cycle_id,
        sender_email=sender,
        purposes=DELIVERS[phase],
        lease_seconds=lease,
    )
    return PhaseReport(
        "deliver",
        sent=len(report.sent),
        failed=[f"message {i}: {why}" for i, why in report.failed],
        sent_ids=list(report.sent),
    )


def run_read_mailbox(
    as_of: datetime, out: Path, url: str | None = None, region: str | None = None
) -> PhaseReport:
    """Read the county's mailbox (``hytetu.mailbox``): RSVPs, bounces, registry receipts.
    Runs first on every tick; a mailbox that cannot be read raises MailboxError, which
    fails this phase only."""
    from hytetu.inbox import make_reader
    from hytetu.mailbox import read_mailbox

    with db.session_scope(url) as s:
        view = cycle_view(s, region)
        settings, region_id = view.mail_settings(), view.region.id
    reader = make_reader(settings, out, url)
    if reader is None:
        return PhaseReport("read_mailbox", did={"skipped": "mail.inbox.read is false"})
    result = read_mailbox(url, reader, region_id)
    did: dict[str, Any] = {"mailbox": result.mailbox, "read": dict(result.counts)}
    if result.skipped or result.remarked:
        did["already_handled"] = result.skipped + result.remarked
    return PhaseReport(
        "read_mailbox",
        did=did,
        failed=[f"bounced: {b}" for b in result.bounced],
        warnings=result.errors,
    )


def run_invitations(
    as_of: datetime, out: Path, url: str | None = None, region: str | None = None
) -> PhaseReport:
    with db.session_scope(url) as s:
        view = cycle_view(s, region)
        skipped = skip_stale_reminders(view, as_of)
        result = invitations.send_invitations(view, as_of)
        files = []
        folder = out / "calendars"
        folder.mkdir(parents=True, exist_ok=True)
        for name, ics in invitations.feeds(view, as_of).items():
            path = folder / f"{view.cycle.year}-{name}.ics"
            if not path.exists() or path.read_bytes() != ics:
                path.write_bytes(ics)
                files.append(str(path))
    delivery = _deliver(url, out, "invitations", region)
    return PhaseReport(
        "invitations",
        did={
            "requests": result.requests,
            "updates": result.updates,
            "cancels": result.cancels,
            "reminders": result.reminders,
        },
        files=files,
        sent=delivery.sent,
        failed=delivery.failed,
        warnings=skipped,
        sent_ids=delivery.sent_ids,
    )


def run_feedback_step(
    step: str, as_of: datetime, out: Path, url: str | None = None, region: str | None = None
) -> PhaseReport:
    """``step`` is open, remind or close."""
    action = {
        "open": feedback.open_window,
        "remind": feedback.remind,
        "close": feedback.close_window,
    }[step]
    with db.session_scope(url) as s:
        view = cycle_view(s, region)
        skipped = skip_stale_reminders(view, as_of)
        result = action(view, as_of)
    phase = f"{step}_feedback"
    delivery = _deliver(url, out, phase, region) if phase in DELIVERS else PhaseReport(phase)
    return PhaseReport(
        phase,
        did={"action": result.action, "notices": result.notices},
        sent=delivery.sent,
        failed=delivery.failed,
        warnings=skipped,
        sent_ids=delivery.sent_ids,
    )


def run_import_feedback(
    as_of: datetime, url: str | None = None, region: str | None = None
) -> PhaseReport:
    """Import the form exports in the config folder's feedback/ that are new or changed
    (once the window has opened); all of them in one transaction."""
    files: dict[str, dict[str, Any]] = {}
    with db.session_scope(url) as s:
        view = cycle_view(s, region)
        changed = feedback_import.changed_exports(view) if as_of >= feedback.opens_at(view) else []
        if changed:  # the mapping is read from the config only when there is work
            mapping = feedback_import.mapping_for(view)
            for path in changed:
                files[path.name] = feedback_import.import_file(view, path, mapping).as_dict()
    return PhaseReport("import_feedback", did={"files": files})


def run_import_notes(
    as_of: datetime, url: str | None = None, region: str | None = None
) -> PhaseReport:
    """Import the notes of every session that has ended and whose notes file changed."""
    changed: dict[str, int] = {}
    warnings: list[str] = []
    with db.session_scope(url) as s:
        view = cycle_view(s, region)
        for session in _notes_due(view, as_of):
            result = notes.import_notes_file(view, notes.notes_path(view, session.key))
            changed[session.key] = len(result.added) + len(result.removed)
            warnings += result.warnings
    return PhaseReport("import_notes", did={"sessions": changed}, warnings=warnings)


def _notes_due(view: CycleView, as_of: datetime) -> list[db.MeetingSession]:
    due = []
    for session in view.sessions():
        path = notes.notes_path(view, session.key)
        if (
            session.status == "scheduled"
            and as_of >= session.end
            and path.exists()
            and session.notes_hash != notes.notes_digest(path)
        ):
            due.append(session)
    return due


def run_compile(url: str | None = None, region: str | None = None) -> PhaseReport:
    with db.session_scope(url) as s:
        view = cycle_view(s, region)
        row, created = findings.compile_and_store(view)
        result = row.result
        common = sum(1 for c in result["cells"] for t in c["themes"] if t["common"])
        themes = sum(len(c["themes"]) for c in result["cells"])
        return PhaseReport(
            "compile",
            did={
                "compilation": row.id,
                "new": created,
                "themes": themes,
                "common_themes": common,
                "groups": len(result["groups"]),
            },
        )


def run_render(out: Path, url: str | None = None, region: str | None = None) -> PhaseReport:
    with db.session_scope(url) as s:
        view = cycle_view(s, region)
        compilation = findings.latest_compilation(view)
        if compilation is None:
            return PhaseReport("render", did={"skipped": "nothing compiled yet"})
        result = memos.render_memos(view, compilation)
        compilation.rendered_at = db.utcnow()
        folder = out / "memos"
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for v in result.created:
            (folder / v.filename).write_bytes(v.pdf)
            (folder / v.filename.replace(".pdf", ".html")).write_text(v.html, encoding="utf-8")
            files.append(str(folder / v.filename))
            if v.annex_filename and v.annex_pdf is not None:
                # The annex goes out with the memo; its CSV is for the county's own use.
                (folder / v.annex_filename).write_bytes(v.annex_pdf)
                files.append(str(folder / v.annex_filename))
                csv_path = folder / v.annex_filename.replace(".pdf", ".csv")
                csv_path.write_bytes(v.annex_csv or b"")
                files.append(str(csv_path))
        return PhaseReport(
            "render",
            did={"new_versions": len(result.created), "unchanged": len(result.unchanged)},
            files=files,
        )


def run_dispatch(
    as_of: datetime, out: Path, url: str | None = None, region: str | None = None
) -> PhaseReport:
    """Queue and send the approved memos (hytetu.dispatch); the CSV report is in files."""
    result = dispatch_memos(url, as_of, out, region)
    return PhaseReport(
        "dispatch",
        did={
            "queued": result.plan.queued,
            "waiting_approval": result.plan.waiting_approval or [],
            "annex_left_out": result.plan.notes,
            "re_sent_after_crash": result.resent(),
            "resent_after_bounce": result.plan.resent_after_bounce,
            "bounced": result.plan.bounced,
            "retries": result.delivery.retries,
        },
        files=[str(result.csv_path)] if result.csv_path else [],
        sent=len(result.delivery.sent),
        failed=result.failures(),
        sent_ids=list(result.delivery.sent),
    )


def due_phases(as_of: datetime, url: str | None = None, region: str | None = None) -> list[str]:
    """The phases that have work ``as_of``, in the order the tick runs them."""
    with db.session_scope(url) as s:
        view = cycle_view(s, region)
        c = view.cycle
        due = []
        if invitations.plan_invitations(view, as_of):
            due.append("invitations")
        if c.feedback_opened_at is None and as_of >= feedback.opens_at(view):
            due.append("open_feedback")
        reminded = s.scalars(
            select(db.OutgoingMessage.id).filter_by(cycle_id=c.id, purpose="feedback_reminder")
        ).first()
        if (
            (c.feedback_opened_at is not None or "open_feedback" in due)
            and not reminded
            and (feedback.reminder_at(view) <= as_of < feedback.closes_at(view))
        ):
            due.append("remind_feedback")
        if as_of >= feedback.opens_at(view) and feedback_import.changed_exports(view):
            due.append("import_feedback")
        if _notes_due(view, as_of):
            due.append("import_notes")
        closed = c.feedback_closed_at is not None or as_of >= feedback.closes_at(view)
        if c.feedback_closed_at is None and as_of >= feedback.closes_at(view):
            due.append("close_feedback")
        latest = findings.latest_compilation(view)
        if closed and (
            "import_notes" in due
            or "import_feedback" in due
            or latest is None
            or findings.inputs_digest(view) != latest.result.get("inputs")
        ):
            due.append("compile")
        if "compile" in due or (latest is not None and latest.rendered_at is None):
            due.append("render")
        if _dispatch_due(view):
            due.append("dispatch")
        undelivered = purposes_due(s, c.id, dispatch_settings(view).lease_seconds)
        due += [p for p, sent in DELIVERS.items() if p not in due and undelivered & set(sent)]
        return sorted(due, key=PHASES.index)


def _dispatch_due(view: CycleView) -> bool:
    """An approved memo version whose letters are not queued yet (those queued and unsent
    make the phase due through ``DELIVERS``), or a bounced letter not sent again yet (the
    phase resends it once region.yaml has a new address, and reports it until then)."""
    from hytetu.dispatch import unresolved_bounces

    s = view.session
    if unresolved_bounces(s, view.cycle.id):
        return True
    queued = set(
        s.scalars(
            select(db.OutgoingMessage.dedupe_key).filter_by(cycle_id=view.cycle.id, purpose="memo")
        )
    )
    for memo in s.scalars(select(db.Memo).filter_by(cycle_id=view.cycle.id)):
        approved = [v for v in memo.versions if v.status == "approved"]
        if approved and not any(k.startswith(f"memo:{approved[-1].id}:") for k in queued):
            return True
    return False


def resolve_as_of(
    as_of: str | datetime | date | None, url: str | None = None, region: str | None = None
) -> datetime:
    """``as_of`` made zone-aware in the region's zone (``localtime.parse_local``: a date
    alone is that morning's tick); None or empty means now."""
    with db.session_scope(url) as s:
        tz = cycle_view(s, region).tz
    if as_of is None or as_of == "":
        return datetime.now(tz)
    return localtime.parse_local(as_of, tz)


def region_keys(url: str | None = None) -> list[str]:
    """The regions that have a cycle in the database, in key order."""
    with db.session_scope(url) as s:
        return state.region_keys(s)


def region_out(out: Path, region: str, regions: list[str]) -> Path:
    """Where a region's files go: ``out`` itself when the installation holds one region,
    else ``out/<region key>`` so that two regions' calendars and memos never collide."""
    return out if len(regions) <= 1 else out / region


def default_out_dir() -> str:
    import os

    return os.environ.get("HYTETU_OUT", "hytetu-out")


def run_phase(
    phase: str, as_of: datetime, out: Path, url: str | None = None, region: str | None = None
) -> PhaseReport:
    """Run one phase in-process (the CLI and tests; the daily tick runs them as flows)."""
    if phase == "read_mailbox":
        return run_read_mailbox(as_of, out, url, region)
    if phase == "invitations":
        return run_invitations(as_of, out, url, region)
    if phase in ("open_feedback", "remind_feedback", "close_feedback"):
        return run_feedback_step(phase.split("_")[0], as_of, out, url, region)
    if phase == "import_feedback":
        return run_import_feedback(as_of, url, region)
    if phase == "import_notes":
        return run_import_notes(as_of, url, region)
    if phase == "compile":
        return run_compile(url, region)
    if phase == "render":
        return run_render(out, url, region)
    if phase == "dispatch":
        return run_dispatch(as_of, out, url, region)
    raise ValueError(f"unknown phase {phase!r}; phases are {', '.join(PHASES)}")
