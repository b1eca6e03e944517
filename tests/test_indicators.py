"""Indicators beside the findings: Sotkanet's JSON and the HYTE coefficient read from a
cycle's indicators/ folder (errors with file, line and field; nothing written on a bad
file), the fetch from a Sotkanet-speaking HTTP server on loopback (a 5xx, then success),
the cycle.yaml mapping, and what the memo and the summary show (the chart in the PDF as
vector lines and text with its alt text; a missing value shown as missing)."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import openpyxl
import pytest
from conftest import EXAMPLE, edit, line_of, load_copy
from pypdf import PdfReader
from sqlalchemy import func, select
from typer.testing import CliRunner

from hytetu import db, indicators, memos, phases, sotkanet
from hytetu.charts import Line, line_chart
from hytetu.cli import app
from hytetu.config import load_config
from hytetu.errors import ConfigError, IndicatorError
from hytetu.indicator_report import _compare
from hytetu.state import cycle_view

FOLDER = "indicators"


def _config_copy(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLE, tmp_path / "config")
    return tmp_path / "config"


def _values(config: Path) -> dict[tuple[str, str, int], float]:
    data = indicators.read_folder(load_config(config))
    return {(v.indicator, v.area, v.year): v.value for v in data.values}


# --- Sotkanet's JSON -----------------------------------------------------------------


def test_example_files_give_values_per_municipality_county_and_country(tmp_path) -> None:
    values = _values(_config_copy(tmp_path))
    # Sotkanet region 237 is Jyväskylä (code 179) in the example's regions.json.
    assert values[("tyottomat", "jyvaskyla", 2024)] > 0
    assert ("tyottomat", "county", 2024) in values
    assert ("tyottomat", "country", 2024) in values
    # Luhanka is too small: THL publishes no hip fracture rate; the school health survey
    # has no even years. Missing is missing, not 0.
    assert not any(k[:2] == ("lonkkamurtumat", "luhanka") for k in values)
    assert not any(k[0] == "nuorten-yksinaisyys" and k[2] % 2 == 0 for k in values)
    assert 0.0 not in values.values()
    # The county's male and female rows are in the file, only "total" is taken.
    rows = json.loads((EXAMPLE / FOLDER / "sotkanet-181.json").read_text(encoding="utf-8"))
    county_2024 = [r for r in rows if r["region"] == 965 and r["year"] == 2024]
    assert {r["gender"] for r in county_2024} == {"total", "male", "female"}
    total = next(r["value"] for r in county_2024 if r["gender"] == "total")
    assert values[("tyottomat", "county", 2024)] == total


def test_a_row_with_null_value_is_missing(tmp_path) -> None:
    config = _config_copy(tmp_path)
    path = config / FOLDER / "sotkanet-181.json"
    rows = json.loads(path.read_text(encoding="utf-8"))
    jkl = next(r for r in rows if r["region"] == 237 and r["year"] == 2023)
    jkl["value"] = None
    path.write_text(json.dumps(rows), encoding="utf-8")
    assert ("tyottomat", "jyvaskyla", 2023) not in _values(config)


def _rewrite(path: Path, change) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    change(lines)
    path.write_text("\n".join(lines), encoding="utf-8")


def test_bad_rows_are_named_with_file_line_and_field(tmp_path) -> None:
    config = _config_copy(tmp_path)
    path = config / FOLDER / "sotkanet-3342.json"

    def spoil(lines: list[str]) -> None:
        lines[3] = lines[3].replace('"region": 2', '"region": 9')  # 9xx: no such region
        lines[5] = (
            lines[5].replace('"year": 20', '"year": "20').replace(', "gender"', '", "gender"')
        )
        lines[7] = '"a string, not a row",'

    _rewrite(path, spoil)
    with pytest.raises(IndicatorError) as e:
        indicators.read_folder(load_config(config))
    found = {(p.file, p.line, p.field) for p in e.value.problems}
    name = "config/indicators/sotkanet-3342.json"
    assert (name, 4, "row 3.region") in found
    assert (name, 6, "row 5.year") in found
    assert (name, 8, "row 7") in found
    messages = " ".join(p.message for p in e.value.problems)
    assert "unknown region 9" in messages and "regions.json" in messages
    assert "expected a whole number" in messages


def test_invalid_json_is_named_with_line_and_column(tmp_path) -> None:
    config = _config_copy(tmp_path)
    path = config / FOLDER / "sotkanet-181.json"
    _rewrite(path, lambda lines: lines.__setitem__(2, lines[2].rstrip(",") + " ,,"))
    with pytest.raises(IndicatorError) as e:
        indicators.read_folder(load_config(config))
    (problem,) = e.value.problems
    assert problem.file.endswith("sotkanet-181.json") and problem.line == 3
    assert "column" in problem.message and "invalid JSON" in problem.message


def test_a_row_of_another_indicator_is_refused(tmp_path) -> None:
    config = _config_copy(tmp_path)
    path = config / FOLDER / "sotkanet-181.json"
    _rewrite(
        path,
        lambda lines: lines.__setitem__(
            1, lines[1].replace('"indicator": 181', '"indicator": 3342')
        ),
    )
    with pytest.raises(IndicatorError) as e:
        indicators.read_folder(load_config(config))
    assert e.value.problems[0].line == 2
    assert "this file is indicator 181" in e.value.problems[0].message


def test_a_bad_file_leaves_the_database_as_it_was(tmp_path) -> None:
    url = load_copy(tmp_path)
    config = tmp_path / "config"
    with db.session_scope(url) as s:
        before = s.scalar(select(func.count()).select_from(db.IndicatorValue))
        title = s.scalars(select(db.Cycle)).one().title
    assert before > 400
    # A config change and a new value together with a bad row: none of it is written.
    edit(config, "cycle.yaml", "neuvottelut 2025", "neuvottelut 2025 (muutettu)")
    path = config / FOLDER / "sotkanet-181.json"
    rows = json.loads(path.read_text(encoding="utf-8"))
    rows.append({"indicator": 181, "region": 237, "year": 2025, "gender": "total", "value": 9.9})
    rows.append({"indicator": 181, "region": 237, "year": "2025", "gender": "total", "value": 1})
    path.write_text(json.dumps(rows), encoding="utf-8")
    with pytest.raises(IndicatorError):
        phases.load(config, url)
    with db.session_scope(url) as s:
        assert s.scalar(select(func.count()).select_from(db.IndicatorValue)) == before
        assert s.scalars(select(db.Cycle)).one().title == title
    # Fixed, the same load writes both.
    path.write_text(json.dumps(rows[:-1]), encoding="utf-8")
    phases.load(config, url)
    with db.session_scope(url) as s:
        assert s.scalar(select(func.count()).select_from(db.IndicatorValue)) == before + 1
    # Loaded again unchanged: nothing to do.
    assert phases.load(config, url).did.get("unchanged")


# --- the HYTE coefficient ------------------------------------------------------------


def _hyte(
    tmp_path: Path, name: str, data: bytes, codes: bool = False
) -> dict[tuple[str, int], float]:
    config = _config_copy(tmp_path)
    if codes:  # the municipality numbers (kuntanumero) in region.yaml
        edit(config, "region.yaml", "name: {fi: Jämsä}\n", 'name: {fi: Jämsä}\n    code: "182"\n')
        edit(
            config,
            "region.yaml",
            "name: {fi: Hankasalmi}\n",
            'name: {fi: Hankasalmi}\n    code: "077"\n',
        )
    (config / FOLDER / "hyte-kerroin.csv").unlink()
    (config / FOLDER / name).write_bytes(data)
    values = _values(config)
    return {(a, y): v for (i, a, y), v in values.items() if i == "hyte-kerroin"}


def test_hyte_coefficient_csv_in_windows_1252_with_decimal_comma(tmp_path) -> None:
    text = "Alue;Vuosi;HYTE-kerroin\r\nJämsä;2024;61,5\r\nÄänekoski;2024;44,0\r\n"
    text += "Keski-Suomen hyvinvointialue;2024;47,2\r\nKoko maa;2024;50\r\nKinnula;2024;–\r\n"
    text += "Kemi;2024;38,1\r\n"  # another county's: not ours, skipped
    values = _hyte(tmp_path, "hyte-kerroin.csv", text.encode("cp1252"))
    assert values == {
        ("jamsa", 2024): 61.5,
        ("aanekoski", 2024): 44.0,
        ("county", 2024): 47.2,
        ("country", 2024): 50.0,
    }


def test_hyte_coefficient_csv_utf8_with_bom_and_municipality_numbers(tmp_path) -> None:
    text = "kunta,vuosi,kerroin\n182,2023,58.25\n077,2023,49.0\n"
    values = _hyte(tmp_path, "hyte-kerroin.csv", b"\xef\xbb\xbf" + text.encode("utf-8"), codes=True)
    assert values == {("jamsa", 2023): 58.25, ("hankasalmi", 2023): 49.0}


def test_hyte_coefficient_xlsx(tmp_path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Alue", "Vuosi", "HYTE-kerroin"])
    sheet.append(["Jyväskylä", 2024, 55.5])
    sheet.append(["Petäjävesi", 2024, None])
    out = io.BytesIO()
    book.save(out)
    assert _hyte(tmp_path, "hyte-kerroin.xlsx", out.getvalue()) == {("jyvaskyla", 2024): 55.5}


def test_hyte_coefficient_bad_number_names_the_row_and_column(tmp_path) -> None:
    text = "Alue;Vuosi;HYTE-kerroin\nJämsä;2024;61,5\nKeuruu;2024;hyvä\n"
    with pytest.raises(IndicatorError) as e:
        _hyte(tmp_path, "hyte-kerroin.csv", text.encode("utf-8"))
    (problem,) = e.value.problems
    assert (problem.line, problem.field) == (3, "kerroin")
    assert "'hyvä'" in problem.message
    assert problem.file.endswith("indicators/hyte-kerroin.csv")


def test_hyte_coefficient_without_its_column_says_which(tmp_path) -> None:
    with pytest.raises(IndicatorError) as e:
        _hyte(tmp_path, "hyte-kerroin.csv", "Alue;Vuosi;Arvio\nJämsä;2024;6\n".encode())
    assert "no column 'kerroin'" in e.value.problems[0].message


# --- the mapping in cycle.yaml -------------------------------------------------------


def test_unknown_cell_and_unknown_indicator_are_named_with_file_and_line(tmp_path) -> None:
    config = _config_copy(tmp_path)
    edit(
        config,
        "cycle.yaml",
        "    arjen-turvallisuus/ikaantyneet: [lonkkamurtumat]",
        "    arjen-turvallisuus/ikaantyneet: [lonkkamurtumat, kaatumiset]\n"
        "    arjen-turvallisuus/nuoret: [tyottomat]",
    )
    line = line_of(config, "cycle.yaml", "arjen-turvallisuus/ikaantyneet: [lonkka")
    with pytest.raises(ConfigError) as e:
        load_config(config)
    found = {(p.line, p.field): p.message for p in e.value.problems}
    cycle = str(config / "cycle.yaml")
    assert all(p.file == cycle for p in e.value.problems)
    assert (
        "unknown indicator 'kaatumiset'"
        in found[(line, "indicators.goal_cells.arjen-turvallisuus/ikaantyneet[1]")]
    )
    assert (
        "unknown goal cell 'arjen-turvallisuus/nuoret'"
        in found[(line + 1, "indicators.goal_cells.arjen-turvallisuus/nuoret")]
    )


def test_a_sotkanet_indicator_needs_its_id_and_a_direction(tmp_path) -> None:
    config = _config_copy(tmp_path)
    edit(config, "cycle.yaml", "      sotkanet: 181\n", "")
    with pytest.raises(ConfigError) as e:
        load_config(config)
    assert any("needs its Sotkanet id" in p.message for p in e.value.problems)


# --- fetching from Sotkanet ----------------------------------------------------------


class _Sotkanet:
    """A Sotkanet-speaking server on loopback: /rest/1.1/regions and /rest/1.1/json with
    every region of Finland as the real API answers (here: the example's regions and a
    municipality of another county), failing the first ``failures`` requests with 503."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.requests: list[str] = []
        regions = json.loads((EXAMPLE / FOLDER / "regions.json").read_text(encoding="utf-8"))
        regions.append({"id": 900, "code": "240", "category": "KUNTA", "title": {"fi": "Kemi"}})
        self.regions = regions
        self.rows = {
            int(p.stem.split("-")[1]): json.loads(p.read_text(encoding="utf-8"))
            + [
                {
                    "indicator": int(p.stem.split("-")[1]),
                    "region": 900,
                    "year": 2023,
                    "gender": "total",
                    "value": 1.0,
                }
            ]
            for p in (EXAMPLE / FOLDER).glob("sotkanet-*.json")
        }
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(self.path)
                if server.failures > 0:
                    server.failures -= 1
                    self.send_error(503, "Service Unavailable")
                    return
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                if url.path == "/rest/1.1/regions":
                    body = server.regions
                elif url.path == "/rest/1.1/json":
                    years = {int(y) for y in query["years"]}
                    rows = server.rows.get(int(query["indicator"][0]), [])
                    body = [r for r in rows if r["year"] in years]
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body, ensure_ascii=False).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/rest/1.1"

    def __enter__(self) -> _Sotkanet:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *args: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def empty_folder(tmp_path: Path) -> Iterator[Path]:
    config = _config_copy(tmp_path)
    for path in (config / FOLDER).glob("*.json"):
        path.unlink()
    yield config


