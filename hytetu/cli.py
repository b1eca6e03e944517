"""The ``hytetu`` command: parses, calls the core, turns domain errors into clear messages.

Exit codes: 0 ok, 1 the operation failed, 2 invalid input (config or notes).
"""

from __future__ import annotations

import os
import shutil
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from hytetu import db
from hytetu.errors import ConfigError, HytetuError, IndicatorError, NotesError

# Nothing goes to Prefect's analytics from a county's machine unless the operator sets these
# (the demo's embedded server would otherwise try, and log "Failed to send telemetry"
# where there is no internet).
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

app = typer.Typer(
    help="hytetu: the yearly welfare and health promotion negotiations (Act 612/2021 s. 7(4)).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="The application database.", no_args_is_help=True)
memos_app = typer.Typer(help="Review and approve memos.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(memos_app, name="memos")
notes_app = typer.Typer(help="Session notes: XLSX template, import.", no_args_is_help=True)
findings_app = typer.Typer(help="Correct the compilation.", no_args_is_help=True)
app.add_typer(notes_app, name="notes")
app.add_typer(findings_app, name="findings")
cycle_app = typer.Typer(help="Yearly cycles: next year's from this year's.", no_args_is_help=True)
app.add_typer(cycle_app, name="cycle")

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "examples" / "keski-suomi-2025"
#: The demo's two years: the 2025 example, then the 2026 cycle made from it with cycle new.
EXAMPLE_YEARS = [EXAMPLE, EXAMPLE.parent / "keski-suomi-2026"]

TrustedProxies = Annotated[
    str,
    typer.Option(
        envvar="HYTETU_TRUSTED_PROXIES",
        help="Reverse proxies (IPs or networks, comma-separated) whose X-Forwarded-For "
        "and X-Forwarded-Proto are believed; default: none",
    ),
]
Region = Annotated[
    str | None,
    typer.Option(
        "--region",
        help="The region's key (region.yaml); needed when several regions are loaded",
    ),
]
Year = Annotated[
    int | None,
    typer.Option("--year", help="The cycle's year (default: the region's newest cycle)"),
]


def _fail(error: HytetuError) -> None:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(2 if isinstance(error, ConfigError | NotesError | IndicatorError) else 1)


@app.command()
def validate(path: Annotated[Path, typer.Argument(help="A config folder")]) -> None:
    """Check a config folder; list every problem as file:line: field: what is wrong."""
    from hytetu.config import load_config

    try:
        config = load_config(path)
    except ConfigError as e:
        typer.echo(f"{path}: {len(e.problems)} problem(s)", err=True)
        for p in e.problems:
            typer.echo(f"  {p}", err=True)
        raise typer.Exit(2) from None
    rf, cf = config.region_file, config.cycle_file
    contacts = sum(len(m.contacts) for m in rf.municipalities) + sum(
        len(st.contacts) for st in rf.stakeholders
    )
    data = None
    if cf.indicators.items:
        from hytetu import indicators

        try:
            data = indicators.read_folder(config)
        except IndicatorError as e:
            typer.echo(f"{path}: {len(e.problems)} problem(s) in the indicator files", err=True)
            for p in e.problems:
                typer.echo(f"  {p}", err=True)
            raise typer.Exit(2) from None
    typer.echo(f"{path}: valid")
    typer.echo(f"  region          {config.region.id} ({', '.join(config.region.languages)})")
    typer.echo(f"  cycle           {cf.cycle.year}, plan period {cf.cycle.plan_period or '-'}")
    typer.echo(f"  municipalities  {len(rf.municipalities)}")
    typer.echo(f"  groups          {len(rf.groups)}")
    typer.echo(f"  stakeholders    {len(rf.stakeholders)}")
    typer.echo(f"  contacts        {contacts}")
    typer.echo(f"  sessions        {len(cf.sessions)}")
    typer.echo(
        f"  goal matrix     {len(cf.goal_matrix.priority_areas)} × "
        f"{len(cf.goal_matrix.service_areas)} = {len(cf.goal_matrix.cells)} cells"
    )
    typer.echo(f"  feedback        {cf.feedback.opens} – {cf.feedback.deadline}")
    if data is not None:
        typer.echo(
            f"  indicators      {len(cf.indicators.items)}, {len(data.values)} values "
            f"in {len(data.files)} files"
        )
        for w in data.warnings:
            typer.echo(f"  warning: {w}")
    for w in config.warnings:
        typer.echo(f"  warning: {w}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database at HYTETU_DATABASE_URL (default sqlite:///hytetu.db)."""
    from hytetu.db import database_url, display_url
    from hytetu.migrate import upgrade

    before, after = upgrade()
    where = display_url(database_url())
    if not before:
        typer.echo(f"created the database at {where} (schema {', '.join(sorted(after))})")
    elif before != after:
        typer.echo(
            f"migrated the database at {where} from schema {', '.join(sorted(before))} "
            f"to {', '.join(sorted(after))}"
        )
    else:
        typer.echo(f"the database at {where} is up to date (schema {', '.join(sorted(after))})")


@cycle_app.command("new")
def cycle_new(
    source: Annotated[Path, typer.Option("--from", help="Last year's config folder")],
    year: Annotated[int, typer.Option("--year", help="The new cycle's year")],
    to: Annotated[
        Path | None,
        typer.Option("--to", help="The new folder (default: beside --from, with the new year)"),
    ] = None,
) -> None:
    """Write next year's config folder: goals carried over, sessions and the feedback
    window moved to the same weekdays and marked to check. Never overwrites."""
    from hytetu.cyclenew import new_cycle

    try:
        r = new_cycle(source, year, to)
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {r.folder} (cycle.yaml, {', '.join(r.copied) or 'nothing else'} copied)")
    for old, new in r.sessions:
        typer.echo(f"  {old} -> {new}")
    typer.echo(f"{len(r.warnings)} warning(s) to check before 'hytetu load {r.folder}':")
    for w in r.warnings:
        typer.echo(f"  {w}")


@app.command("export")
def export_open_data(
    out: Annotated[
        Path | None,
        typer.Option(help="The output folder (default: $HYTETU_OUT); files go to open-data/"),
    ] = None,
    region: Region = None,
    year: Year = None,
) -> None:
    """Write the cycle's public compilation as open data: JSON (docs/open-data.schema.json)
    and CSV (UTF-8, ';'). Themes, emphases and counts only; never personal data."""
    from hytetu.opendata import export_cycle
    from hytetu.phases import default_out_dir

    try:
        data, paths = export_cycle(out or Path(default_out_dir()), region, year)
    except HytetuError as e:
        _fail(e)
        return
    typer.echo(f"open data {data['cycle']['year']} ({data['status']}):")
    for p in paths:
        typer.echo(f"  {p}")


@app.command()
def load(path: Annotated[Path, typer.Argument(help="A config folder")]) -> None:
    """Validate a config folder and load it into the database (idempotent)."""
    from hytetu.phases import load as load_phase

    try:
        report = load_phase(path, actor="cli")
    except HytetuError as e:
        _fail(e)
        return
    typer.echo(f"loaded {path}: {report.did['changes']} change(s)")
    for w in report.warnings:
        typer.echo(f"  warning: {w}")


indicators_app = typer.Typer(
    help="Indicators beside the findings: THL's Sotkanet data, the HYTE coefficient.",
    no_args_is_help=True,
)
app.add_typer(indicators_app, name="indicators")


@indicators_app.command("fetch")
def indicators_fetch(
    path: Annotated[Path, typer.Argument(help="A config folder")],
    years: Annotated[
        str | None,
        typer.Option(help="e.g. 2019-2025 (default: the cycle's year and the six before)"),
    ] = None,
) -> None:
    """Fetch the cycle's Sotkanet indicators from THL's open API (sotkanet.fi) into its
    indicators/ folder; `hytetu load` then imports them."""
    from hytetu import sotkanet
    from hytetu.config import load_config

    try:
        config = load_config(path)
        span = (
            sotkanet.parse_years(years)
            if years
            else range(config.cycle.year - 6, config.cycle.year + 1)
        )
        written = sotkanet.fetch(config, span)
    except ValueError as e:
        typer.echo(f"error: --years: {e}", err=True)
        raise typer.Exit(2) from None
    except HytetuError as e:
        _fail(e)
        return
    for file in written:
        typer.echo(f"wrote {file}")
    typer.echo("Lähde: THL, Sotkanet (CC BY 4.0). Next: hytetu load " + str(path))


@indicators_app.command("import")
def indicators_import(path: Annotated[Path, typer.Argument(help="A config folder")]) -> None:
    """Check the indicators/ folder's files and import them (with the rest of the
    config: the same as `hytetu load`). A bad file is named with its row; nothing is
    written then."""
    from hytetu import indicators
    from hytetu.config import load_config

    try:
        data = indicators.read_folder(load_config(path))
    except HytetuError as e:
        _fail(e)
        return
    typer.echo(f"{len(data.values)} indicator value(s) in {len(data.files)} file(s)")
    load(path)


@app.command()
def tick(
    as_of: Annotated[
        str | None,
        typer.Option(
            help="Simulated time in the region's zone: 2.10.2025 (that day's 07:00 tick), "
            "2.10.2025 7.00 or 2025-10-02T07:00; default now"
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder; default HYTETU_OUT, else hytetu-out")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Every message of this run to the file outbox (.eml)")
    ] = False,
    region: Region = None,
) -> None:
    """Run the daily tick once, as a Prefect flow run (every region loaded, or --region)."""
    from flows.annual_cycle import annual_cycle
    from hytetu.phases import default_out_dir

    try:
        due = annual_cycle(
            as_of=as_of, out_dir=str(out or default_out_dir()), dry_run=dry_run, region=region
        )
    except HytetuError as e:
        _fail(e)
        return
    typer.echo(", ".join(due) if due else "nothing is due")


@memos_app.command("list")
def memos_list(region: Region = None, year: Year = None) -> None:
    """The newest version of each memo and its state."""
    from hytetu.memos import latest_versions
    from hytetu.state import cycle_view

    try:
        with db.session_scope() as s:
            for v in latest_versions(cycle_view(s, region, year)):
                typer.echo(f"{v.id:>5}  {v.status:<9} v{v.number}  {v.filename}")
    except HytetuError as e:
        _fail(e)


def _decide(
    version_ids: list[int],
    approve: bool,
    comment: str | None,
    by: str,
    region: str | None,
    year: int | None,
) -> None:
    from hytetu.memos import decide
    from hytetu.state import cycle_view

    try:
        with db.session_scope() as s:
            view = cycle_view(s, region, year)
            for vid in version_ids:
                v = decide(view, vid, approve=approve, actor=by, comment=comment)
                typer.echo(f"{v.filename}: {v.status}")
    except HytetuError as e:
        _fail(e)


@memos_app.command("approve")
def memos_approve(
    version_ids: Annotated[list[int], typer.Argument(help="Version ids from 'memos list'")],
    comment: Annotated[str | None, typer.Option(help="A note kept with the decision")] = None,
    by: Annotated[str, typer.Option(help="Who approves")] = os.environ.get("USER", "admin"),
    region: Region = None,
    year: Year = None,
) -> None:
    """Approve memo versions: they are frozen and can be dispatched."""
    _decide(version_ids, True, comment, by, region, year)


@memos_app.command("reject")
def memos_reject(
    version_ids: Annotated[list[int], typer.Argument(help="Version ids from 'memos list'")],
    comment: Annotated[str | None, typer.Option(help="Why; kept with the decision")] = None,
    by: Annotated[str, typer.Option(help="Who rejects")] = os.environ.get("USER", "admin"),
    region: Region = None,
    year: Year = None,
) -> None:
    """Reject memo versions: they can never be dispatched."""
    _decide(version_ids, False, comment, by, region, year)


@notes_app.command("template")
def notes_template(
    session: Annotated[str, typer.Argument(help="A session id from the cycle config")],
    out: Annotated[Path, typer.Option(help="The workbook to write (.xlsx)")],
    region: Region = None,
    year: Year = None,
    language: Annotated[
        str | None,
        typer.Option(
            help="Sheets, columns and goals in this language (default: the region's first)"
        ),
    ] = None,
) -> None:
    """Write the notes workbook of a session for the secretary to fill in."""
    from hytetu.notes import write_template
    from hytetu.state import cycle_view

    try:
        with db.session_scope() as s:
            write_template(cycle_view(s, region, year), session, out, language)
    except HytetuError as e:
        _fail(e)
        return
    typer.echo(f"wrote {out}")


@notes_app.command("import")
def notes_import(
    path: Annotated[Path, typer.Argument(help="A notes file: .xlsx from the template or .yaml")],
    region: Region = None,
    year: Year = None,
) -> None:
    """Import a session's notes; a corrected file replaces that session's findings."""
    from hytetu.notes import import_notes_file
    from hytetu.state import cycle_view

    try:
        with db.session_scope() as s:
            result = import_notes_file(cycle_view(s, region, year), path)
    except HytetuError as e:
        _fail(e)
        return
    for w in result.warnings:
        typer.echo(f"  warning: {w}")
    if not result.changed:
        typer.echo(f"{result.session_key}: unchanged")
        return
    typer.echo(f"{result.session_key}: +{len(result.added)} -{len(result.removed)}")
    for t in result.added:
        typer.echo(f"  + {t}")
    for t in result.removed:
        typer.echo(f"  - {t}")


def _correct(
    kind: str, payload: dict, by: str, region: str | None, year: int | None = None
) -> None:
    from hytetu.findings import add_correction
    from hytetu.state import cycle_view

    try:
        with db.session_scope() as s:
            row = add_correction(cycle_view(s, region, year), kind, payload, actor=by)
            typer.echo(f"correction {row.id} ({kind}) saved; it applies from the next compile")
    except HytetuError as e:
        _fail(e)


@findings_app.command("merge")
def findings_merge(
    cell: Annotated[str, typer.Argument(help="PRIORITY_AREA/SERVICE_AREA")],
    first: Annotated[str, typer.Argument(help="A finding of one theme (a unique part will do)")],
    second: Annotated[str, typer.Argument(help="A finding of the theme to merge into it")],
    by: Annotated[str, typer.Option(help="Who corrects")] = os.environ.get("USER", "admin"),
    region: Region = None,
    year: Year = None,
) -> None:
    """Merge two themes of a cell into one."""
    _correct("merge", {"cell": cell, "a": first, "b": second}, by, region, year)


@findings_app.command("split")
def findings_split(
    cell: Annotated[str, typer.Argument(help="PRIORITY_AREA/SERVICE_AREA")],
    finding: Annotated[str, typer.Argument(help="The finding to take out of its theme")],
    by: Annotated[str, typer.Option(help="Who corrects")] = os.environ.get("USER", "admin"),
    region: Region = None,
    year: Year = None,
) -> None:
    """Take a finding out of its theme: it becomes a theme of its own."""
    _correct("split", {"cell": cell, "text": finding}, by, region, year)


@findings_app.command("reclassify")
def findings_reclassify(
    response: Annotated[int, typer.Argument(help="A feedback response id")],
    cell: Annotated[
        str | None, typer.Option(help="PRIORITY_AREA/SERVICE_AREA; leave out for unclassified")
    ] = None,
    by: Annotated[str, typer.Option(help="Who corrects")] = os.environ.get("USER", "admin"),
    region: Region = None,
    year: Year = None,
) -> None:
    """Put a feedback response in a cell (or back to unclassified)."""
    _correct("reclassify", {"response_id": response, "cell": cell}, by, region, year)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where the demo writes everything")] = Path(
        "hytetu-demo"
    ),
    config: Annotated[
        list[Path] | None,
        typer.Option(
            help="A config folder to simulate; repeat for several years of one region, "
            "oldest first (default: the Central Finland example's 2025 and 2026)"
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option(help="Show Prefect's own logs")] = False,
) -> None:
    """Run yearly cycles in simulated time: SQLite, the file outbox, real flow runs."""
    out = out.resolve()
    if out.exists() and any(out.iterdir()):
        if not (out / "hytetu.db").exists():
            typer.echo(
                f"error: {out} is not empty and is not an earlier demo; choose another --out",
                err=True,
            )
            raise typer.Exit(1)
        shutil.rmtree(out)  # an earlier demo: start the simulation afresh
    out.mkdir(parents=True, exist_ok=True)
    os.environ["HYTETU_DATABASE_URL"] = f"sqlite:///{out / 'hytetu.db'}"
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Every flow run waits at its end until its logs reached the API, up to this batch
    # interval (default 2 s, about 0.5 s a run): the demo's 20 ticks in a row would wait
    # 10 s. Logs still reach the API, in smaller batches.
    os.environ.setdefault("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "0.1")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from flows.demo import run_demos

    try:
        results = run_demos(config or EXAMPLE_YEARS, out, echo=typer.echo)
    except HytetuError as e:
        _fail(e)
        return
    for result in results:
        _demo_summary(result, out)
    typer.echo(f"  outbox (.eml)       {out / 'outbox'}")
    typer.echo(f"  calendars (.ics)    {out / 'calendars'}")
    typer.echo(f"  memos (PDF/A)       {out / 'memos'}")
    typer.echo(f"  database            {out / 'hytetu.db'}")


def _demo_summary(result: dict, out: Path) -> None:
    messages = result["messages"]
    typer.echo("")
    typer.echo(f"Demo finished: {result['year']}")
    typer.echo(f"  sessions            {result['sessions']}")
    typer.echo(f"  invitations sent    {messages.get('invitation', 0)}")
    typer.echo(f"  session reminders   {messages.get('reminder', 0)}")
    typer.echo(
        f"  feedback notices    {messages.get('feedback_open', 0)} + "
        f"{messages.get('feedback_reminder', 0)} reminders"
    )
    typer.echo(f"  findings imported   {result['findings']}")
    responses = result.get("feedback", {})
    typer.echo(
        f"  feedback responses  {responses.get('on_time', 0)} on time + "
        f"{responses.get('late', 0)} late (form exports in the config's feedback/)"
    )
    c = result["compilation"]
    typer.echo(
        f"  compilation         {c['themes']} themes, {c['common']} common to 2+ groups, "
        f"{c['suggestions']} suggestions left to the review page (not reviewed in the demo)"
    )
    typer.echo(f"  memos rendered      {len(result['memos'])}")
    typer.echo(f"  memos dispatched    {messages.get('memo', 0)} letters to registries")
    typer.echo(f"  failed messages     {result['failed']}")
    mailbox = result.get("mailbox") or {}
    if mailbox:
        read = mailbox["read"]
        typer.echo(
            f"  mailbox read        {sum(read.values())} answers to this year's mail: "
            + ", ".join(f"{k} {n}" for k, n in read.items() if n)
        )
        a = mailbox["attendance"]
        typer.echo(
            f"  attendance          {a['accepted']} accepted, {a['tentative']} tentative, "
            f"{a['declined']} declined, {a['no_answer']} no answer (all sessions)"
        )
        for line in mailbox["bounced"]:
            typer.echo(f"  bounced letter      {line}")
        typer.echo(f"  registry receipts   {len(mailbox['receipts'])} letters filed")
        for line in mailbox["receipts"][:5]:
            typer.echo(f"                      {line}")


feedback_app = typer.Typer(help="Feedback window responses.", no_args_is_help=True)
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("import")
def feedback_import_file(
    file: Annotated[Path, typer.Argument(help="A form export (.csv or .xlsx)")],
    region: Region = None,
    year: Year = None,
) -> None:
    """Import a Webropol or Microsoft Forms export; all or nothing, duplicates skipped."""
    from hytetu.errors import FeedbackImportError
    from hytetu.feedback_import import import_file
    from hytetu.state import cycle_view

    try:
        with db.session_scope() as s:
            r = import_file(cycle_view(s, region, year), file)
    except FeedbackImportError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    except HytetuError as e:
        _fail(e)
        return
    typer.echo(
        f"{file}: {r.added} added ({r.late} late), {r.duplicates} already imported, "
        f"{r.empty_rows} empty rows skipped" + (f"; {r.dates}" if r.dates else "")
    )


@app.command("serve-feedback")
def serve_feedback(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    trusted_proxies: TrustedProxies = "",
    rate_submissions: Annotated[
        int,
        typer.Option(
            envvar="HYTETU_FORM_RATE_SUBMISSIONS",
            help="Form submissions one client may send per window (0: no limit)",
        ),
    ] = 20,
    rate_requests: Annotated[
        int,
        typer.Option(
            envvar="HYTETU_FORM_RATE_REQUESTS",
            help="Requests of any kind one client may send per window (0: no limit)",
        ),
    ] = 300,
    rate_window: Annotated[
        float,
        typer.Option(envvar="HYTETU_FORM_RATE_WINDOW", help="The rate limits' window, seconds"),
    ] = 600.0,
    region: Region = None,
) -> None:
    """Serve the built-in feedback form (fi, sv) while the window is open."""
    from hytetu.webform import RateLimits, parse_trusted_proxies, serve

    try:
        proxies = parse_trusted_proxies(trusted_proxies)
        limits = RateLimits(rate_submissions, rate_requests, rate_window)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    try:
        serve(host=host, port=port, limits=limits, trusted_proxies=proxies, region=region)
    except HytetuError as e:
        _fail(e)


@app.command("serve-review")
def serve_review(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8001,
    trusted_proxies: TrustedProxies = "",
    region: Region = None,
) -> None:
    """Serve the coordinator's review page of the compilation (fi, sv). The password comes
    from HYTETU_REVIEW_PASSWORD or the Prefect Secret block named in
    HYTETU_REVIEW_PASSWORD_BLOCK."""
    from hytetu.web import review
    from hytetu.web.security import parse_trusted_proxies

    try:
        proxies = parse_trusted_proxies(trusted_proxies)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    try:
        review.serve(host=host, port=port, trusted_proxies=proxies, region=region)
    except HytetuError as e:
        _fail(e)


@app.command()
def purge(
    older_than_years: Annotated[
        int, typer.Option(help="Retention: purge cycles whose year + N is before this year")
    ] = 2,
    out: Annotated[
        Path | None,
        typer.Option(help="The output folder (.eml, calendars); default: HYTETU_OUT"),
    ] = None,
    prefect: Annotated[
        bool, typer.Option(help="Also delete Prefect's artifacts that name purged addresses")
    ] = True,
) -> None:
    """Delete personal data (respondents' e-mails, copies of messages to people,
    removed contacts) of old cycles; findings, texts and counts stay. Then the copies
    outside the database: the output folder's .eml files and calendar feeds, the cycle's
    form exports, and Prefect's artifacts that name the addresses."""
    from hytetu.feedback import purge_personal_data
    from hytetu.phases import default_out_dir
    from hytetu.privacy import purge_copies

    now = datetime.now().astimezone()
    folder = out or Path(default_out_dir())
    with db.session_scope() as s:
        r = purge_personal_data(s, older_than_years, now)
        copies = purge_copies(s, folder, r, now.year - older_than_years, now, prefect=prefect)
    years = ", ".join(str(y) for y in r.cycles) or "none"
    typer.echo(
        f"cycles purged: {years}; e-mails removed: {r.responses}; message copies cleared: "
        f"{r.messages}; contacts anonymised: {r.contacts}; audit entries redacted: "
        f"{r.audit_events}"
    )
    checked = f" of {copies.artifacts_checked}" if prefect else ""
    typer.echo(
        f"files deleted in {folder}: {len(copies.messages)} .eml, {len(copies.calendars)} "
        f".ics; form exports deleted: {len(copies.exports)}; Prefect artifacts deleted: "
        f"{copies.artifacts}{checked}"
    )
    for path in copies.exports:
        typer.echo(f"  deleted {path}")
    for warning in copies.warnings:
        typer.echo(f"warning: {warning}", err=True)


personal_data_app = typer.Typer(help="One person's data (GDPR).", no_args_is_help=True)
app.add_typer(personal_data_app, name="personal-data")


@personal_data_app.command("export")
def personal_data_export(
    email: Annotated[str, typer.Argument(help="The person's e-mail address (any case)")],
    out: Annotated[
        Path | None, typer.Option(help="Write the JSON to this file (default: standard output)")
    ] = None,
    by: Annotated[str, typer.Option(help="Who makes the export")] = os.environ.get("USER", "admin"),
) -> None:
    """Everything stored about an e-mail address as JSON (right of access): contacts,
    feedback responses, invitations, messages, audit entries."""
    from hytetu.privacy import export_person, record_export, write_export

    try:
        with db.session_scope() as s:
            data = export_person(s, email)
            record_export(s, data, actor=by)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if out is None:
        typer.echo(data.to_json(), nl=False)
    else:
        write_export(data, out)
    counts = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in data.counts().items())
    if data.empty:
        typer.echo(f"nothing is stored about {data.email}", err=True)
    else:
        typer.echo(f"{data.email}: {counts}" + (f"; written to {out}" if out else ""), err=True)


@app.command()
def rsvp(
    all_sessions: Annotated[
        bool, typer.Option("--all", help="Also the sessions already held")
    ] = False,
    region: Region = None,
) -> None:
    """Who has answered each session's invitation (read from the mailbox): accepted,
    tentative, declined, no answer, per organisation."""
    from hytetu.mailbox import attendance
    from hytetu.state import cycle_view

    try:
        with db.session_scope() as s:
            view = cycle_view(s, region)
            now = None if all_sessions else db.utcnow()
            rows = attendance(s, view.cycle.id, now)
            titles = {
                ms.key: (view.session_title(ms), view.local(ms.start)) for ms in view.sessions()
            }
    except HytetuError as e:
        _fail(e)
        return
    if not rows:
        typer.echo("no sessions ahead (--all shows those held)")
    typer.echo(f"{'':<40} {'kyllä':>6} {'ehkä':>6} {'ei':>6} {'?':>6}")
    current = None
    for r in rows:
        if r["session"] != current:
            current = r["session"]
            title, start = titles[current]
            typer.echo(f"{start:%d.%m.%Y %H:%M} {title}")
        declined = r["declined"] + r["delegated"]
        typer.echo(
            f"  {r['org']:<38} {r['accepted']:>6} {r['tentative']:>6} {declined:>6} "
            f"{r['no_answer']:>6}"
        )


dispatch_app = typer.Typer(help="Letters to the municipal registries.", no_args_is_help=True)
app.add_typer(dispatch_app, name="dispatch")


@dispatch_app.command("status")
def dispatch_status(
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="Also write the report as CSV to this file")
    ] = None,
    region: Region = None,
    year: Year = None,
) -> None:
    """Every memo letter of the cycle: state, recipient, document, Message-ID, sent time."""
    from collections import Counter

    from hytetu.dispatch import bounce_message, report_rows, unresolved_bounces, write_csv
    from hytetu.state import cycle_view

    try:
        with db.session_scope() as s:
            view = cycle_view(s, region, year)
            rows = report_rows(s, view.cycle.id)
            year = view.cycle.year
            bounced = [bounce_message(view, m) for m in unresolved_bounces(s, view.cycle.id)]
    except HytetuError as e:
        _fail(e)
        return
    counts = Counter(r["state"] for r in rows)
    summary = ", ".join(f"{state} {n}" for state, n in sorted(counts.items())) or "no letters"
    typer.echo(f"dispatch {year}: {summary}")
    for r in rows:
        when = r["sent_at"][:19].replace("T", " ") or "-"
        typer.echo(
            f"{r['state']:<10} {r['recipient']:<32} {r['document']:<48} "
            f"{r['attempts']:>2}  {when}  {r['message_id']}"
        )
        if r["error"] and r["state"] != "sent":
            typer.echo(f"{'':<10} {r['error']}")
        if r["registry_reference"] or r["receipt_at"]:
            # the registry's receipt: proof of filing, with its diary number when given
            when = r["receipt_at"][:19].replace("T", " ")
            typer.echo(f"{'':<10} kirjattu / registrerat {when} {r['registry_reference']}")
    if csv_path is not None:
        write_csv(rows, csv_path)
        typer.echo(f"report: {csv_path}")
    for line in bounced:
        typer.echo(f"error: {line}", err=True)
    if counts.get("failed") or bounced:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover
    sys.exit(app())
