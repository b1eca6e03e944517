"""Human-readable reports of what a phase did, for artifacts, logs and the CLI.

Everything here is for the county's coordinator reading the Prefect UI: what a run did,
what was sent to whom, what waits for a decision and how to give it, and why a run failed.
No secrets: reports carry counts, addresses, subjects and file paths, never credentials.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import select

from hytetu import db

REVIEW_URL_ENV = "HYTETU_REVIEW_URL"
DEFAULT_REVIEW_URL = "http://127.0.0.1:8001/"


def review_url(region: str | None = None) -> str:
    """The review page's address as the coordinator's browser reaches it:
    ``HYTETU_REVIEW_URL`` (``{region}`` stands for the region's key), default this machine."""
    url = os.environ.get(REVIEW_URL_ENV, "").strip() or DEFAULT_REVIEW_URL
    url = url.replace("{region}", region or "")
    return url if url.endswith("/") else url + "/"


def document_url(version_id: int, filename: str, region: str | None = None) -> str:
    """Where the browser opens a memo version: the review page serves it behind its login,
    from the database, so the link works whatever machine the worker runs on. ``filename``
    ending in .html opens the HTML version."""
    return f"{review_url(region)}documents/{version_id}/{quote(filename)}"


_TITLES = {
    "load": "Asetukset ladattu / Configuration loaded",
    "read_mailbox": "Saapuneet viestit / Inkommande post / Mailbox read",
    "invitations": "Kutsut / Invitations",
    "open_feedback": "Palauteikkuna avattu / Feedback window opened",
    "remind_feedback": "Palautemuistutus / Feedback reminder",
    "close_feedback": "Palauteikkuna suljettu / Feedback window closed",
    "import_notes": "Muistiinpanot tuotu / Session notes imported",
    "compile": "Koonti / Compilation",
    "render": "Muistiot / Memos rendered",
    "dispatch": "Lähetys kirjaamoihin / Dispatch to registries",
    "tick": "Päivittäinen ajo / Daily tick",
}


def title(phase: str) -> str:
    return _TITLES.get(phase, phase)


def phase_markdown(report: dict[str, Any]) -> str:
    lines = [f"# {title(report['phase'])}", ""]
    for key, value in report.get("did", {}).items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value) or "-"
        lines.append(f"- **{key}**: {value}")
    lines.append(f"- **sent**: {report.get('sent', 0)}")
    if report.get("failed"):
        lines += ["", "## Failed", *[f"- {f}" for f in report["failed"]]]
    if report.get("warnings"):
        lines += ["", "## Warnings", *[f"- {w}" for w in report["warnings"]]]
    if report.get("files"):
        lines += ["", "## Files", *[f"- `{f}`" for f in report["files"]]]
    return "\n".join(lines) + "\n"


def sent_table(message_ids: list[int], url: str | None = None) -> list[dict[str, str]]:
    """One row per message sent: to whom, the subject, what kind, its Message-ID."""
    if not message_ids:
        return []
    rows: list[dict[str, str]] = []
    with db.session_scope(url) as s:
        # Chunked so a national-scale run stays under the backends' bind-parameter limits.
        for start in range(0, len(message_ids), 500):
            chunk = message_ids[start : start + 500]
            for m in s.scalars(
                select(db.OutgoingMessage)
                .where(db.OutgoingMessage.id.in_(chunk))
                .order_by(db.OutgoingMessage.id)
            ):
                rows.append(
                    {
                        "vastaanottaja / to": ", ".join(m.recipients),
                        "aihe / subject": m.subject,
                        "tyyppi / purpose": m.purpose,
                        "message-id": m.message_id,
                    }
                )
    return rows


@dataclass
class Waiting:
    """A memo version that waits for the coordinator's decision."""

    version_id: int
    filename: str
    number: int
    created_at: datetime


def artifact_key(key: str, region: str | None) -> str:
    """A Prefect artifact key, per region when a region is named (keys are lowercase
    letters, digits and dashes)."""
    from hytetu.mail import slug

    return f"{key}-{slug(region, 40)}" if region else key


def waiting_for_approval(url: str | None = None, region: str | None = None) -> list[Waiting]:
    """The newest version of each memo of the cycle, where it is still a draft."""
    from hytetu.memos import latest_versions
    from hytetu.state import cycle_view

    with db.session_scope(url) as s:
        return [
            Waiting(v.id, v.filename, v.number, v.created_at)
            for v in latest_versions(cycle_view(s, region))
            if v.status == "draft"
        ]