def test_fetch_retries_a_5xx_and_writes_what_the_loader_reads(empty_folder: Path) -> None:
    pauses: list[float] = []
    with _Sotkanet(failures=2) as server:
        written = sotkanet.fetch(
            load_config(empty_folder), range(2019, 2025), base_url=server.url, sleep=pauses.append
        )
    assert pauses == [2.0, 4.0]  # two 503s, then the answer
    assert server.requests[0] == server.requests[2] == "/rest/1.1/regions"
    years = "&".join(f"years={y}" for y in range(2019, 2025))
    wanted = f"/rest/1.1/json?indicator=3342&{years}&genders=total"
    assert wanted in server.requests
    assert {p.name for p in written} == {
        "regions.json",
        "sotkanet-3342.json",
        "sotkanet-181.json",
        "sotkanet-5273.json",
        "sotkanet-1275.json",
        "sotkanet-5361.json",
    }
    kept = json.loads((empty_folder / FOLDER / "regions.json").read_text(encoding="utf-8"))
    assert 900 not in {r["id"] for r in kept}  # another county's municipality is left out
    values = _values(empty_folder)
    assert values == {k: v for k, v in _values(EXAMPLE).items() if k[2] < 2025}


def test_fetch_that_keeps_failing_writes_nothing_and_says_where(empty_folder: Path) -> None:
    with _Sotkanet(failures=100) as server, pytest.raises(IndicatorError) as e:
        sotkanet.fetch(
            load_config(empty_folder),
            range(2023, 2025),
            base_url=server.url,
            retries=2,
            sleep=lambda _: None,
        )
    assert len(server.requests) == 3
    assert "HTTP 503 after 3 tries" in str(e.value) and server.url in str(e.value)
    assert not list((empty_folder / FOLDER).glob("*.json"))


