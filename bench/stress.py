"""The outside stress checks of issue #17, reproduced: hostile input files and killed runs.

    .venv/bin/python bench/stress.py [--only inputs,kills]

**inputs**: each hostile or broken file of the issue is built in a temporary folder (a
zip bomb, a 20 MB XML comment, a 114 MB CSV, /dev/zero, a 30 MB region.yaml, US dates,
a missing column, broken quoting, a missing file) and given to the real CLI in a child
process, as a person would (``hytetu feedback import FILE`` against the example loaded in
a temporary SQLite database, ``hytetu validate FOLDER``). The table gives the exit code,
whether a traceback was printed, whether the database changed, the seconds and the
child's peak memory (its whole process, Python and hytetu imported: some 100 MB of it).

**kills**: the crash test ``tests/test_dispatch.py`` (SIGKILL at 5 or more points per
purpose, over a real SMTP server on loopback and the Graph fake, then a re-run the same
day) run by pytest; it asserts 0 lost and duplicates only for the message in flight, so a
passed row means exactly that. A few minutes on two cores.

Not a test: nothing here runs in the suite.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "examples" / "keski-suomi-2025"
HEADER = (
    "Vastaustunniste;Vastausaika;Organisaatio;Vastaajan tyyppi;Kunta tai kuntaryhmä;"
    "Painopiste;Palvelualue;Näkemys;Sähköposti"
)
ROW = "{n};24.10.2025 9:12;Jämsän kaupunki;Kunta;Jämsä;;;Liikuntapaikkojen esteettömyys;\n"
MB = 1 << 20

# The child: the CLI in-process, then its own peak memory (ru_maxrss, kB) on stderr.
CHILD = """
import resource, sys
from hytetu.cli import app
try:
    app(sys.argv[1:], prog_name="hytetu")
finally:
    print(f"\\nPEAK_KB={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", file=sys.stderr)
"""


# --- the hostile files ----------------------------------------------------------------------


def export_xlsx(path: Path, filler: Callable[[], Iterator[bytes]]) -> Path:
    """A Forms-style export (openpyxl) whose sheet gets ``filler`` before its rows."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["Vastausaika", "Organisaatio", "Kunta tai kuntaryhmä", "Näkemys"])
    ws.append(["24.10.2025 9:12", "Jämsän kaupunki", "Jämsä", "Hyvä alku"])
    buffer = io.BytesIO()
    wb.save(buffer)
    source = zipfile.ZipFile(buffer)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            data = source.read(info)
            if info.filename != "xl/worksheets/sheet1.xml":
                out.writestr(info, data)
                continue
            at = data.index(b"<sheetData>")
            with out.open(info.filename, "w", force_zip64=True) as member:
                member.write(data[:at])
                for piece in filler():
                    member.write(piece)
                member.write(data[at:])
    return path


def spaces(megabytes: int) -> Callable[[], Iterator[bytes]]:
    def gen() -> Iterator[bytes]:
        block = b" " * MB
        for _ in range(megabytes):
            yield block

    return gen


