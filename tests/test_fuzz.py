"""Property tests (hypothesis) of everything that reads a file a person wrote or exported.

Whatever the input, the config loader, the feedback importer (CSV and XLSX) and the notes
importer (YAML and the XLSX template) either accept it or raise the product's own error
(ConfigError, FeedbackImportError, NotesError) whose every problem names the file and a
line/row or a field/column; never another exception, never a traceback. A refused import
writes nothing: the row count of every table is the same afterwards, both inside the
importer's transaction and after it.

The inputs are the example files mutated (a random value at a random place, a nasty snippet
inserted, bytes flipped or cut), files built from random cells, and random bytes; with ä, ö,
å throughout. Derandomized, with no example database, so CI sees the same cases every run.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import EXAMPLE, load_copy
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from sqlalchemy import func, inspect, select, text

from hytetu import db, feedback_import, notes
from hytetu.config import Config, FeedbackImport, load_config
from hytetu.errors import ConfigError, FeedbackImportError, NotesError, Problem
from hytetu.state import cycle_view

# When the session's Prefect test server runs, its threads draw from the global `random`
# while examples are generated, which hypothesis takes for a strategy doing it.
pytestmark = pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")


def fuzz(examples: int) -> Callable[[Any], Any]:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        # No shrinking: inputs are whole files, and shrinking them takes minutes. A failure
        # shows the file as generated; the examples derandomized make it reproducible.
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
    )


# --- values and mutations -----------------------------------------------------------------

FINNISH = "aäöåzÄÖÅ -'\"#:,;{}[]&*!|>%@`=+\t\n\\/.0123456789é€\u00a0\u2028\U0001f600"
texts = st.text(alphabet=st.sampled_from(FINNISH) | st.characters(codec="utf-8"), max_size=30)
dates = st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))
zones = st.sampled_from([None, UTC, timezone(timedelta(hours=3)), timezone(timedelta(hours=-14))])
datetimes = st.datetimes(timezones=zones)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(),
    texts,
    dates,
    datetimes,
    st.sampled_from(
        ["Jämsä", "jamsa", "fi", "sv", "Europe/Helsinki", "Mars/Olympus", "smtp", "", " "]
        + ["2025-02-30", "2025-10-23T09:00:00+25:00", "31.12.2025", "yes", "no", "null"]
        + ["hyte@hyvaks.example", "not-an-address", "x" * 5000, "ä" * 300, "con"]
    ),
)
yaml_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(texts | st.integers(), inner, max_size=4)
    ),
    max_leaves=12,
)
# Raw YAML that no Python value dumps to: huge numbers, aliases, tags, merges, deep nesting.
SNIPPETS = [
    "9" * 5000,
    "-" + "9" * 4400,
    "1e999",
    ".nan",
    "0x" + "f" * 3000,
    "2025-02-30",
    "2025-13-01T25:00:00+03:00",
    "9999-12-31T23:59:59-23:59",
    "&a [*a]",
    "*nowhere",
    "!!python/object/apply:os.system ['true']",
    "!!binary AAAA",
    "!!timestamp nonsense",
    "<<: {a: 1}",
    "{a: 1, a: 2}",
    "[" * 3000 + "]" * 3000,
    "{a: " * 500 + "1" + "}" * 500,
    "- " * 400 + "x",
    # a "billion laughs": 10 aliases of 10 aliases of ... (10^9 values once expanded)
    "{l0: &l0 [ha, ha, ha, ha, ha, ha, ha, ha, ha, ha], "
    + ", ".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9))
    + "}",
    # nesting through aliases: each one a level deeper than the last
    "[&c0 [x], " + ", ".join(f"&c{i} [*c{i - 1}]" for i in range(1, 300)) + "]",
    '"\\u0000 nul"',
    '"\\x1b[31m escape"',
    "'unterminated",
    "\t tab: indent",
    "ä: ö",
    "? [complex, key]\n: value",
    "%YAML 1.1\n---",
    "---\n...\n---",
]


def paths_of(data: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [here]
    if isinstance(data, dict):
        for k, v in data.items():
            out += paths_of(v, (*here, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += paths_of(v, (*here, i))
    return out


def replaced(data: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        copy = dict(data)
        if delete and not rest:
            copy.pop(head, None)
        else:
            copy[head] = replaced(data[head], rest, value, delete)
        return copy
    copy_list = list(data)
    if delete and not rest:
        del copy_list[head]
    else:
        copy_list[head] = replaced(data[head], rest, value, delete)
    return copy_list


@st.composite
def mutated_yaml(draw: st.DrawFn, original: str) -> bytes:
    """The YAML text with one random change: a value at a random path replaced or deleted,
    a snippet spliced in at a random place, bytes overwritten, the text cut, or random
    bytes instead."""
    kind = draw(st.sampled_from(["value", "value", "snippet", "bytes", "cut", "random"]))
    data = yaml.safe_load(original)
    if kind == "value":
        path = draw(st.sampled_from(paths_of(data)))
        value = draw(yaml_values)
        changed = replaced(data, path, value, delete=draw(st.booleans()) and bool(path))
        try:
            return yaml.safe_dump(changed, allow_unicode=True, sort_keys=False).encode()
        except (yaml.YAMLError, ValueError):  # e.g. an int too long for str(): not a file
            assume(False)
    raw = original.encode()
    at = draw(st.integers(0, len(raw)))
    if kind == "snippet":  # mostly as the value of a key or a list item, else anywhere
        snippet = draw(st.sampled_from(SNIPPETS)).encode()
        lines = raw.split(b"\n")
        values = [i for i, line in enumerate(lines) if b": " in line or b"- " in line]
        if values and draw(st.integers(0, 3)):
            i = draw(st.sampled_from(values))
            cut = lines[i].find(b": ") if b": " in lines[i] else lines[i].find(b"- ")
            lines[i] = lines[i][: cut + 2] + snippet
            return b"\n".join(lines)
        return raw[:at] + snippet + raw[at:]
    if kind == "bytes":
        junk = draw(st.binary(min_size=1, max_size=8))
        return raw[:at] + junk + raw[at + len(junk) :]
    if kind == "cut":
        return raw[:at]
    return draw(st.binary(max_size=300))


def located(problem: Problem, *names: str) -> None:
    """A problem a person can act on: which file, where in it (a line or row, a field or
    column) unless it is about the file as a whole (empty, not a workbook...), and what."""
    assert problem.file and any(problem.file.endswith(n) for n in names), problem
    assert problem.message.strip() and "Traceback" not in problem.message, problem
    assert str(problem).startswith(problem.file), problem


# --- the config loader --------------------------------------------------------------------

REGION = (EXAMPLE / "region.yaml").read_text(encoding="utf-8")
CYCLE = (EXAMPLE / "cycle.yaml").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@fuzz(120)
@given(
    which=st.sampled_from(["region.yaml", "cycle.yaml"]),
    region=mutated_yaml(REGION),
    cycle=mutated_yaml(CYCLE),
)
def test_config_loads_or_names_every_problem(
    folder: Path, which: str, region: bytes, cycle: bytes
) -> None:
    config = folder / "config"
    config.mkdir(exist_ok=True)
    (config / "region.yaml").write_bytes(region if which == "region.yaml" else REGION.encode())
    (config / "cycle.yaml").write_bytes(cycle if which == "cycle.yaml" else CYCLE.encode())
    try:
        loaded = load_config(config)
    except ConfigError as e:
        assert e.problems
        for p in e.problems:
            located(p, "region.yaml", "cycle.yaml")
        assert "Traceback" not in str(e)
        return
    assert isinstance(loaded, Config)


# --- importers against a loaded database --------------------------------------------------


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The example loaded into SQLite once for the module; the windows open (late answers
    are fine). Successful imports accumulate in it, which the properties allow."""
    base = tmp_path_factory.mktemp("fuzzdb")
    url = load_copy(base)
    yield url
    db.dispose(url)