def test_cli_fetch_uses_the_address_from_the_environment(empty_folder: Path, monkeypatch) -> None:
    monkeypatch.setattr(sotkanet.time, "sleep", lambda _: None)
    with _Sotkanet(failures=1) as server:
        monkeypatch.setenv(sotkanet.BASE_URL_VAR, server.url)
        result = CliRunner().invoke(
            app, ["indicators", "fetch", str(empty_folder), "--years", "2021-2024"]
        )
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "Lähde: THL, Sotkanet" in result.output
    assert all("years=2020" not in r for r in server.requests)
    result = CliRunner().invoke(
        app, ["indicators", "fetch", str(empty_folder), "--years", "2024-2019"]
    )
    assert result.exit_code == 2 and "--years" in result.output


# --- the documents -------------------------------------------------------------------


def test_comparison_wording_follows_the_direction() -> None:
    assert _compare(0.7, 0.9, "lower") == "better"
    assert _compare(0.7, 0.9, "higher") == "worse"
    assert _compare(10.0, 10.2, "lower") == "same"
    assert _compare(None, 0.9, "lower") is None


def test_chart_leaves_a_gap_for_a_missing_value_not_a_zero() -> None:
    svg = line_chart(
        (2019, 2020, 2021, 2022),
        (Line("Multia", (2.0, None, 3.0, 3.5)), Line("Koko maa", (2.5, 2.6, 2.4, 2.5), "country")),
        "%",
    )
    assert "<text" in svg and "Multia" in svg  # text stays text
    multia = re.search(r'<g id="line2d_\d+">\s*<path d="([^"]+)"[^>]*#0072b2', svg, re.I)
    assert multia is not None
    path = multia.group(1)
    # 2019 alone, then 2021–2022: two pieces, no point drawn for 2020.
    assert path.count("M") == 2 and path.count("L") == 1


