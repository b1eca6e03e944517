"""`hytetu validate PATH`, in-process through typer's CliRunner: exit codes and output."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import Result
from conftest import edit, line_of
from typer.testing import CliRunner

from hytetu.cli import app

REGION = "region.yaml"
CYCLE = "cycle.yaml"


def validate(path: Path | str) -> Result:
    result = CliRunner().invoke(app, ["validate", str(path)])
    # An exception other than typer.Exit means the CLI crashed (CliRunner hides tracebacks).
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    return result


def problem_lines(output: str) -> list[str]:
    return [x.strip() for x in output.splitlines() if x.startswith("  ")]


# --- the example ------------------------------------------------------------------------


def test_validate_example_summary(example: Path) -> None:
    result = validate(example)
    assert result.exit_code == 0, result.output
    out = result.output
    lines = out.splitlines()
    assert len(lines) <= 20, "the summary fits on one screen"
    assert lines[0] == f"{example}: valid"
    assert re.search(r"^  region\s+keski-suomi \(fi\)$", out, re.M)
    assert re.search(r"^  cycle\s+2025, plan period 2026–2029$", out, re.M)
    assert re.search(r"^  municipalities\s+22$", out, re.M)
    assert re.search(r"^  groups\s+6$", out, re.M)
    assert re.search(r"^  stakeholders\s+19$", out, re.M)
    assert re.search(r"^  contacts\s+45$", out, re.M)
    assert re.search(r"^  sessions\s+7$", out, re.M)
    assert re.search(r"^  goal matrix\s+3 × 5 = 15 cells$", out, re.M)
    assert re.search(r"^  feedback\s+2025-10-23 – 2025-12-19$", out, re.M)
    warnings = [x for x in lines if "warning:" in x]
    line = line_of(example, REGION, "  - id: aanekoski")
    assert warnings == [
        f"  warning: {example / REGION}:{line}: municipalities[21]: "
        "Äänekoski is in no session this cycle"
    ]


def test_validate_the_shipped_example_by_relative_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    result = validate("config/examples/keski-suomi-2025")
    assert result.exit_code == 0, result.output
    assert "municipalities  22" in result.output
    assert "groups          6" in result.output
    assert "sessions        7" in result.output
    assert "= 15 cells" in result.output
    assert result.output.count("warning:") == 1
    assert (
        "warning: config/examples/keski-suomi-2025/region.yaml:136: municipalities[21]: "
        "Äänekoski is in no session this cycle" in result.output
    )


def test_validate_a_file_in_the_folder(example: Path) -> None:
    result = validate(example / REGION)
    assert result.exit_code == 0, result.output


# --- invalid configs: exit 2, every problem as file:line: field: message -----------------

# (file, old, new, field, message); the expected line is where ``old`` began.
CASES = {
    "yaml-syntax": (
        REGION,
        "  - id: keuruu\n",
        "  - id: keuruu: oops\n",
        None,
        "YAML syntax: mapping values are not allowed here",
    ),
    "unknown-municipality": (
        REGION,
        "    municipalities: [jamsa, keuruu, multia, petajavesi]",
        "    municipalities: [jamsa, keuruu, multia, petajavsi]",
        "groups[0].municipalities[3]",
        "unknown municipality 'petajavsi'",
    ),
    "unknown-group": (
        CYCLE,
        "    group: joutsa-luhanka-toivakka\n",
        "    group: joutsa-luhanka\n",
        "sessions[1].group",
        "unknown group 'joutsa-luhanka'",
    ),
    "duplicate-municipality": (
        REGION,
        "  - id: keuruu\n",
        "  - id: jamsa\n",
        "municipalities[1].id",
        "duplicate id 'jamsa' in municipalities",
    ),
    "duplicate-session": (
        CYCLE,
        "  - id: 2025-10-30-joutsa\n",
        "  - id: 2025-10-23-jamsa\n",
        "sessions[1].id",
        "duplicate id '2025-10-23-jamsa' in sessions",
    ),
    "bad-registry-email": (
        REGION,
        "    registry: kirjaamo@keuruu.example\n",
        "    registry: kirjaamo.keuruu.example\n",
        "municipalities[1].registry",
        "value is not a valid email address: An email address must have an @-sign.",
    ),
    "bad-contact-email": (
        REGION,
        "email: sari.hamalainen@keuruu.example,",
        "email: sari.hamalainen(at)keuruu.example,",
        "municipalities[1].contacts[0].email",
        "value is not a valid email address",
    ),
    "ends-before-start": (
        CYCLE,
        "    end: 2025-10-30T11:30:00+02:00",
        "    end: 2025-10-30T08:30:00+02:00",
        "sessions[1].end",
        "the session ends before it starts",
    ),
    "outside-cycle-year": (
        CYCLE,
        "    start: 2025-11-06T09:00:00+02:00\n    end: 2025-11-06T11:30:00+02:00\n",
        "    start: 2024-11-06T09:00:00+02:00\n    end: 2024-11-06T11:30:00+02:00\n",
        "sessions[2].start",
        "the session is outside the cycle year 2025",
    ),
    "deadline-before-first-session": (
        CYCLE,
        "  opens: 2025-10-23\n  deadline: 2025-12-19\n",
        "  opens: 2025-10-01\n  deadline: 2025-10-15\n",
        "feedback.deadline",
        "the deadline 2025-10-15 is before the first session (2025-10-23)",
    ),
    "time-that-does-not-exist": (
        CYCLE,
        "    start: 2025-10-30T09:00:00+02:00",
        "    start: 2025-03-30T03:30:00",
        "sessions[1].start",
        "2025-03-30T03:30 does not exist in Europe/Helsinki: the clocks go forward",
    ),
    "unknown-field": (
        REGION,
        "    registry: kirjaamo@keuruu.example\n",
        "    registry: kirjaamo@keuruu.example\n    regsitry: kirjaamo@keuruu.example\n",
        "municipalities[1].regsitry",
        "unknown field (check the spelling; see docs/config-format.md)",
    ),
    "contact-language": (
        REGION,
        "email: sari.hamalainen@keuruu.example, role: hyte_coordinator, language: fi}",
        "email: sari.hamalainen@keuruu.example, role: hyte_coordinator, language: sv}",
        "municipalities[1].contacts[0].language",
        "language 'sv' is not one of ['fi']",
    ),
}
# Cases whose problem is reported on the line after the edited one's first line.
LINE_SHIFT = {"deadline-before-first-session": 1, "unknown-field": 1}


@pytest.mark.parametrize("case", list(CASES))
def test_validate_invalid_config_exits_2_and_locates_the_problem(example: Path, case: str) -> None:
    file, old, new, field, message = CASES[case]
    line = edit(example, file, old, new) + LINE_SHIFT.get(case, 0)
    result = validate(example)
    assert result.exit_code == 2, result.output
    where = f"{example / file}:{line}:"
    expected = f"{where} {field}: {message}" if field else f"{where} {message}"
    problems = problem_lines(result.output)
    assert any(p.startswith(expected) for p in problems), result.output
    assert result.output.splitlines()[0] == f"{example}: {len(problems)} problem(s)"


def test_validate_goal_matrix_missing_cell(example: Path) -> None:
    text = (example / CYCLE).read_text(encoding="utf-8")
    start = text.index("    - priority_area: arjen-turvallisuus\n      service_area: tyoikaiset\n")
    end = text.index("    - priority_area: arjen-turvallisuus\n      service_area: ikaantyneet\n")
    (example / CYCLE).write_text(text[:start] + text[end:], encoding="utf-8")
    result = validate(example)
    assert result.exit_code == 2, result.output
    line = line_of(example, CYCLE, "  cells:")
    assert problem_lines(result.output) == [
        f"{example / CYCLE}:{line}: goal_matrix.cells: missing cell arjen-turvallisuus × "
        "tyoikaiset: every priority area needs a goal for every service area"
    ]


def test_validate_missing_required_field(example: Path) -> None:
    edit(example, REGION, "    registry: kirjaamo@keuruu.example\n", "")
    result = validate(example)
    assert result.exit_code == 2, result.output
    line = line_of(example, REGION, "  - id: keuruu\n")
    assert problem_lines(result.output) == [
        f"{example / REGION}:{line}: municipalities[1].registry: required field is missing"
    ]


def test_validate_missing_region_file(example: Path) -> None:
    (example / REGION).unlink()
    result = validate(example)
    assert result.exit_code == 2, result.output
    assert problem_lines(result.output) == [f"{example / REGION}: file not found"]


def test_validate_missing_folder(tmp_path: Path) -> None:
    result = validate(tmp_path / "nowhere")
    assert result.exit_code == 2, result.output
    assert problem_lines(result.output) == [
        f"{tmp_path / 'nowhere' / REGION}: file not found",
        f"{tmp_path / 'nowhere' / CYCLE}: file not found",
    ]


def test_validate_lists_all_problems_not_just_the_first(example: Path) -> None:
    email = edit(
        example,
        REGION,
        "    registry: kirjaamo@keuruu.example\n",
        "    registry: kirjaamo.keuruu.example\n",
    )
    typo = edit(example, REGION, "  timezone: Europe/Helsinki\n", "  tiemzone: Europe/Helsinki\n")
    naive = edit(example, CYCLE, "    start: 2025-10-30T09:00:00+02:00", "    start: next thursday")
    year = edit(example, CYCLE, "  year: 2025\n", "  year: 20255\n")
    result = validate(example)
    assert result.exit_code == 2, result.output
    problems = problem_lines(result.output)
    assert result.output.splitlines()[0] == f"{example}: 4 problem(s)"
    assert len(problems) == 4
    r, c = example / REGION, example / CYCLE
    assert f"{r}:{email}: municipalities[1].registry: value is not a valid email" in "\n".join(
        problems
    )
    assert f"{r}:{typo}: region.tiemzone: unknown field" in "\n".join(problems)
    assert f"{c}:{naive}: sessions[1].start: Input should be a valid datetime" in "\n".join(
        problems
    )
    assert f"{c}:{year}: cycle.year: Input should be less than or equal to 2100" in "\n".join(
        problems
    )


def test_validate_lists_all_cross_check_problems(example: Path) -> None:
    group = edit(
        example, CYCLE, "    group: joutsa-luhanka-toivakka\n", "    group: joutsa-luhanka\n"
    )
    end = edit(
        example, CYCLE, "    end: 2025-11-13T11:30:00+02:00", "    end: 2025-11-13T08:00:00+02:00"
    )
    old = "email: leena.hyvonen@kyyjarvi.example, role: hyte_coordinator, language: fi}"
    lang = edit(example, REGION, old, old.replace("language: fi", "language: en"))
    result = validate(example)
    assert result.exit_code == 2, result.output
    r, c = example / REGION, example / CYCLE
    assert sorted(problem_lines(result.output)) == sorted(
        [
            f"{c}:{group}: sessions[1].group: unknown group 'joutsa-luhanka'",
            f"{c}:{end}: sessions[3].end: the session ends before it starts",
            f"{r}:{lang}: municipalities[10].contacts[0].language: "
            "language 'en' is not one of ['fi']",
        ]
    )


def test_validate_never_shows_a_traceback_on_odd_input(example: Path) -> None:
    (example / REGION).write_bytes(b"region: \xff\xfe\n")
    (example / CYCLE).unlink()
    (example / CYCLE).mkdir()
    result = validate(example)
    assert result.exit_code == 2, result.output
    assert problem_lines(result.output) == [
        f"{example / REGION}:1: not UTF-8 text (byte 8); save the file as UTF-8",
        f"{example / CYCLE}: cannot read the file: Is a directory",
    ]


# --- warnings: exit 0, listed -----------------------------------------------------------


def warnings(output: str) -> list[str]:
    return [x.removeprefix("  warning: ") for x in output.splitlines() if "warning:" in x]


def test_validate_warns_about_session_without_contacts(example: Path) -> None:
    edit(example, CYCLE, "    invite: [company, county_unit]\n", "    invite: [public_body]\n")
    result = validate(example)
    assert result.exit_code == 0, result.output
    line = line_of(example, CYCLE, "  - id: 2025-12-03-palveluntuottajafoorumi")
    assert (
        f"{example / CYCLE}:{line}: sessions[6]: "
        "session 2025-12-03-palveluntuottajafoorumi has no contacts to invite"
    ) in warnings(result.output)


def test_validate_warns_about_contact_without_language(example: Path) -> None:
    old = "email: sari.hamalainen@keuruu.example, role: hyte_coordinator, language: fi}"
    line = edit(example, REGION, old, old.replace(", language: fi", ""))
    result = validate(example)
    assert result.exit_code == 0, result.output
    assert (
        f"{example / REGION}:{line}: municipalities[1].contacts[0]: "
        "contact Sari Hämäläinen has no language; fi is assumed"
    ) in warnings(result.output)


def test_validate_warns_about_offset_not_matching_helsinki(example: Path) -> None:
    line = edit(
        example,
        CYCLE,
        "    start: 2025-11-06T09:00:00+02:00",
        "    start: 2025-11-06T09:00:00+03:00",
    )
    result = validate(example)
    assert result.exit_code == 0, result.output
    assert (
        f"{example / CYCLE}:{line}: sessions[2].start: offset +03:00 is not Europe/Helsinki's "
        "offset on that day (+02:00); the time is off by an hour"
    ) in warnings(result.output)


def test_validate_lists_every_warning(example: Path) -> None:
    edit(
        example,
        REGION,
        "    municipalities: [jyvaskyla, muurame]\n",
        "    municipalities: [jyvaskyla]\n",
    )
    edit(example, CYCLE, "    invite: [company, county_unit]\n", "    invite: [public_body]\n")
    result = validate(example)
    assert result.exit_code == 0, result.output
    found = warnings(result.output)
    assert len(found) == 3, result.output
    assert any("Muurame is in no session this cycle" in w for w in found)
    assert any("Äänekoski is in no session this cycle" in w for w in found)
    assert any("has no contacts to invite" in w for w in found)


# --- a second region: nothing about Central Finland is hard-coded -------------------------

SECOND_REGION = """\
region:
  id: pohjanmaa
  name: {fi: Pohjanmaan hyvinvointialue, sv: Österbottens välfärdsområde}
  languages: [fi, sv]
  sender: {name: Hyvinvointi, email: hyte@pohjanmaa.example}