def row_counts(session: Any) -> dict[str, int]:
    tables = inspect(session.get_bind()).get_table_names()
    return {t: session.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables}


def all_or_nothing(
    url: str, run: Callable[[Any], Any], error: type[Exception], *names: str
) -> bool:
    """Run an import in one transaction as the phases do. True if it was accepted; if it was
    refused, the error is the product's with located problems, and nothing was written:
    not even inside the transaction, and not after it."""
    with db.session_scope(url) as s:
        before = row_counts(s)
    with db.session_scope(url) as s:
        try:
            run(cycle_view(s))
        except error as e:
            s.flush()
            assert row_counts(s) == before, "a refused import wrote rows"
            assert e.problems
            for p in e.problems:
                located(p, *names)
            s.rollback()
            refused = True
        else:
            refused = False
    if refused:
        with db.session_scope(url) as s:
            assert row_counts(s) == before
    return not refused


# --- feedback exports ---------------------------------------------------------------------

HEADER = [
    "Vastausaika",
    "Organisaatio",
    "Vastaajan tyyppi",
    "Kunta tai kuntaryhmä",
    "Painopiste",
    "Palvelualue",
    "Näkemys",
    "Sähköposti",
]
GOOD = {
    "Vastausaika": ["24.10.2025 9:12", "2025-12-19T23:59", "12/19/2025 11:59 PM", "31.2.2025 9"],
    "Organisaatio": ["Jämsän kaupunki", "Keuruun Seudun Omaishoitajat ry", ""],
    "Vastaajan tyyppi": ["Kunta", "järjestö", "Församling", "asukas", "kuningas"],
    "Kunta tai kuntaryhmä": ["Jämsä", "Keuruu", "koko alue", "Äänekoski", "Atlantis"],
    "Painopiste": ["Arjen turvallisuuden edistäminen", "arjen-turvallisuus", "Tuntematon"],
    "Palvelualue": ["Ikääntyneiden palvelut", "tyoikaiset", "x"],
    "Näkemys": ["Kaatumisten ehkäisy on tärkeää.", "Åsikt på svenska: bra.", "", " "],
    "Sähköposti": ["hyte@jamsa.example", "anonymous", "ei-osoite", ""],
}
NASTY_CELLS = ["=1+1", "+358 40", "-", "@SUM(A1)", "\tx", "x" * 6000, '"', ";", "\r\n", "\x00"]
cell_text = st.one_of(
    texts, st.sampled_from(NASTY_CELLS), st.sampled_from([v for vs in GOOD.values() for v in vs])
)