def _version(view, key: str) -> db.MemoVersion:
    return next(v for v in memos.latest_versions(view) if v.memo.key == key)


def _struct_alts(reader: PdfReader) -> list[str]:
    alts = []

    def walk(node) -> None:
        node = node.get_object()
        if node.get("/S") == "/Figure" and "/Alt" in node:
            alts.append(str(node["/Alt"]))
        kids = node.get("/K")
        for kid in kids if isinstance(kids, list) else [kids] if kids is not None else []:
            kid = kid.get_object() if hasattr(kid, "get_object") else kid
            if isinstance(kid, dict):
                walk(kid)

    walk(reader.trailer["/Root"]["/StructTreeRoot"])
    return alts


def test_memo_pdf_has_the_charts_as_vector_and_text_with_their_alt_text(year) -> None:
    url, _ = year
    with db.session_scope(url) as s:
        view = cycle_view(s)
        version = _version(view, "memo-joutsa-luhanka-toivakka")
        reader = PdfReader(io.BytesIO(version.pdf))
        text = "\n".join(p.extract_text() for p in reader.pages)
        # The table beside the findings and the chart's own words (axis years, legend).
        assert "Lonkkamurtumat 65 vuotta täyttäneillä" in text
        assert "Vrt. hyvinvointialue" in text and "Lähde: THL, Sotkanet" in text
        chart_page = next(p for p in reader.pages if "Lähde: THL, Sotkanet" in p.extract_text())
        page_text = chart_page.extract_text()
        assert "Keski-Suomen hyvinvointialue" in page_text and "2019" in page_text
        # Vector drawing: the page's content (with its form XObjects) strokes paths.
        assert _strokes(chart_page) > 20
        # Text alternatives: each chart is a tagged Figure with every value in its /Alt.
        alts = _struct_alts(reader)
        hip = next(a for a in alts if "Lonkkamurtumat" in a)
        assert hip.startswith("Viivakuvio: Lonkkamurtumat 65 vuotta täyttäneillä")
        assert "Luhanka (ei tietoa): 2019 ei tietoa, 2020 ei tietoa" in hip
        # Missing is shown as missing in the table, never 0.
        html = version.html
        panel = html[html.index('<span class="ind-label">Lonkkamurtumat') :]
        row = re.search(r'<th scope="row">Luhanka</th><td class="num">(.*?)</td>', panel)
        assert row and "ei tietoa" in row.group(1)
        assert "Luhanka (ei tietoa): 2019 0" not in hip
        charts = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html)
        svg = base64.b64decode(charts[0]).decode()
        assert "<text" in svg


