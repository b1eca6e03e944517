"""The scale benchmark: each phase of the year, and the whole year through Prefect, at
several scales of synthetic regions (``bench/generate.py``). Writes bench/RESULTS.md.

    .venv/bin/python bench/run.py --scales 1,4 --runs 3        # 22 and 88 optional

For each scale, the regions are generated into a temporary folder; then, ``--runs`` times
on a fresh SQLite database, every phase runs for every region in a fresh subprocess
(``hytetu.phases`` directly, file transport), and then once more ("second run": it must
send nothing, checked on the outbox table and the .eml files). Per phase: wall time and
CPU time of the phase itself (the subprocess's imports excluded; CPU includes every
descendant process: the render's workers and fork server, Prefect's API server; from
getrusage for those reaped and /proc for those still running), and peak memory: the
largest sum of the resident set sizes of the subprocess and all its descendants, sampled
every 50 ms from /proc by this process (Linux), or the subprocess's own ``ru_maxrss`` if
larger (a sum, because the render's workers run at the same time). Then the end-to-end
year: the daily tick (``flows.annual_cycle``, real flow runs on Prefect's ephemeral API)
on each day something is due in any region, the memos approved as ``hytetu demo`` does,
and the dispatch tick; the time inside ``hytetu.phases`` (the work) against the flows'
wall time gives the Prefect orchestration share. Last, ``hytetu demo`` end to end.
Figures are medians of the runs; each is marked against its target from issue #10.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # flows/ and tasks/ are imported from the checkout
    sys.path.insert(0, str(ROOT))

from bench.generate import generate  # noqa: E402

# The phases measured one by one, in the order of the year; "approve" is the simulated
# coordinator of ``hytetu demo`` (memos.apply_review approve_all).
PHASES = (
    "load",
    "invitations",
    "feedback_window",
    "import_feedback",
    "import_notes",
    "compile",
    "render",
    "approve",
    "dispatch",
)
GIB = 1024**3
PAGE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
GROWTH_LIMIT = math.log(5) / math.log(4)  # 4x the data in at most 5x the time
TARGETS_AT = 22  # the absolute targets are for the whole country
DEMO_TARGET = 20.0
COMPILE_TARGET = 60.0
RENDER_TARGET = 120.0
MEMORY_TARGET = 1.5 * GIB
PREFECT_TARGET = 0.20
SECOND_RUN_TARGET = 0.10
NOISE_FLOOR = 1.0  # a ratio of two times under a second says little: not marked


# --- in the subprocess: one phase for every region ---------------------------------------


@dataclass
class Moments:
    """A region's own times of the year."""

    ticks: list[datetime]
    last_session: datetime
    opens: datetime
    remind: datetime
    closes: datetime


def moments(url: str, region: str) -> Moments:
    from hytetu import db, feedback
    from hytetu.simulate import tick_times
    from hytetu.state import cycle_view

    with db.session_scope(url) as s:
        view = cycle_view(s, region)
        return Moments(
            ticks=tick_times(view),
            last_session=max(view.local(x.start) for x in view.sessions()),
            opens=feedback.opens_at(view),
            remind=feedback.reminder_at(view),
            closes=feedback.closes_at(view),
        )