@st.composite
def table(draw: st.DrawFn) -> list[list[Any]]:
    """A header (mostly the real one, shuffled, with columns missing or extra) and rows of
    plausible and random cells."""
    header = draw(st.permutations(HEADER)) if draw(st.booleans()) else list(HEADER)
    if draw(st.booleans()):
        header = header[: draw(st.integers(0, len(header)))] + draw(st.lists(texts, max_size=2))
    rows: list[list[Any]] = [list(header)]
    for _ in range(draw(st.integers(0, 6))):
        row = [
            draw(st.sampled_from(GOOD[h]) | cell_text) if h in GOOD else draw(cell_text)
            for h in header
        ]
        rows.append(
            row[: draw(st.integers(0, len(row) + 1))] + draw(st.lists(cell_text, max_size=1))
        )
    return rows


@st.composite
def csv_export(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["table", "table", "table", "example", "random"]))
    if kind == "random":
        return draw(st.binary(max_size=400))
    if kind == "example":
        raw = (EXAMPLE / "feedback" / "webropol-vastaukset.csv").read_bytes()
        at = draw(st.integers(0, len(raw)))
        junk = draw(st.binary(min_size=1, max_size=6) | st.sampled_from([b";", b'"', b"\n", b"="]))
        return raw[:at] + junk + raw[at + draw(st.integers(0, 3)) :]
    rows = draw(table())
    buffer = io.StringIO()
    delimiter = draw(st.sampled_from([";", ",", "\t", "|"]))
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "utf-16", "latin-1"]))
    return buffer.getvalue().encode(encoding, errors="replace")


MAPPING = FeedbackImport()  # the example's (default) columns; no config read per example


@fuzz(300)
@given(data=csv_export())
def test_a_csv_export_imports_or_is_refused_with_row_and_column(
    url: str, folder: Path, data: bytes
) -> None:
    path = folder / "vastaukset.csv"
    path.write_bytes(data)
    all_or_nothing(
        url,
        lambda view: feedback_import.import_file(view, path, MAPPING),
        FeedbackImportError,
        path.name,
    )


xlsx_cell = st.one_of(
    cell_text.map(lambda t: ILLEGAL_CHARACTERS_RE.sub("", t)),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.floats(allow_nan=False, allow_infinity=False),
    st.datetimes(min_value=datetime(1900, 3, 1), max_value=datetime(9999, 12, 31)),
    st.dates(min_value=date(1900, 3, 1)),
    st.booleans(),
    st.none(),
)


@st.composite
def xlsx_export(draw: st.DrawFn) -> bytes | Workbook:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    rows = draw(table())
    book = Workbook()
    sheet = book.active
    for row in rows:
        cells = [draw(xlsx_cell) if draw(st.integers(0, 3)) == 0 else c for c in row]
        sheet.append([ILLEGAL_CHARACTERS_RE.sub("", c) if isinstance(c, str) else c for c in cells])
    if draw(st.booleans()):  # the answers on a second sheet, the first one empty
        book.create_sheet("Tyhjä", 0)
    return book


@fuzz(80)
@given(export=xlsx_export())
def test_an_xlsx_export_imports_or_is_refused_with_row_and_column(
    url: str, folder: Path, export: bytes | Workbook
) -> None:
    path = folder / "vastaukset.xlsx"
    if isinstance(export, bytes):
        path.write_bytes(export)
    else:
        export.save(path)
    all_or_nothing(
        url,
        lambda view: feedback_import.import_file(view, path, MAPPING),
        FeedbackImportError,
        path.name,
    )