def _strokes(page) -> int:
    count = 0
    resources = page.get("/Resources") or {}
    contents = page.get_contents()
    stack = [contents.get_data() if contents is not None else b""]
    xobjects = resources.get("/XObject") or {}
    for ref in xobjects.values():
        obj = ref.get_object()
        if obj.get("/Subtype") == "/Form":
            stack.append(obj.get_data())
            inner = (obj.get("/Resources") or {}).get("/XObject") or {}
            stack += [
                r.get_object().get_data()
                for r in inner.values()
                if r.get_object().get("/Subtype") == "/Form"
            ]
    for data in stack:
        count += len(re.findall(rb"\sS\s", data)) + len(re.findall(rb"\sl\s", data))
    return count


def test_a_cell_without_indicators_shows_no_indicator_heading(year) -> None:
    url, _ = year
    with db.session_scope(url) as s:
        view = cycle_view(s)
        html = _version(view, "memo-jamsa-keuruu-multia-petajavesi").html
    for cell in re.findall(r'<div class="cell">.*?(?=<div class="cell">|<h3>|<h2>)', html, re.S):
        goal = re.search(r"<h4>(.*?)</h4>", cell).group(1)
        if goal == "Vammaispalvelut":  # no indicator is mapped to any disability cell
            assert "Indikaattorit" not in cell
    assert html.count("<h5>Indikaattorit</h5>") == len(
        re.findall(r'<section class="indicators"', html)
    )