municipalities:
  - {id: vaasa, name: {fi: Vaasa, sv: Vasa}, registry: kirjaamo@vaasa.example,
     contacts: [{name: Anna Backman, email: anna@vaasa.example, language: fi}]}
  - {id: mustasaari, name: {fi: Mustasaari, sv: Korsholm}, registry: reg@korsholm.example,
     contacts: [{name: Erik Sjöberg, email: erik@korsholm.example, language: sv}]}
  - {id: laihia, name: {fi: Laihia, sv: Laihela}, registry: kirjaamo@laihia.example}
  - {id: narpio, name: {fi: Närpiö, sv: Närpes}, registry: registratur@narpes.example,
     contacts: [{name: Ulla Holm, email: ulla@narpes.example, language: sv}]}
groups:
  - {id: kust, name: {fi: Rannikko, sv: Kusten},
     municipalities: [vaasa, mustasaari, laihia, narpio]}
"""


def second_cycle() -> str:
    services = ["lapset", "tyoikaiset", "ikaantyneet", "terveys"]
    areas = ["turvallisuus", "mieli"]
    cells = "\n".join(
        f"    - {{priority_area: {p}, service_area: {s}, goal: {{fi: T {p} {s}, sv: M {p} {s}}}}}"
        for p in areas
        for s in services
    )
    return (
        "cycle: {year: 2026, title: {fi: Neuvottelut 2026, sv: Förhandlingar 2026}}\n"
        "feedback: {opens: 2026-03-10, deadline: 2026-05-15}\n"
        "goal_matrix:\n"
        "  priority_areas:\n"
        + "".join(f"    - {{id: {p}, name: {{fi: {p}, sv: {p}}}}}\n" for p in areas)
        + "  service_areas:\n"
        + "".join(f"    - {{id: {s}, name: {{fi: {s}, sv: {s}}}}}\n" for s in services)
        + "  cells:\n"
        + cells
        + "\nsessions:\n"
        "  - {id: 2026-03-10-kust, group: kust, start: 2026-03-10T09:00:00+02:00,"
        " end: 2026-03-10T11:00:00+02:00}\n"
    )


def test_validate_second_region_with_two_languages(tmp_path: Path) -> None:
    folder = tmp_path / "pohjanmaa"
    folder.mkdir()
    (folder / REGION).write_text(SECOND_REGION, encoding="utf-8")
    (folder / CYCLE).write_text(second_cycle(), encoding="utf-8")
    result = validate(folder)
    assert result.exit_code == 0, result.output
    out = result.output
    assert re.search(r"^  region\s+pohjanmaa \(fi, sv\)$", out, re.M)
    assert re.search(r"^  municipalities\s+4$", out, re.M)
    assert re.search(r"^  groups\s+1$", out, re.M)
    assert re.search(r"^  contacts\s+3$", out, re.M)
    assert re.search(r"^  sessions\s+1$", out, re.M)
    assert re.search(r"^  goal matrix\s+2 × 4 = 8 cells$", out, re.M)
    assert "warning:" not in out