# --- session notes ------------------------------------------------------------------------

SESSION = "2025-10-23-jamsa"
NOTES = (EXAMPLE / "notes" / f"{SESSION}.yaml").read_text(encoding="utf-8")


@fuzz(200)
@given(data=mutated_yaml(NOTES))
def test_notes_yaml_imports_or_is_refused_with_line_and_field(
    url: str, folder: Path, data: bytes
) -> None:
    path = folder / f"{SESSION}.yaml"
    path.write_bytes(data)
    all_or_nothing(url, lambda view: notes.import_notes_file(view, path), NotesError, path.name)


@pytest.fixture(scope="module")
def template(url: str, folder: Path) -> Path:
    path = folder / "template.xlsx"
    with db.session_scope(url) as s:
        notes.write_template(cycle_view(s), SESSION, path)
    return path


SHEETS = [
    notes.FINDINGS_SHEET,
    notes.GENERAL_SHEET,
    notes.ATTENDEES_SHEET,
    notes.REMARKS_SHEET,
    notes.MARKER_SHEET,
]


@st.composite
def workbook_edits(draw: st.DrawFn) -> list[tuple[str, int, int, Any]]:
    """(sheet, row, column, value) to write; value "<delete sheet>" removes the sheet."""
    edits = []
    for _ in range(draw(st.integers(1, 8))):
        sheet = draw(st.sampled_from(SHEETS))
        if draw(st.integers(0, 15)) == 0:
            edits.append((sheet, 0, 0, "<delete sheet>"))
            continue
        row = draw(st.integers(1, 40))
        column = draw(st.integers(1, 8))
        value = draw(xlsx_cell | st.sampled_from(["• yksi\n• kaksi", "arjen-turvallisuus"]))
        edits.append((sheet, row, column, value))
    return edits


@fuzz(80)
@given(edits=workbook_edits(), broken=st.integers(0, 14))
def test_a_notes_workbook_imports_or_is_refused_with_sheet_row_and_column(
    url: str, folder: Path, template: Path, edits: list[tuple[str, int, int, Any]], broken: int
) -> None:
    path = folder / f"{SESSION}.xlsx"
    if broken == 0:  # a workbook cut short, as an interrupted copy leaves it
        data = template.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        book = load_workbook(template)
        for sheet, row, column, value in edits:
            if sheet not in book.sheetnames:
                continue
            if value == "<delete sheet>":
                del book[sheet]
            else:
                book[sheet].cell(row, column).value = value
        book.save(path)
    all_or_nothing(url, lambda view: notes.import_notes_file(view, path), NotesError, path.name)


def test_the_fuzzed_database_is_still_consistent(url: str) -> None:
    """After everything above: the example's responses are still importable, once."""
    with db.session_scope(url) as s:
        view = cycle_view(s)
        result = feedback_import.import_file(view, EXAMPLE / "feedback" / "webropol-vastaukset.csv")
        assert result.rows > 0
        again = feedback_import.import_file(view, EXAMPLE / "feedback" / "webropol-vastaukset.csv")
        assert again.added == 0 and again.duplicates == result.rows
        assert s.scalar(select(func.count()).select_from(db.FeedbackResponse)) >= result.rows


# --- what the fuzzer found, kept as plain examples ------------------------------------------

FOUND = {
    # PyYAML's int() of a 5000-digit number: ValueError (Python's 4300-digit limit)
    "huge number": "9" * 5000,
    "huge hex number": "0x" + "f" * 5000,  # parsed, then unprintable in the error message
    "impossible date": "2025-02-30",  # ValueError from datetime.date
    "bad timestamp tag": "!!timestamp nonsense",  # AttributeError inside PyYAML
    "deep nesting": "[" * 3000 + "]" * 3000,  # RecursionError in PyYAML's composer
    "deep aliases": next(s for s in SNIPPETS if s.startswith("[&c0")),  # RecursionError
    "billion laughs": next(s for s in SNIPPETS if s.startswith("{l0")),  # never finished
    "list as a key": "\n  ? [complex, key]\n  : value",  # TypeError: unhashable type: 'list'
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("value", FOUND.values(), ids=FOUND.keys())
def test_what_the_fuzzer_found_is_a_located_config_error(folder: Path, value: str) -> None:
    config = folder / "found"
    config.mkdir(exist_ok=True)
    (config / "region.yaml").write_text(REGION, encoding="utf-8")
    (config / "cycle.yaml").write_text(CYCLE.replace("year: 2025", f"year: {value}"), "utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(config)
    (problem,) = info.value.problems
    located(problem, "cycle.yaml")
    assert problem.line is not None and problem.line >= 5, problem