def test_summary_has_an_indicator_table_per_priority_area(year) -> None:
    url, _ = year
    with db.session_scope(url) as s:
        view = cycle_view(s)
        version = _version(view, "summary")
    html = version.html
    for area in (
        "Arjen turvallisuuden edistäminen",
        "Mielen hyvinvoinnin edistäminen",
        "Liikunnallisen elämäntavan edistäminen",
    ):
        assert f"<h3>Indikaattorit: {area}</h3>" in html
    text = " ".join(
        " ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(version.pdf)).pages
    )
    assert "Indikaattorit: Arjen turvallisuuden edistäminen" in text
    assert "Hyvinvointialueen kehitys" in text and "Lähde: THL, HYTE-kerroin" in text
    # The school health survey's rows: the county's and the country's last values.
    table = html[html.index("<h3>Indikaattorit: Mielen hyvinvoinnin edistäminen") :]
    row = re.search(r"Yksinäisyyttä kokevat.*?</tr>", table, re.S).group(0)
    assert '<td class="num">2025</td>' in row


@pytest.mark.prefect
def test_fetch_flow_fetches_and_loads(
    prefect_api: None, empty_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.indicators import fetch_indicators

    url = f"sqlite:///{tmp_path / 'flow.db'}"
    monkeypatch.setenv("HYTETU_DATABASE_URL", url)
    monkeypatch.setattr(sotkanet.time, "sleep", lambda _: None)
    with _Sotkanet(failures=1) as server:
        monkeypatch.setenv(sotkanet.BASE_URL_VAR, server.url)
        report = fetch_indicators(config=str(empty_folder), years="2023-2024")
    assert report["did"]["changes"] > 0
    with db.session_scope(url) as s:
        years = set(s.scalars(select(db.IndicatorValue.year)))
    db.dispose(url)
    assert years == {2022, 2023, 2024}  # 2022: the HYTE coefficient's CSV, not fetched


def test_cli_import_names_a_bad_row_and_loads_a_good_folder(tmp_path, monkeypatch) -> None:
    config = _config_copy(tmp_path)
    monkeypatch.setenv("HYTETU_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    path = config / FOLDER / "sotkanet-5361.json"
    good = path.read_text(encoding="utf-8")
    _rewrite(
        path,
        lambda lines: lines.__setitem__(
            2, lines[2].replace('"value": ', '"value": "').replace("}", '"}')
        ),
    )
    result = CliRunner().invoke(app, ["indicators", "import", str(config)])
    assert result.exit_code == 2
    assert "sotkanet-5361.json:3: row 2.value: expected a number or null" in result.output
    path.write_text(good, encoding="utf-8")
    result = CliRunner().invoke(app, ["indicators", "import", str(config)])
    assert result.exit_code == 0, result.output
    assert "540 indicator value(s) in 7 file(s)" in result.output
    assert "loaded" in result.output
    db.dispose(f"sqlite:///{tmp_path / 'cli.db'}")


def test_validate_checks_the_indicator_files_too(tmp_path) -> None:
    config = _config_copy(tmp_path)
    result = CliRunner().invoke(app, ["validate", str(config)])
    assert result.exit_code == 0 and "indicators      6, 540 values in 7 files" in result.output
    (config / FOLDER / "regions.json").write_text('[{"id": "KUNTA"}]', encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(config)])
    assert result.exit_code == 2
    assert "regions.json:1: region 1.id: expected a whole number" in result.output
    assert ": valid" not in result.output