def approval_markdown(
    waiting: list[Waiting], out_dir: str | Path, region: str | None = None
) -> str:
    """The request for approval: what waits, where to read it, and how to decide."""
    memos = Path(out_dir) / "memos"
    ids = " ".join(str(w.version_id) for w in waiting)
    lines = [
        "# Odottaa hyväksyntää / Väntar på godkännande",
        "",
        f"{len(waiting)} muistioversiota odottaa hyväksyntää ennen lähetystä kirjaamoihin. "
        f"/ {len(waiting)} promemorieversioner väntar på godkännande innan de skickas till "
        "registratorskontoren.",
        "",
        "| muistio / promemoria | v | avaa / öppna | tallennettu / sparad |",
        "| --- | --- | --- | --- |",
    ]
    for w in waiting:
        pdf = document_url(w.version_id, w.filename, region)
        page = document_url(w.version_id, w.filename.removesuffix(".pdf") + ".html", region)
        lines.append(
            f"| {w.filename} | {w.number} | [PDF]({pdf}) · [HTML]({page}) | "
            f"`{memos / w.filename}` |"
        )
    lines += [
        "",
        "## Näin hyväksyt / Så godkänner du",
        "",
        "- Päivittäinen ajo on aloittanut tarkistuksen (`review-memos/01-review-memos`): avaa "
        "Prefectissa Runs → review-memos (Suspended) → Resume, ja valitse jokaiselle muistiolle "
        "hyväksy, hylkää tai ei vielä. / Den dagliga körningen har startat granskningen: öppna "
        "Runs → review-memos (Suspended) → Resume i Prefect och välj godkänn, avslå eller "
        "inte än för varje promemoria.",
        f"- tai komentorivillä / eller på kommandoraden: `hytetu memos approve {ids} --by NIMI`"
        " (tai / eller `hytetu memos reject ID --comment ...`)",
        "",
        "Hyväksytyt muistiot lähtevät seuraavassa päivittäisessä ajossa. / Godkända "
        "promemorior skickas med nästa dagliga körning.",
    ]
    return "\n".join(lines) + "\n"


def tick_markdown(as_of: datetime, results: dict[str, dict[str, Any]], dry_run: bool) -> str:
    """What one daily tick did, phase by phase, in the order it ran them."""
    lines = [f"# {title('tick')}: {as_of:%d.%m.%Y %H:%M %Z}", ""]
    if dry_run:
        lines += ["**Kuivaharjoitus / dry run**: messages went to the file outbox only.", ""]
    if not results:
        lines.append("Ei tehtävää tänään. / Nothing was due.")
        return "\n".join(lines) + "\n"
    lines += [
        "| # | vaihe / phase | lähetetty / sent | epäonnistui / failed |",
        "| --- | --- | --- | --- |",
    ]
    for i, (phase, report) in enumerate(results.items(), 1):
        failed = len(report.get("failed") or []) if isinstance(report, dict) else 0
        sent = report.get("sent", 0) if isinstance(report, dict) else 0
        lines.append(f"| {i} | {title(phase)} | {sent} | {failed} |")
    return "\n".join(lines) + "\n"


def failure_markdown(phase: str, error: BaseException) -> str:
    """Why a run failed, in the error's own words: the file, line and field, no traceback."""
    return "\n".join(
        [
            f"# Epäonnistui / Failed: {title(phase)}",
            "",
            "Ajo pysähtyi tähän virheeseen; korjaa se ja aja uudelleen. / The run stopped at "
            "this error. Each phase is one transaction, so nothing half-done was kept: fix "
            "the cause and run again, and it continues where it stopped.",
            "",
            "```",
            str(error),
            "```",
            "",
        ]
    )


@dataclass
class MailboxSummary:
    markdown: str
    rows: list[dict[str, str]]


#: The kinds of message read, as the coordinator reads them (fi / sv).
MAIL_KINDS = {
    "rsvp": "vastaukset kutsuihin / svar på kallelser",
    "bounce": "palautuneet / returnerade",
    "delayed": "viivästyneet / försenade",
    "receipt": "kirjaamon kuittaukset / registratorns kvitton",
    "auto_reply": "automaattiset vastaukset, ohitettu / automatiska svar, ignorerade",
    "other": "muut, jätetty postilaatikkoon / övriga, kvar i inkorgen",
    "unreadable": "lukukelvottomat / oläsbara",
}


def mailbox_summary(
    as_of: datetime, url: str | None = None, region: str | None = None
) -> MailboxSummary:
    """Attendance per session still ahead and organisation (accepted, tentative,
    declined, no answer) and how many messages of each kind the mailbox gave."""
    from hytetu import mailbox
    from hytetu.state import cycle_view

    with db.session_scope(url) as s:
        view = cycle_view(s, region)
        names = {
            m.key: view.text(m.name)
            for m in s.scalars(select(db.Municipality).filter_by(region_id=view.region.id))
        }
        names |= {
            st.key: view.text(st.name)
            for st in s.scalars(select(db.Stakeholder).filter_by(region_id=view.region.id))
        }
        sessions = {ms.key: view.session_title(ms) for ms in view.sessions()}
        attendance = mailbox.attendance(s, view.cycle.id, as_of)
        counts = mailbox.counts(s)
        starts = {r["session"]: view.local(r["start"]) for r in attendance}
    rows = [
        {
            "istunto / session": f"{sessions.get(r['session'], r['session'])} "
            f"{starts[r['session']]:%d.%m.%Y}",
            "organisaatio / organisation": names.get(r["org"], r["org"]),
            "hyväksynyt / accepterat": str(r["accepted"]),
            "alustava / preliminärt": str(r["tentative"]),
            "kieltäytynyt / avböjt": str(r["declined"] + r["delegated"]),
            "ei vastausta / inget svar": str(r["no_answer"]),
        }
        for r in attendance
    ]
    lines = [
        "# Ilmoittautumiset / Anmälningar",
        "",
        f"Tilanne / Läget {as_of:%d.%m.%Y %H:%M}: tulevat istunnot / kommande möten.",
        "",
    ]
    if rows:
        header = list(rows[0])
        lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        lines += ["| " + " | ".join(r[h] for h in header) + " |" for r in rows]
    else:
        lines.append("Ei tulevia istuntoja. / Inga kommande möten.")
    lines += ["", "## Luetut viestit / Lästa meddelanden", ""]
    lines += [f"- {MAIL_KINDS[k]}: {n}" for k, n in counts.items()]
    return MailboxSummary("\n".join(lines) + "\n", rows)