def run_stage(stage: str, second: bool, url: str, configs: Path, out: Path) -> dict[str, Any]:
    """Run ``stage`` for every region, each into its own folder as the tick does; returns
    what it did."""
    from hytetu import phases

    if stage == "load":
        for folder in sorted(p for p in configs.iterdir() if p.is_dir()):
            phases.load(folder, url, actor="bench")
        return {"sent": 0}
    keys = phases.region_keys(url)
    did: dict[str, int] = {"sent": 0}

    def add(name: str, n: int) -> None:
        did[name] = did.get(name, 0) + n

    for key in keys:
        at, dest = moments(url, key), phases.region_out(out, key, keys)
        if stage == "invitations":  # on each of the region's tick days up to its last session
            ticks = [t for t in at.ticks if t <= at.last_session] or at.ticks[:1]
            for t in ticks[-1:] if second else ticks:
                add("sent", phases.run_invitations(t, dest, url, key).sent)
        elif stage == "feedback_window":
            for step, t in (("open", at.opens), ("remind", at.remind), ("close", at.closes)):
                add("sent", phases.run_feedback_step(step, t, dest, url, key).sent)
        elif stage == "import_feedback":
            files = phases.run_import_feedback(at.closes, url, key).did["files"]
            add("added", sum(f["added"] for f in files.values()))
        elif stage == "import_notes":
            add(
                "changed",
                sum(phases.run_import_notes(at.closes, url, key).did["sessions"].values()),
            )
        elif stage == "compile":
            add("new", int(phases.run_compile(url, key).did.get("new", False)))
        elif stage == "render":
            add("new_versions", phases.run_render(dest, url, key).did.get("new_versions", 0))
        elif stage == "approve":
            add("approved", approve(url, key, at.closes))
        elif stage == "dispatch":
            report = phases.run_dispatch(at.closes + timedelta(days=2), dest, url, key)
            add("sent", report.sent)
            add("failed", len(report.failed))
        else:
            raise SystemExit(f"unknown stage {stage}")
    return did


def approve(url: str, region: str, at: datetime) -> int:
    """The simulated coordinator of ``hytetu demo``: approve every draft."""
    from hytetu import db, memos
    from hytetu.state import cycle_view

    with db.session_scope(url) as s:
        drafts = memos.apply_review(
            cycle_view(s, region), [], actor="bench", approve_all=True, comment="bench", at=at
        )
        return len(drafts)


def outbox_counts(url: str, out: Path) -> dict[str, int]:
    from sqlalchemy import func, select

    from hytetu import db

    with db.session_scope(url) as s:
        rows = s.scalar(select(func.count()).select_from(db.OutgoingMessage)) or 0
        sent = s.scalar(
            select(func.count()).select_from(db.OutgoingMessage).filter_by(state="sent")
        )
    emls = sum(1 for _ in out.rglob("*.eml"))
    return {"rows": rows, "sent_rows": sent or 0, "eml_files": emls}


def stop_pdf_workers() -> None:
    """Reap the render's fork server, so its and its workers' CPU time is counted."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    if server is not None and getattr(server, "_forkserver_pid", None):
        server._stop()


def cpu_seconds() -> float:
    """CPU time of this process and all its descendants: those reaped (getrusage) and those
    still running (/proc: the render's fork server, Prefect's ephemeral API server)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    live = 0
    for pid in descendants(os.getpid())[1:]:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        live += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime + live / CLOCK_TICKS