def comment(megabytes: int) -> Callable[[], Iterator[bytes]]:
    def gen() -> Iterator[bytes]:
        yield b"<!--"
        for _ in range(megabytes * 2):
            yield os.urandom(MB // 4).hex().encode()
        yield b"-->"

    return gen


def big_csv(path: Path, megabytes: int) -> Path:
    block = "".join(ROW.format(n=n) for n in range(10_000))
    with path.open("w", encoding="utf-8") as f:
        f.write(HEADER + "\n")
        while f.tell() < megabytes * MB:
            f.write(block)
    return path


def text(path: Path, content: str) -> Path:
    path.write_text(content, encoding="utf-8")
    return path


def cases(tmp: Path) -> list[tuple[str, list[str], Callable[[], object]]]:
    """(what, the CLI's arguments, how to build the input)."""
    f = tmp / "files"
    f.mkdir()
    config = tmp / "big-config"
    return [
        ("missing file", ["feedback", "import", str(f / "puuttuu.csv")], lambda: None),
        (
            "CSV, an unbalanced quote",
            ["feedback", "import", str(f / "lainaus.csv")],
            lambda: text(
                f / "lainaus.csv",
                f"{HEADER}\n"
                + ROW.format(n=1)
                + '2;25.10.2025 9:12;Keuruun kaupunki;Kunta;Keuruu;;;"Alkaa;\n'
                + '3;26.10.2025 9:12;Multian kunta;Kunta;Multia;;;Loppuu";\n',
            ),
        ),
        (
            "CSV, US dates that read both ways",
            ["feedback", "import", str(f / "us.csv")],
            lambda: text(
                f / "us.csv",
                "Completion time;Kunta tai kuntaryhmä;Näkemys\n"
                "11/3/2025 9:12 AM;Jämsä;Ensimmäinen\n12/1/2025 8:00 AM;Keuruu;Toinen\n",
            ),
        ),
        (
            "CSV, no municipality column",
            ["feedback", "import", str(f / "kunta.csv")],
            lambda: text(
                f / "kunta.csv", "Vastausaika;Kunta;Näkemys\n24.10.2025 9:12;Jämsä;Pihat\n"
            ),
        ),
        (
            "CSV, 114 MB",
            ["feedback", "import", str(f / "iso.csv")],
            lambda: big_csv(f / "iso.csv", 114),
        ),
        (
            "CSV, 60,000 rows (5 MB)",
            ["feedback", "import", str(f / "rivit.csv")],
            lambda: text(
                f / "rivit.csv", HEADER + "\n" + "".join(ROW.format(n=n) for n in range(60_000))
            ),
        ),
        (
            "/dev/zero named .csv",
            ["feedback", "import", str(f / "nolla.csv")],
            lambda: (f / "nolla.csv").symlink_to("/dev/zero"),
        ),
        (
            "XLSX zip bomb, 0.8 MB -> 800 MB",
            ["feedback", "import", str(f / "pommi.xlsx")],
            lambda: export_xlsx(f / "pommi.xlsx", spaces(800)),
        ),
        (
            "XLSX, a 20 MB XML comment",
            ["feedback", "import", str(f / "kommentti.xlsx")],
            lambda: export_xlsx(f / "kommentti.xlsx", comment(20)),
        ),
        (
            "region.yaml of 30 MB",
            ["validate", str(config)],
            lambda: big_region(config),
        ),
    ]


def big_region(folder: Path) -> None:
    shutil.copytree(EXAMPLE, folder)
    with (folder / "region.yaml").open("a", encoding="utf-8") as f:
        line = "# kunta: Jyväskylä, Jämsä, Äänekoski, Kinnula, Kivijärvi, Petäjävesi\n"
        f.write(line * (30 * MB // len(line.encode())))


def count_responses(url: str) -> int:
    from sqlalchemy import func, select

    from hytetu import db

    with db.session_scope(url) as s:
        return s.scalar(select(func.count()).select_from(db.FeedbackResponse)) or 0


def run_inputs() -> list[list[str]]:
    from hytetu import phases

    rows = []
    with tempfile.TemporaryDirectory(prefix="hytetu-stress-") as name:
        tmp = Path(name)
        shutil.copytree(EXAMPLE, tmp / "config")
        url = f"sqlite:///{tmp / 'hytetu.db'}"
        phases.load(tmp / "config", url)
        env = os.environ | {"HYTETU_DATABASE_URL": url}
        for what, args, build in cases(tmp):
            build()
            before = count_responses(url)
            started = time.monotonic()
            child = subprocess.run(
                [sys.executable, "-c", CHILD, *args],
                capture_output=True,
                text=True,
                env=env,
                timeout=600,
            )
            seconds = time.monotonic() - started
            peak = re.search(r"PEAK_KB=(\d+)", child.stderr)
            output = child.stdout + child.stderr
            message = next((line.strip() for line in output.splitlines()[1:] if line.strip()), "")
            rows.append(
                [
                    what,
                    str(child.returncode),
                    "yes" if "Traceback" in output else "no",
                    "no" if count_responses(url) == before else "CHANGED",
                    f"{seconds:.1f}",
                    f"{int(peak[1]) / 1024:.0f}" if peak else "?",
                    re.sub(r"\s+", " ", message.replace(f"{tmp}/", "…/"))[:90],
                ]
            )
            for p in (tmp / "files").iterdir():  # the next case's disk
                p.unlink()
    return rows


def run_kills() -> list[list[str]]:
    with tempfile.TemporaryDirectory(prefix="hytetu-stress-") as name:
        report = Path(name) / "junit.xml"
        started = time.monotonic()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "tests/test_dispatch.py",
                "-k",
                "killed_tick",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--junitxml={report}",
            ],
            cwd=ROOT,
            capture_output=True,
            timeout=1800,
        )
        total = time.monotonic() - started
        rows = []
        for case in ET.parse(report).getroot().iter("testcase"):
            outcome = "passed"
            for tag in ("failure", "error", "skipped"):
                found = case.find(tag)
                if found is not None:
                    outcome = f"{tag}: {(found.get('message') or '')[:60]}"
            param = re.search(r"\[(.*)\]", case.get("name", ""))
            rows.append(
                [param[1] if param else case.get("name", ""), outcome, case.get("time", "")]
            )
        rows.append(["(all, with the year's snapshots)", "", f"{total:.0f}"])
        return rows


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("-|-".join("-" * w for w in widths))
    lines += [" | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="inputs,kills", help="inputs, kills or both")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    only = set(args.only.split(","))
    results: dict[str, list[list[str]]] = {}
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if "inputs" in only:
        results["inputs"] = run_inputs()
        print("\nHostile and broken inputs (the real CLI in a child process)\n")
        header = ["input", "exit", "traceback", "DB changed", "s", "peak MB", "first line said"]
        print(table(header, results["inputs"]))
    if "kills" in only:
        results["kills"] = run_kills()
        print("\nKilled ticks re-run the same day (tests/test_dispatch.py; passed = 0 lost,")
        print("duplicates only of the message in flight)\n")
        print(table(["purpose, transport", "outcome", "s"], results["kills"]))
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
