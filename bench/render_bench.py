"""Per-document cost of the memos and the summary, and the render serial vs in processes.

    .venv/bin/python bench/render_bench.py [--languages fi,sv] [--rounds 2] [--workers 2]

Loads the example region into a temporary SQLite database, runs the year up to the
compilation, then (1) times the PDF of every document one by one (wall and CPU time,
pages), and (2) times the whole render phase (``memos.render_memos``) in one process and
in ``--workers`` processes (the first time, when the fork server starts, and then the
best of ``--rounds``). Prints a table. The
machine's load average is printed too: on a shared box the wall times move with it.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import time
from pathlib import Path

from pypdf import PdfReader

from hytetu import db, findings, memos, phases
from hytetu.render import html_to_pdf
from hytetu.simulate import tick_times
from hytetu.state import cycle_view

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "examples" / "keski-suomi-2025"


def prepare(base: Path, languages: list[str]) -> str:
    """The example year up to the compilation, in ``base/hytetu.db``."""
    config = base / "config"
    shutil.copytree(EXAMPLE, config)
    region = config / "region.yaml"
    region.write_text(
        region.read_text(encoding="utf-8").replace(
            "languages: [fi]", f"languages: [{', '.join(languages)}]"
        ),
        encoding="utf-8",
    )
    url = f"sqlite:///{base / 'hytetu.db'}"
    phases.load(config, url)
    with db.session_scope(url) as s:
        ticks = tick_times(cycle_view(s))
    for at in ticks:
        for phase in phases.due_phases(at, url):
            if phase not in ("render", "dispatch"):
                phases.run_phase(phase, at, base / "out", url)
    db.dispose(url)
    return url


def render_phase(base: Path, source: Path, workers: int, tag: str) -> tuple[float, list]:
    """Seconds for one whole render (HTML, hashes, PDFs, DB rows) on a copy of the DB."""
    copy = base / f"render-{tag}.db"
    shutil.copy(source, copy)
    url = f"sqlite:///{copy}"
    with db.session_scope(url) as s:
        view = cycle_view(s)
        compilation = findings.latest_compilation(view)
        assert compilation is not None
        started = time.perf_counter()
        result = memos.render_memos(view, compilation, workers=workers)
        seconds = time.perf_counter() - started
        docs = [(v.filename, v.html, v.pdf) for v in result.created]
    db.dispose(url)
    return seconds, docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--languages", default="fi", help="e.g. fi,sv for a bilingual region")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    languages = [x.strip() for x in args.languages.split(",") if x.strip()]

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        prepare(base, languages)
        source = base / "hytetu.db"
        # A first render warms WeasyPrint (import, fonts) so every later number is fair.
        _, docs = render_phase(base, source, 1, "warm")

        print(f"{'document':<66} {'pages':>5} {'pdf wall ms':>11} {'pdf cpu ms':>10}")
        total_wall = total_cpu = 0.0
        for filename, html, pdf in sorted(docs):
            wall, cpu = time.perf_counter(), time.process_time()
            html_to_pdf(html, title=filename, language="fi", author="bench", subject="bench")
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            total_wall, total_cpu = total_wall + wall, total_cpu + cpu
            pages = len(PdfReader(io.BytesIO(pdf)).pages)
            print(f"{filename:<66} {pages:>5} {wall * 1000:>11.0f} {cpu * 1000:>10.0f}")
        n = len(docs)
        print(
            f"{'per document (mean)':<66} {'':>5} {total_wall / n * 1000:>11.0f} "
            f"{total_cpu / n * 1000:>10.0f}"
        )
        print()
        timings = {}
        # The first parallel render also starts the workers' fork server (once per process).
        timings[f"  {args.workers} workers, first (fork server starts)"] = render_phase(
            base, source, args.workers, "cold"
        )[0]
        timings["  serial (1 process)"] = min(
            render_phase(base, source, 1, f"1-{r}")[0] for r in range(args.rounds)
        )
        timings[f"  {args.workers} workers, fork server running"] = min(
            render_phase(base, source, args.workers, f"w-{r}")[0] for r in range(args.rounds)
        )
        print(f"{'render phase, ' + str(n) + ' documents':<44} {'seconds':>8} {'per doc ms':>10}")
        for label, seconds in timings.items():
            print(f"{label:<44} {seconds:>8.2f} {seconds / n * 1000:>10.0f}")
        print(
            f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs"
        )


if __name__ == "__main__":
    main()