def worker(args: argparse.Namespace) -> None:
    """One stage in this (fresh) process; prints its figures as JSON."""
    from hytetu import phases  # noqa: F401  (imports are not the phase's time)

    url, out = args.db, Path(args.out)
    os.environ["HYTETU_DATABASE_URL"] = url  # the flows and tasks take no URL
    if args.stage == "tick":
        result = tick_worker(url, Path(args.configs), out)
    else:
        before = outbox_counts(url, out) if args.stage != "load" else {}
        wall, cpu = time.perf_counter(), cpu_seconds()
        did = run_stage(args.stage, args.second, url, Path(args.configs), out)
        wall = time.perf_counter() - wall
        stop_pdf_workers()
        cpu = cpu_seconds() - cpu
        after = outbox_counts(url, out) if args.stage != "load" else {}
        new = {k: after[k] - before[k] for k in after}
        result = {"wall": wall, "cpu": cpu, "did": did, "outbox_added": new}
    result["maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("BENCH-RESULT " + json.dumps(result))


# --- the end-to-end year through Prefect -------------------------------------------------


STEP_FN = "run_feedback_step"  # timed per step: open, remind, close


class WorkClock:
    """Time spent inside ``hytetu.phases`` (the work), per phase, outermost calls only."""

    NAMES = (
        "run_invitations",
        "run_feedback_step",
        "run_import_feedback",
        "run_import_notes",
        "run_compile",
        "run_render",
        "run_dispatch",
        "due_phases",
        "resolve_as_of",
        "region_keys",
    )

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.depth = 0

    def install(self) -> None:
        """Wrap the functions in hytetu.phases; call before flows/ is imported (it binds
        some of them by name)."""
        from hytetu import phases

        for name in self.NAMES:
            if hasattr(phases, name):
                setattr(phases, name, self.wrap(name, getattr(phases, name)))

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self.depth:
                return fn(*args, **kwargs)
            key = f"{name}:{args[0] if args else kwargs.get('step')}" if name == STEP_FN else name
            self.depth += 1
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.depth -= 1
                self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - started

        timed.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
        return timed

    def total(self) -> float:
        return sum(self.seconds.values())


@contextmanager
def flow_clock(seconds: dict[str, float]) -> Iterator[None]:
    """Wall time of each phase's flow run, through annual_cycle's run_phase_flow."""
    import flows.annual_cycle as tick

    original = getattr(tick, "run_phase_flow", None)
    if original is None:  # the tick no longer runs phases through it: no per-phase split
        yield
        return

    def timed(phase: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(phase, *args, **kwargs)
        finally:
            seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - started

    tick.run_phase_flow = timed
    try:
        yield
    finally:
        tick.run_phase_flow = original


def tick_worker(url: str, configs: Path, out: Path) -> dict[str, Any]:
    """Load every region, then the daily tick on each day something is due in any region,
    the approval, and the dispatch tick; then the dispatch tick again (nothing to do)."""
    from prefect import flow
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    clock = WorkClock()
    clock.install()
    from flows.annual_cycle import annual_cycle
    from hytetu.phases import region_keys

    run_stage("load", False, url, configs, out)
    keys = region_keys(url)
    years = {key: moments(url, key) for key in keys}
    ticks = sorted({t for m in years.values() for t in m.ticks})

    @flow(name="bench-warm-up")
    def warm_up() -> None:
        """Starts the ephemeral API before anything is timed."""

    flows: dict[str, float] = {}
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        warm_up()
        clock.seconds.clear()
        wall, cpu = time.perf_counter(), cpu_seconds()
        with flow_clock(flows):
            for at in ticks:
                annual_cycle(as_of=at, out_dir=str(out))
            approve_at = ticks[-1] + timedelta(days=1)
            wall_approve = time.perf_counter()
            for key in keys:
                approve(url, key, approve_at)
            wall_approve = time.perf_counter() - wall_approve
            dispatch_at = approve_at + timedelta(hours=1)
            annual_cycle(as_of=dispatch_at, out_dir=str(out))
            wall = time.perf_counter() - wall - wall_approve
            stop_pdf_workers()
            cpu = cpu_seconds() - cpu
            work = clock.total()
            before = outbox_counts(url, out)
            again = time.perf_counter()
            due = annual_cycle(as_of=dispatch_at, out_dir=str(out))
            again = time.perf_counter() - again
            after = outbox_counts(url, out)
    return {
        "wall": wall,
        "cpu": cpu,
        "work": work,
        "work_by_phase": clock.seconds,
        "flows": flows,
        "ticks": len(ticks) + 1,
        "second_wall": again,
        "second_due": due,
        "second_added": {k: after[k] - before[k] for k in after},
        "outbox": after,
    }


# --- in this process: subprocesses, sampling, the table ---------------------------------


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (Linux /proc)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants."""
    total = 0
    for p in descendants(pid):
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


@dataclass
class Measure:
    wall: float
    cpu: float
    peak: int
    result: dict[str, Any]


def measure(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> Measure:
    """Run a subprocess, sampling its tree's memory; its own figures come back as JSON."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd
    )
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    sampler.join()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[1:4])} failed ({proc.returncode}):\n{stderr[-4000:]}")
    line = next((x for x in stdout.splitlines() if x.startswith("BENCH-RESULT ")), None)
    result = json.loads(line.split(" ", 1)[1]) if line else {}
    peak_bytes = max(peak[0], int(result.get("maxrss", 0)))
    return Measure(result.get("wall", wall), result.get("cpu", 0.0), peak_bytes, result)


def bench_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)  # Prefect's ephemeral API, never a real server
    env["PREFECT_HOME"] = str(home)
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["PREFECT_LOGGING_LEVEL"] = "WARNING"
    # As `hytetu demo` sets it: a flow run waits at its end for its logs to reach the API,
    # up to this interval (default 2 s, about 0.5 s a run), a year of ticks in one process.
    env["PREFECT_LOGGING_TO_API_BATCH_INTERVAL"] = "0.1"
    env["HYTETU_TRANSPORT"] = "file"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@dataclass
class ScaleResult:
    scale: int
    generate_seconds: float
    first: dict[str, list[Measure]] = field(default_factory=dict)
    second: dict[str, list[Measure]] = field(default_factory=dict)
    tick: list[Measure] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def stage_argv(stage: str, url: str, configs: Path, out: Path, second: bool) -> list[str]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", stage, "--db", url]
    argv += ["--configs", str(configs), "--out", str(out)]
    return argv + (["--second"] if second else [])


def bench_scale(scale: int, runs: int, seed: int, base: Path, env: dict[str, str]) -> ScaleResult:
    configs = base / f"regions-{scale}"
    started = time.perf_counter()
    generate(scale, configs, seed)
    result = ScaleResult(scale, time.perf_counter() - started)
    for run in range(runs):
        work = base / f"run-{scale}-{run}"
        url = f"sqlite:///{work / 'hytetu.db'}"
        (work / "out").mkdir(parents=True)
        for stage in PHASES:
            for second in (False, True):
                m = measure(stage_argv(stage, url, configs, work / "out", second), env)
                (result.second if second else result.first).setdefault(stage, []).append(m)
                tag = "second" if second else "first"
                print(f"  {scale}x run {run + 1} {stage:<16} {tag:<6} {m.wall:8.2f} s", flush=True)
        if run == 0:
            result.counts = data_counts(url, work / "out")
        tick_work = base / f"tick-{scale}-{run}"
        (tick_work / "out").mkdir(parents=True)
        tick_url = f"sqlite:///{tick_work / 'hytetu.db'}"
        m = measure(stage_argv("tick", tick_url, configs, tick_work / "out", False), env)
        result.tick.append(m)
        print(f"  {scale}x run {run + 1} tick (Prefect)   {m.wall:8.2f} s", flush=True)
        shutil.rmtree(work)
        shutil.rmtree(tick_work)
    return result


def data_counts(url: str, out: Path) -> dict[str, int]:
    from sqlalchemy import func, select

    from hytetu import db

    def count(model: Any) -> int:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)

    with db.session_scope(url) as s:
        counts = {
            "regions": count(db.Region),
            "municipalities": count(db.Municipality),
            "sessions": count(db.MeetingSession),
            "contacts": count(db.Contact),
            "feedback": count(db.FeedbackResponse),
            "findings": count(db.Finding),
            "messages": count(db.OutgoingMessage),
            "memo versions": count(db.MemoVersion),
        }
    db.dispose(url)
    return counts


def bench_demo(runs: int, base: Path, env: dict[str, str]) -> list[float]:
    hytetu = Path(sys.executable).with_name("hytetu")
    times = []
    for run in range(runs):
        cwd = base / f"demo-{run}"
        cwd.mkdir()
        m = measure([str(hytetu), "demo", "--out", "demo-out"], env, cwd=cwd)
        times.append(m.wall)
        print(f"  demo run {run + 1} {m.wall:8.2f} s", flush=True)
        shutil.rmtree(cwd)
    return times


# --- the report ---------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def mark(ok: bool) -> str:
    return "holds" if ok else "**missed**"


def mib(n: float) -> str:
    return f"{n / 1024**2:.0f}"


def phase_target(scale: int, stage: str, wall: float, peak: float) -> str:
    marks = []
    if scale == TARGETS_AT and stage == "compile":
        marks.append(f"≤{COMPILE_TARGET:.0f} s: {mark(wall <= COMPILE_TARGET)}")
    if scale == TARGETS_AT and stage == "render":
        marks.append(f"≤{RENDER_TARGET:.0f} s: {mark(wall <= RENDER_TARGET)}")
    if scale == TARGETS_AT:
        marks.append(f"≤1.5 GiB: {mark(peak <= MEMORY_TARGET)}")
    return "; ".join(marks) or "–"


def scale_table(r: ScaleResult) -> list[str]:
    c = r.counts
    lines = [
        f"### {r.scale}x: {c.get('regions', 0)} region(s), {c.get('municipalities', 0)} "
        f"municipalities, {c.get('sessions', 0)} sessions, {c.get('contacts', 0)} contacts, "
        f"{c.get('feedback', 0)} feedback responses, {c.get('findings', 0)} findings, "
        f"{c.get('messages', 0)} messages, {c.get('memo versions', 0)} memo versions "
        f"(generated in {r.generate_seconds:.1f} s)",
        "",
        "| phase | wall s | CPU s | peak MiB | 2nd run s | 2nd/1st | 2nd run sends | target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for stage in PHASES:
        first, second = r.first.get(stage, []), r.second.get(stage, [])
        wall = median([m.wall for m in first])
        cpu = median([m.cpu for m in first])
        peak = max((m.peak for m in first), default=0)
        wall2 = median([m.wall for m in second])
        ratio = wall2 / wall if wall else float("nan")
        sends = max((sends_of(m) for m in second), default=0)
        second_mark = f"{sends} ({mark(sends == 0)})"
        ratio_mark = f"{ratio:.0%} " + (
            f"({mark(ratio <= SECOND_RUN_TARGET)})" if wall >= NOISE_FLOOR else "(1st < 1 s)"
        )
        lines.append(
            f"| {stage} | {wall:.2f} | {cpu:.2f} | {mib(peak)} | {wall2:.2f} | {ratio_mark} "
            f"| {second_mark} | {phase_target(r.scale, stage, wall, peak)} |"
        )
    return lines


def sends_of(m: Measure) -> int:
    """Messages a run sent: its own count, and what the outbox table and folder gained."""
    added = m.result.get("outbox_added", {})
    return max(int(m.result.get("did", {}).get("sent", 0)), *[int(v) for v in added.values()], 0)


def tick_table(results: list[ScaleResult]) -> list[str]:
    lines = [
        "| scale | ticks | wall s | CPU s | peak MiB | work s | of it due_phases s | "
        "Prefect share | 2nd tick s | 2nd tick sends | targets |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in results:
        if not r.tick:
            continue
        wall = median([m.wall for m in r.tick])
        work = median([m.result["work"] for m in r.tick])
        deciding = median([m.result["work_by_phase"].get("due_phases", 0.0) for m in r.tick])
        share = median([1 - m.result["work"] / m.wall for m in r.tick if m.wall])
        peak = max(m.peak for m in r.tick)
        second = median([m.result["second_wall"] for m in r.tick])
        sends = max(max(m.result["second_added"].values(), default=0) for m in r.tick)
        targets = f"Prefect ≤20 %: {mark(share <= PREFECT_TARGET)}"
        if r.scale == TARGETS_AT:
            targets += f"; ≤1.5 GiB: {mark(peak <= MEMORY_TARGET)}"
        lines.append(
            f"| {r.scale}x | {r.tick[0].result['ticks']} | {wall:.2f} "
            f"| {median([m.cpu for m in r.tick]):.2f} | {mib(peak)} | {work:.2f} | {deciding:.2f} "
            f"| {share:.0%} "
            f"| {second:.2f} | {sends} ({mark(sends == 0)}) | {targets} |"
        )
    lines += ["", "Prefect share per phase flow (flow wall time − time in hytetu.phases):", ""]
    lines += ["| scale | " + " | ".join(TICK_PHASES) + " |"]
    lines += ["| ---: |" + " ---: |" * len(TICK_PHASES)]
    for r in results:
        if not r.tick:
            continue
        cells = []
        for phase in TICK_PHASES:
            shares = [
                1 - m.result["work_by_phase"].get(WORK_OF[phase], 0.0) / m.result["flows"][phase]
                for m in r.tick
                if m.result["flows"].get(phase)
            ]
            cells.append(f"{median(shares):.0%}" if shares else "–")
        lines.append(f"| {r.scale}x | " + " | ".join(cells) + " |")
    return lines


TICK_PHASES = ("invitations", "open_feedback", "remind_feedback", "import_feedback",
               "import_notes", "close_feedback", "compile", "render", "dispatch")  # fmt: skip
WORK_OF = {
    "invitations": "run_invitations",
    "open_feedback": "run_feedback_step:open",
    "remind_feedback": "run_feedback_step:remind",
    "close_feedback": "run_feedback_step:close",
    "import_feedback": "run_import_feedback",
    "import_notes": "run_import_notes",
    "compile": "run_compile",
    "render": "run_render",
    "dispatch": "run_dispatch",
}


def growth_table(results: list[ScaleResult]) -> list[str]:
    pairs = list(zip(results, results[1:], strict=False))
    if not pairs:
        return ["(one scale only: no growth figures)"]
    head = " | ".join(f"{a.scale}x→{b.scale}x" for a, b in pairs)
    lines = [f"| phase | {head} |", "| --- |" + " --- |" * len(pairs)]
    for name in (*PHASES, "tick"):
        cells = []
        for a, b in pairs:
            ta, tb = median_wall(a, name), median_wall(b, name)
            if not (ta > 0 and tb > 0):
                cells.append("–")
                continue
            k = math.log(tb / ta) / math.log(b.scale / a.scale)
            cells.append(f"{k:.2f} ({mark(k <= GROWTH_LIMIT)})")
        label = "tick (Prefect)" if name == "tick" else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def median_wall(r: ScaleResult, stage: str) -> float:
    return median([m.wall for m in (r.tick if stage == "tick" else r.first.get(stage, []))])


def report(
    results: list[ScaleResult], demo: list[float], args: argparse.Namespace, load: list[float]
) -> str:
    """The Markdown; ``load`` is the load average at the start and at the end (6 numbers)."""
    lines = [
        "# hytetu scale benchmark (issue #10)",
        "",
        f"{args.date}; {platform.node()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; load average at start "
        f"{', '.join(f'{x:.2f}' for x in load[:3])}, at end "
        f"{', '.join(f'{x:.2f}' for x in load[3:])}; code {args.code}.",
        "",
        f"Command: `.venv/bin/python bench/run.py --scales {args.scales} --runs {args.runs}"
        f"{'' if args.demo else ' --no-demo'}`. Medians of {args.runs} runs; peak memory the "
        "highest. Each phase runs for every region in a fresh process (imports not counted); "
        "CPU and peak memory are the whole process tree's (render workers, Prefect's API "
        "server). A second-run ratio is marked only when the first run took ≥ 1 s. "
        "A 1x region is one county at the national average (14 municipalities, 6 sessions, "
        "227 contacts, 4,500 feedback responses, ~900 findings); 22x is Finland. The "
        f"absolute targets apply at {TARGETS_AT}x.",
        "",
        "## Phases, one by one (hytetu.phases, file transport)",
        "",
    ]
    for r in results:
        lines += [*scale_table(r), ""]
    lines += [
        "## Growth exponent of wall time, log(t2/t1)/log(s2/s1)",
        "",
        f"Target: 4x the data in ≤5x the time, an exponent ≤ {GROWTH_LIMIT:.2f}.",
        "",
        *growth_table(results),
        "",
        "## The year end to end: the daily tick through Prefect (ephemeral API)",
        "",
        "Ticks on every day something is due in any region, the approval (not timed), the "
        "dispatch tick; then the dispatch tick again (it must do nothing). Work is the time "
        "inside hytetu.phases; the rest of the wall time is Prefect orchestration.",
        "",
        *tick_table(results),
        "",
    ]
    if demo:
        wall = median(demo)
        lines += [
            "## `hytetu demo`",
            "",
            "| runs | median wall s | min | max | target ≤20 s |",
            "| ---: | ---: | ---: | ---: | --- |",
            f"| {len(demo)} | {wall:.2f} | {min(demo):.2f} | {max(demo):.2f} "
            f"| {mark(wall <= DEMO_TARGET)} |",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="1,4", help="comma-separated, e.g. 1,4,22,88")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-demo", dest="demo", action="store_false")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument(
        "--report-from", type=Path, help="only write the table, from an earlier RESULTS.json"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--configs", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--second", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.stage = args.worker
        worker(args)
        return
    if args.report_from:  # the table again from the raw figures of an earlier run
        raw = json.loads(args.report_from.read_text(encoding="utf-8"))
        results = [scale_result(r) for r in raw["results"]]
        demo, load, args.code = raw["demo"], raw["load"], raw.get("code", "?")
        args.date = raw.get("date", "?")
        args.scales, args.runs, args.demo = raw["scales"], raw["runs"], bool(demo)
    else:
        load, start = list(os.getloadavg()), code_version()
        scales = sorted({int(s) for s in args.scales.split(",") if s.strip()})
        with tempfile.TemporaryDirectory(prefix="hytetu-bench-") as tmp:
            base = Path(tmp)
            env = bench_env(base / "prefect-home")
            results = []
            for scale in scales:
                print(f"{scale}x", flush=True)
                results.append(bench_scale(scale, args.runs, args.seed, base, env))
            demo = bench_demo(args.runs, base, env) if args.demo else []
        raw = {"scales": args.scales, "runs": args.runs, "load": load, "demo": demo}
        raw["code"] = args.code = code_version(start)
        raw["date"] = args.date = f"{datetime.now().astimezone():%Y-%m-%d %H:%M %Z}"
        raw["load"] = load = load + list(os.getloadavg())
        raw["results"] = [asdict(r) for r in results]
        args.results.with_suffix(".json").write_text(json.dumps(raw, indent=1), encoding="utf-8")
    text = report(results, demo, args, load)
    args.results.write_text(text + "\n", encoding="utf-8")
    print(text)


def code_version(at_start: str | None = None) -> str:
    """The commit and how many files differ from it; the working tree is shared, so a change
    while the benchmark ran is said too."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        diff = subprocess.run(
            ["git", "-C", str(ROOT), "diff", "HEAD"], capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    changed = subprocess.run(
        ["git", "-C", str(ROOT), "diff", "--name-only", "HEAD"], capture_output=True, text=True
    ).stdout.split()
    now = f"{head} + {len(changed)} changed files (diff {hashlib.sha1(diff).hexdigest()[:8]})"
    if at_start is not None and at_start != now:
        return f"{now}; at start {at_start}: **the code changed while the benchmark ran**"
    return now


def scale_result(raw: dict[str, Any]) -> ScaleResult:
    def measures(items: list[dict[str, Any]]) -> list[Measure]:
        return [Measure(**m) for m in items]

    return ScaleResult(
        raw["scale"],
        raw["generate_seconds"],
        {k: measures(v) for k, v in raw["first"].items()},
        {k: measures(v) for k, v in raw["second"].items()},
        measures(raw["tick"]),
        raw["counts"],
    )


if __name__ == "__main__":
    main()
