"""hytetu.config.load_config: the example config, every kind of problem, located by line.

Invalid configs are made by copying the example (fixture ``example``) and editing its YAML
text, so line numbers can be computed from the text that was changed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from conftest import edit, line_of

from hytetu.config import Config, load_config, localized
from hytetu.errors import ConfigError, Problem

REGION = "region.yaml"
CYCLE = "cycle.yaml"


# --- helpers ---------------------------------------------------------------------------


def problems_of(folder: Path) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load_config(folder)
    assert info.value.problems, "a ConfigError must list its problems"
    return info.value.problems


def find(problems: list[Problem], file: str, line: int | None, field: str, message: str) -> Problem:
    """The problem at ``file:line`` on ``field`` whose message contains ``message``."""
    for p in problems:
        if (
            Path(p.file).name == file
            and p.line == line
            and p.field == field
            and message in p.message
        ):
            return p
    listed = "\n".join(str(p) for p in problems)
    raise AssertionError(f"no {file}:{line}: {field}: ...{message}... in\n{listed}")


def only(problems: list[Problem], file: str, line: int | None, field: str, message: str) -> None:
    assert len(problems) == 1, "\n".join(str(p) for p in problems)
    find(problems, file, line, field, message)


# --- the example ------------------------------------------------------------------------


def test_example_is_valid(example: Path) -> None:
    config = load_config(example)
    rf, cf = config.region_file, config.cycle_file
    assert config.region.id == "keski-suomi"
    assert config.language == "fi"
    assert len(rf.municipalities) == 22
    assert len(rf.groups) == 6
    assert len(cf.sessions) == 7
    assert len(cf.goal_matrix.priority_areas) == 3
    assert len(cf.goal_matrix.service_areas) == 5
    assert len(cf.goal_matrix.cells) == 15
    assert sum(len(x.contacts) for x in [*rf.municipalities, *rf.stakeholders]) == 45


def test_example_warns_only_that_aanekoski_is_in_no_session(example: Path) -> None:
    config = load_config(example)
    assert len(config.warnings) == 1
    w = config.warnings[0]
    assert w.severity == "warning"
    assert Path(w.file).name == REGION
    assert w.line == line_of(example, REGION, "  - id: aanekoski")
    assert w.field == "municipalities[21]"
    assert w.message == "Äänekoski is in no session this cycle"
    assert str(w) == f"{example / REGION}:{w.line}: municipalities[21]: {w.message}"


def test_load_config_takes_a_string_or_a_file_in_the_folder(example: Path) -> None:
    assert load_config(str(example)).region.id == "keski-suomi"
    assert load_config(example / CYCLE).folder == example


def test_problems_name_the_file_as_given(example: Path) -> None:
    edit(example, REGION, "  - id: keuruu\n", "  - id: jamsa\n")
    problems = problems_of(example)
    assert {p.file for p in problems} == {str(example / REGION)}
    text = str(ConfigError("x", problems=problems))
    assert f"{example / REGION}:" in text


# --- errors: YAML itself ----------------------------------------------------------------


def test_yaml_syntax_error_has_its_line(example: Path) -> None:
    line = edit(example, REGION, "  - id: keuruu\n", "  - id: keuruu: oops\n")
    problems = problems_of(example)
    only(problems, REGION, line, "", "YAML syntax: mapping values are not allowed here")
    assert str(problems[0]).endswith(
        f"{REGION}:{line}: YAML syntax: mapping values are not allowed here"
    )


def test_yaml_unclosed_flow_mapping_names_where_it_started(example: Path) -> None:
    line = edit(example, REGION, "    name: {fi: Keuruu}\n", "    name: {fi: Keuruu\n")
    # PyYAML only notices on the next line; the message points back at the opening line.
    only(
        problems_of(example),
        REGION,
        line + 1,
        "",
        f"while parsing a flow mapping started on line {line}",
    )


def test_yaml_duplicate_key_is_an_error(example: Path) -> None:
    line = edit(example, CYCLE, "  year: 2025\n", "  year: 2025\n  year: 2026\n")
    only(problems_of(example), CYCLE, line + 1, "", "YAML syntax: duplicate key 'year'")


def test_yaml_control_character_has_its_line(example: Path) -> None:
    line = edit(example, CYCLE, "  plan_period:", "  plan_period:\x00")
    only(problems_of(example), CYCLE, line, "", "character #x0000 is not allowed")


def test_empty_file_must_be_a_mapping(example: Path) -> None:
    (example / CYCLE).write_text("# nothing yet\n", encoding="utf-8")
    only(problems_of(example), CYCLE, 1, "", "the file must be a YAML mapping")


def test_yaml_merge_keys_and_anchors_are_allowed(example: Path) -> None:
    edit(
        example,
        CYCLE,
        "  - id: 2025-10-30-joutsa\n    group: joutsa-luhanka-toivakka\n    kind: group_session\n",
        "  - id: 2025-10-30-joutsa\n"
        "    <<: &usual {kind: group_session}\n"
        "    group: joutsa-luhanka-toivakka\n",
    )
    assert load_config(example).cycle_file.sessions[1].kind == "group_session"


def test_recursive_alias_is_a_problem_not_a_crash(example: Path) -> None:
    line = edit(example, CYCLE, '  plan_period: "2026–2029"\n', "  plan_period: &p [*p]\n")
    find(problems_of(example), CYCLE, line, "cycle.plan_period", "valid string")


# --- errors: files and folders ----------------------------------------------------------


def test_missing_region_file(example: Path) -> None:
    (example / REGION).unlink()
    problems = problems_of(example)
    only(problems, REGION, None, "", "file not found")
    assert str(problems[0]) == f"{example / REGION}: file not found"


def test_missing_folder_lists_both_files(tmp_path: Path) -> None:
    problems = problems_of(tmp_path / "nowhere")
    assert [(Path(p.file).name, p.message) for p in problems] == [
        (REGION, "file not found"),
        (CYCLE, "file not found"),
    ]


def test_unreadable_region_file_is_a_problem(example: Path) -> None:
    (example / REGION).unlink()
    (example / REGION).mkdir()  # a folder where the file should be
    only(problems_of(example), REGION, None, "", "cannot read the file")


def test_missing_region_file_still_checks_the_cycle(example: Path) -> None:
    (example / REGION).unlink()
    line = edit(example, CYCLE, "  year: 2025\n", "  year: 1999\n")
    problems = problems_of(example)
    assert len(problems) == 2
    find(problems, REGION, None, "", "file not found")
    find(problems, CYCLE, line, "cycle.year", "greater than or equal to 2020 (got 1999)")


# --- errors: references and ids ---------------------------------------------------------


def test_group_naming_an_unknown_municipality(example: Path) -> None:
    line = edit(
        example,
        REGION,
        "    municipalities: [jamsa, keuruu, multia, petajavesi]",
        "    municipalities: [jamsa, keuruu, multia, petajavsi]",
    )
    only(
        problems_of(example),
        REGION,
        line,
        "groups[0].municipalities[3]",
        "unknown municipality 'petajavsi'",
    )


def test_stakeholder_naming_an_unknown_municipality(example: Path) -> None:
    line = edit(example, REGION, "    municipalities: [laukaa]\n", "    municipalities: [lauka]\n")
    only(
        problems_of(example),
        REGION,
        line,
        "stakeholders[4].municipalities[0]",
        "unknown municipality 'lauka'",
    )


def test_session_naming_an_unknown_group(example: Path) -> None:
    line = edit(
        example, CYCLE, "    group: joutsa-luhanka-toivakka\n", "    group: joutsa-luhanka\n"
    )
    only(problems_of(example), CYCLE, line, "sessions[1].group", "unknown group 'joutsa-luhanka'")


def test_group_session_without_a_group(example: Path) -> None:
    edit(example, CYCLE, "    group: joutsa-luhanka-toivakka\n", "")
    line = line_of(example, CYCLE, "  - id: 2025-10-30-joutsa")
    only(problems_of(example), CYCLE, line, "sessions[1]", "a group session needs a group")


@pytest.mark.parametrize(
    ("file", "first", "old", "new", "field", "message"),
    [
        (
            REGION,
            "  - id: jamsa\n",
            "  - id: keuruu\n",
            "  - id: jamsa\n",
            "municipalities[{i}].id",
            "duplicate id 'jamsa' in municipalities",
        ),
        (
            CYCLE,
            "  - id: 2025-10-23-jamsa\n",
            "  - id: 2025-10-30-joutsa\n",
            "  - id: 2025-10-23-jamsa\n",
            "sessions[{i}].id",
            "duplicate id '2025-10-23-jamsa' in sessions",
        ),
    ],
    ids=["municipality", "session"],
)
def test_duplicate_ids_are_listed_at_both_places(
    example: Path, file: str, first: str, old: str, new: str, field: str, message: str
) -> None:
    first_line = line_of(example, file, first)
    second_line = edit(example, file, old, new)
    problems = problems_of(example)
    find(problems, file, first_line, field.format(i=0), message)
    find(problems, file, second_line, field.format(i=1), message)


# --- errors: values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        (
            "    registry: kirjaamo@keuruu.example\n",
            "    registry: kirjaamo.keuruu.example\n",
            "municipalities[1].registry",
            "value is not a valid email address: An email address must have an @-sign. "
            "(got 'kirjaamo.keuruu.example')",
        ),
        (
            "email: sari.hamalainen@keuruu.example,",
            "email: sari.hamalainen@@keuruu.example,",
            "municipalities[1].contacts[0].email",
            "value is not a valid email address",
        ),
    ],
    ids=["registry", "contact"],
)
def test_malformed_email(example: Path, old: str, new: str, field: str, message: str) -> None:
    line = edit(example, REGION, old, new)
    only(problems_of(example), REGION, line, field, message)


def test_session_ending_before_it_starts(example: Path) -> None:
    line = edit(
        example, CYCLE, "    end: 2025-10-30T11:30:00+02:00", "    end: 2025-10-30T08:30:00+02:00"
    )
    only(problems_of(example), CYCLE, line, "sessions[1].end", "the session ends before it starts")


def test_session_outside_the_cycle_year(example: Path) -> None:
    line = edit(
        example,
        CYCLE,
        "    start: 2025-11-06T09:00:00+02:00\n    end: 2025-11-06T11:30:00+02:00\n",
        "    start: 2026-11-06T09:00:00+02:00\n    end: 2026-11-06T11:30:00+02:00\n",
    )
    only(
        problems_of(example),
        CYCLE,
        line,
        "sessions[2].start",
        "the session is outside the cycle year 2025",
    )


def test_session_at_the_end_of_time_is_a_problem_not_a_crash(example: Path) -> None:
    line = edit(
        example,
        CYCLE,
        "    start: 2025-11-06T09:00:00+02:00\n    end: 2025-11-06T11:30:00+02:00\n",
        "    start: 9999-12-31T23:00:00-03:00\n    end: 9999-12-31T23:30:00-03:00\n",
    )
    only(
        problems_of(example),
        CYCLE,
        line,
        "sessions[2].start",
        "the session is outside the cycle year 2025",
    )


def test_feedback_deadline_before_the_first_session(example: Path) -> None:
    edit(example, CYCLE, "  opens: 2025-10-23\n", "  opens: 2025-10-01\n")
    line = edit(example, CYCLE, "  deadline: 2025-12-19\n", "  deadline: 2025-10-15\n")
    only(
        problems_of(example),
        CYCLE,
        line,
        "feedback.deadline",
        "the deadline 2025-10-15 is before the first session (2025-10-23)",
    )


def test_feedback_deadline_before_the_opening(example: Path) -> None:
    line = edit(example, CYCLE, "  deadline: 2025-12-19\n", "  deadline: 2025-10-22\n")
    problems = problems_of(example)
    find(problems, CYCLE, line, "feedback.deadline", "the deadline is before the opening")


def test_goal_matrix_with_a_missing_cell(example: Path) -> None:
    edit(
        example,
        CYCLE,
        "    - priority_area: arjen-turvallisuus\n"
        "      service_area: tyoikaiset\n"
        '      goal: {fi: "Työikäisten tukitoimet ja palvelujen välinen yhteistyö vahvistuvat '
        'työllistymisen edellytysten parantamiseksi"}\n',
        "",
    )
    text = (example / CYCLE).read_text(encoding="utf-8")
    # Drop the orphaned background line too, so only the cell is missing.
    background = next(x for x in text.splitlines() if "Haasteet työllistymisessä" in x)
    edit(example, CYCLE, background + "\n", "")
    only(
        problems_of(example),
        CYCLE,
        line_of(example, CYCLE, "  cells:"),
        "goal_matrix.cells",
        "missing cell arjen-turvallisuus × tyoikaiset: every priority area needs a goal for "
        "every service area",
    )


def test_goal_matrix_cell_with_an_unknown_area(example: Path) -> None:
    line = edit(
        example,
        CYCLE,
        "    - priority_area: arjen-turvallisuus\n      service_area: tyoikaiset\n",
        "    - priority_area: arjen-turvallisuus\n      service_area: tyoikaiset2\n",
    )
    problems = problems_of(example)
    find(
        problems,
        CYCLE,
        line + 1,
        "goal_matrix.cells[1].service_area",
        "unknown service area 'tyoikaiset2'",
    )
    find(problems, CYCLE, line_of(example, CYCLE, "  cells:"), "goal_matrix.cells", "missing")


def test_session_time_without_offset_is_local_time_in_the_regions_zone(example: Path) -> None:
    edit(example, CYCLE, "    start: 2025-10-23T09:00:00+03:00", "    start: 2025-10-23T09:00:00")
    edit(example, CYCLE, "    start: 2025-10-30T09:00:00+02:00", "    start: 2025-10-30T09:00")
    config = load_config(example)
    first, second = config.cycle_file.sessions[:2]
    # Summer time on 23 October, winter time a week later: the offsets differ.
    assert first.start == datetime(2025, 10, 23, 6, 0, tzinfo=UTC)
    assert second.start == datetime(2025, 10, 30, 7, 0, tzinfo=UTC)
    assert first.end.utcoffset() == timedelta(hours=3)  # an explicit offset still counts


def test_session_time_that_does_not_exist_or_happens_twice(example: Path) -> None:
    # Helsinki: the clocks go forward 30.3.2025 03:00 -> 04:00, back 26.10.2025 04:00 -> 03:00.
    gap = edit(
        example, CYCLE, "    start: 2025-10-23T09:00:00+03:00", "    start: 2025-03-30T03:30:00"
    )
    edit(example, CYCLE, "    end: 2025-10-23T11:30:00+03:00", "    end: 2025-03-30T05:00:00")
    twice = edit(
        example, CYCLE, "    end: 2025-10-30T11:30:00+02:00", "    end: 2025-10-26T03:15:00"
    )
    edit(example, CYCLE, "    start: 2025-10-30T09:00:00+02:00", "    start: 2025-10-26T01:00:00")
    problems = problems_of(example)
    assert len(problems) == 2, "\n".join(map(str, problems))
    find(
        problems,
        CYCLE,
        gap,
        "sessions[0].start",
        "2025-03-30T03:30 does not exist in Europe/Helsinki",
    )
    find(
        problems,
        CYCLE,
        twice,
        "sessions[1].end",
        "2025-10-26T03:15 happens twice in Europe/Helsinki: the clocks go back that night; "
        "give the UTC offset, 2025-10-26T03:15+03:00 for the first or "
        "2025-10-26T03:15+02:00 for the second",
    )
    # With the offset given, the same moment is accepted.
    edit(example, CYCLE, "    end: 2025-10-26T03:15:00", "    end: 2025-10-26T03:15:00+02:00")
    edit(example, CYCLE, "    start: 2025-03-30T03:30:00", "    start: 2025-03-30T04:30:00")
    load_config(example)


def test_unknown_field_typo(example: Path) -> None:
    line = edit(
        example,
        REGION,
        "    registry: kirjaamo@keuruu.example\n",
        "    regsitry: kirjaamo@keuruu.example\n",
    )
    problems = problems_of(example)
    assert len(problems) == 2
    find(problems, REGION, line, "municipalities[1].regsitry", "unknown field (check the spelling")
    find(
        problems,
        REGION,
        line_of(example, REGION, "  - id: keuruu\n"),
        "municipalities[1].registry",
        "required field is missing",
    )


@pytest.mark.parametrize("key", ["street", "strategy", "function-x", "dict"])
def test_unknown_field_is_located_whatever_its_name(example: Path, key: str) -> None:
    # Regression: keys starting with "str", "function-" or "dict[" were taken for pydantic's
    # internal tags and dropped, so the problem pointed at the municipality, not the key.
    line = edit(
        example,
        REGION,
        "    registry: kirjaamo@keuruu.example\n",
        f"    registry: kirjaamo@keuruu.example\n    {key}: x\n",
    )
    only(problems_of(example), REGION, line + 1, f"municipalities[1].{key}", "unknown field")


@pytest.mark.parametrize(
    ("file", "old", "anchor", "field"),
    [
        (
            REGION,
            "    registry: kirjaamo@keuruu.example\n",
            "  - id: keuruu\n",
            "municipalities[1].registry",
        ),
        (
            REGION,
            '  sender: {name: "Keski-Suomen hyvinvointialue, hyvinvointi ja kumppanuus", '
            "email: hyte@hyvaks.example}\n",
            "region:",
            "region.sender",
        ),
        (CYCLE, "  year: 2025\n", "cycle:", "cycle.year"),
    ],
    ids=["registry", "sender", "year"],
)
def test_missing_required_field(
    example: Path, file: str, old: str, anchor: str, field: str
) -> None:
    edit(example, file, old, "")
    only(
        problems_of(example),
        file,
        line_of(example, file, anchor),
        field,
        "required field is missing",
    )


def test_contact_language_not_among_the_regions_languages(example: Path) -> None:
    old = "email: sari.hamalainen@keuruu.example, role: hyte_coordinator, language: fi}"
    line = edit(example, REGION, old, old.replace("language: fi", "language: sv"))
    only(
        problems_of(example),
        REGION,
        line,
        "municipalities[1].contacts[0].language",
        "language 'sv' is not one of ['fi']",
    )


def test_text_in_a_language_the_region_does_not_have(example: Path) -> None:
    line = edit(example, REGION, "    name: {fi: Keuruu}\n", "    name: {fi: Keuruu, sv: Keuru}\n")
    only(
        problems_of(example),
        REGION,
        line,
        "municipalities[1].name.sv",
        "language 'sv' is not one of the region's languages ['fi']",
    )


def test_yaml_boolean_for_a_language_code_gets_a_hint(example: Path) -> None:
    line = edit(example, REGION, "  languages: [fi]\n", "  languages: [fi, no]\n")
    only(
        problems_of(example),
        REGION,
        line,
        "region.languages[1]",
        "valid string (got False); YAML reads yes/no/on/off as true/false",
    )


def test_unknown_time_zone_is_not_repeated(example: Path) -> None:
    line = edit(example, REGION, "  timezone: Europe/Helsinki\n", "  timezone: Europe/Helsinky\n")
    problems = problems_of(example)
    only(problems, REGION, line, "region.timezone", "unknown time zone 'Europe/Helsinky'")
    assert problems[0].message.count("Helsinky") == 1


# --- several problems at once -----------------------------------------------------------


def test_several_schema_problems_in_both_files_are_all_listed(example: Path) -> None:
    registry = edit(
        example,
        REGION,
        "    registry: kirjaamo@keuruu.example\n",
        "    registry: kirjaamo.keuruu.example\n",
    )
    typo = edit(
        example,
        REGION,
        "    registry: kirjaamo@multia.example\n",
        "    regsitry: kirjaamo@multia.example\n",
    )
    naive = edit(example, CYCLE, "    start: 2025-10-30T09:00:00+02:00", "    start: next thursday")
    kind = edit(example, CYCLE, "    kind: provider_forum\n", "    kind: forum\n")
    problems = problems_of(example)
    assert len(problems) == 5, "\n".join(map(str, problems))
    find(problems, REGION, registry, "municipalities[1].registry", "not a valid email address")
    find(problems, REGION, typo, "municipalities[2].regsitry", "unknown field")
    find(problems, REGION, typo - 2, "municipalities[2].registry", "required field is missing")
    find(problems, CYCLE, naive, "sessions[1].start", "valid datetime")
    find(problems, CYCLE, kind, "sessions[6].kind", "'group_session' or 'provider_forum'")


def test_several_cross_checks_are_all_listed(example: Path) -> None:
    dup = edit(example, REGION, "  - id: keuruu\n", "  - id: jamsa\n")
    group = edit(
        example, CYCLE, "    group: joutsa-luhanka-toivakka\n", "    group: joutsa-luhanka\n"
    )
    end = edit(
        example, CYCLE, "    end: 2025-11-13T11:30:00+02:00", "    end: 2025-11-13T08:00:00+02:00"
    )
    old = "email: leena.hyvonen@kyyjarvi.example, role: hyte_coordinator, language: fi}"
    lang = edit(example, REGION, old, old.replace("language: fi", "language: en"))
    problems = problems_of(example)
    find(problems, REGION, dup, "municipalities[1].id", "duplicate id 'jamsa'")
    find(
        problems,
        REGION,
        line_of(example, REGION, "    municipalities: [jamsa, keuruu, multia, petajavesi]"),
        "groups[0].municipalities[1]",
        "unknown municipality 'keuruu'",
    )
    find(problems, CYCLE, group, "sessions[1].group", "unknown group")
    find(problems, CYCLE, end, "sessions[3].end", "ends before it starts")
    find(problems, REGION, lang, "municipalities[10].contacts[0].language", "'en'")
    assert all(p.severity == "error" for p in problems)


# --- warnings ---------------------------------------------------------------------------


def warnings_of(folder: Path) -> list[Problem]:
    config = load_config(folder)
    assert all(w.severity == "warning" for w in config.warnings)
    return config.warnings


def test_warning_municipality_in_no_session(example: Path) -> None:
    # Take Muurame out of its group: now two municipalities are in no session.
    edit(
        example,
        REGION,
        "    municipalities: [jyvaskyla, muurame]\n",
        "    municipalities: [jyvaskyla]\n",
    )
    warnings = warnings_of(example)
    assert len(warnings) == 2
    find(
        warnings,
        REGION,
        line_of(example, REGION, "  - id: muurame"),
        "municipalities[13]",
        "Muurame is in no session this cycle",
    )
    find(
        warnings,
        REGION,
        line_of(example, REGION, "  - id: aanekoski"),
        "municipalities[21]",
        "Äänekoski is in no session this cycle",
    )


def test_cancelled_session_does_not_count(example: Path) -> None:
    edit(
        example,
        CYCLE,
        "    online_url: https://teams.hyvaks.example/l/meetup-join/2025-11-13-jyvaskyla\n"
        "    place: null\n"
        "    invite: [ngo, parish, employment_area, county_unit]\n"
        "    status: scheduled\n",
        "    online_url: https://teams.hyvaks.example/l/meetup-join/2025-11-13-jyvaskyla\n"
        "    place: null\n"
        "    invite: [ngo, parish, employment_area, county_unit]\n"
        "    status: cancelled\n",
    )
    messages = {w.message for w in warnings_of(example)}
    assert "Jyväskylä is in no session this cycle" in messages
    assert "Muurame is in no session this cycle" in messages


def test_warning_session_with_no_contacts_to_invite(example: Path) -> None:
    edit(example, CYCLE, "    invite: [company, county_unit]\n", "    invite: [public_body]\n")
    warnings = warnings_of(example)
    assert len(warnings) == 2
    find(
        warnings,
        CYCLE,
        line_of(example, CYCLE, "  - id: 2025-12-03-palveluntuottajafoorumi"),
        "sessions[6]",
        "session 2025-12-03-palveluntuottajafoorumi has no contacts to invite",
    )


def test_warning_contact_without_a_language(example: Path) -> None:
    old = "email: sari.hamalainen@keuruu.example, role: hyte_coordinator, language: fi}"
    line = edit(example, REGION, old, old.replace(", language: fi", ""))
    warnings = warnings_of(example)
    assert len(warnings) == 2
    find(
        warnings,
        REGION,
        line,
        "municipalities[1].contacts[0]",
        "contact Sari Hämäläinen has no language; fi is assumed",
    )


def test_warning_offset_not_helsinki_on_that_day(example: Path) -> None:
    # +03:00 is summer time; on 6 November Helsinki is at +02:00.
    line = edit(
        example,
        CYCLE,
        "    start: 2025-11-06T09:00:00+02:00",
        "    start: 2025-11-06T09:00:00+03:00",
    )
    warnings = warnings_of(example)
    assert len(warnings) == 2
    find(
        warnings,
        CYCLE,
        line,
        "sessions[2].start",
        "offset +03:00 is not Europe/Helsinki's offset on that day (+02:00); "
        "the time is off by an hour",
    )


def test_warning_offset_in_summer(example: Path) -> None:
    # 23 October is still summer time (+03:00): +02:00 is the mistake here.
    line = edit(
        example, CYCLE, "    end: 2025-10-23T11:30:00+03:00", "    end: 2025-10-23T11:30:00+02:00"
    )
    find(
        warnings_of(example),
        CYCLE,
        line,
        "sessions[0].end",
        "offset +02:00 is not Europe/Helsinki's offset on that day (+03:00)",
    )


def test_warnings_do_not_hide_behind_each_other(example: Path) -> None:
    old = "email: sari.hamalainen@keuruu.example, role: hyte_coordinator, language: fi}"
    edit(example, REGION, old, old.replace(", language: fi", ""))
    edit(
        example,
        CYCLE,
        "    start: 2025-11-06T09:00:00+02:00",
        "    start: 2025-11-06T09:00:00+03:00",
    )
    edit(example, CYCLE, "    invite: [company, county_unit]\n", "    invite: [public_body]\n")
    assert len(warnings_of(example)) == 4


# --- a second, bilingual region ---------------------------------------------------------

BILINGUAL_REGION = """\
region:
  id: pohjanmaa
  name: {fi: Pohjanmaan hyvinvointialue, sv: Österbottens välfärdsområde}
  timezone: Europe/Helsinki
  languages: [sv, fi]
  sender: {name: Välfärd och partnerskap, email: valfard@ovo.example}

municipalities:
  - id: vaasa
    name: {fi: Vaasa, sv: Vasa}
    registry: registratur@vasa.example
    contacts:
      - {name: Anna Backman, email: anna.backman@vasa.example, language: fi}
  - id: mustasaari
    name: {fi: Mustasaari, sv: Korsholm}
    registry: registratur@korsholm.example
    contacts:
      - {name: Erik Sjöberg, email: erik.sjoberg@korsholm.example, language: sv}
  - id: narpio
    name: {fi: Närpiö, sv: Närpes}
    registry: registratur@narpes.example
    contacts:
      - {name: Ulla Holm, email: ulla.holm@narpes.example, language: sv}

groups:
  - id: kust
    name: {fi: Rannikko, sv: Kusten}
    municipalities: [vaasa, mustasaari, narpio]

stakeholders:
  - id: folkhalsan
    type: ngo
    name: {fi: Folkhälsan, sv: Folkhälsan}
    contacts:
      - {name: Lisa Nyman, email: lisa.nyman@folkhalsan.example, role: ngo, language: sv}
"""


def bilingual_cycle() -> str:
    services = ["barn-unga", "vuxna", "aldre", "halsa"]
    priorities = ["trygghet", "psykisk-halsa"]
    cells = [
        {
            "priority_area": p,
            "service_area": s,
            "goal": {"sv": f"Mål {p} {s}", "fi": f"Tavoite {p} {s}"},
        }
        for p in priorities
        for s in services
    ]
    data = {
        "cycle": {"year": 2026, "title": {"sv": "Förhandlingar 2026", "fi": "Neuvottelut 2026"}},
        "feedback": {"opens": "2026-03-10", "deadline": "2026-05-15"},
        "goal_matrix": {
            "priority_areas": [{"id": p, "name": {"sv": p, "fi": p}} for p in priorities],
            "service_areas": [{"id": s, "name": {"sv": s, "fi": s}} for s in services],
            "cells": cells,
        },
        "sessions": [
            {
                "id": "2026-03-10-kust",
                "group": "kust",
                "start": "2026-03-10T09:00:00+02:00",
                "end": "2026-03-10T11:00:00+02:00",
            },
            {
                "id": "2026-04-14-kust",
                "group": "kust",
                "start": "2026-04-14T09:00:00+03:00",
                "end": "2026-04-14T11:00:00+03:00",
                "invite": [],
            },
        ],
    }
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


@pytest.fixture
def bilingual(tmp_path: Path) -> Path:
    folder = tmp_path / "pohjanmaa-2026"
    folder.mkdir()
    (folder / REGION).write_text(BILINGUAL_REGION, encoding="utf-8")
    (folder / CYCLE).write_text(bilingual_cycle(), encoding="utf-8")
    return folder


def test_bilingual_region_with_four_service_areas_validates(bilingual: Path) -> None:
    config = load_config(bilingual)
    assert isinstance(config, Config)
    assert config.warnings == []
    assert config.region.languages == ["sv", "fi"]
    assert config.language == "sv"
    assert config.cycle.year == 2026
    gm = config.cycle_file.goal_matrix
    assert (len(gm.priority_areas), len(gm.service_areas), len(gm.cells)) == (2, 4, 8)
    vaasa = config.municipality("vaasa")
    assert localized(vaasa.name, "sv", config.language) == "Vasa"
    assert localized(vaasa.name, "fi", config.language) == "Vaasa"
    first, second = config.cycle_file.sessions
    assert {key for key, _ in config.invitees(first)} == {
        "vaasa",
        "mustasaari",
        "narpio",
        "folkhalsan",
    }
    assert {key for key, _ in config.invitees(second)} == {"vaasa", "mustasaari", "narpio"}


def test_bilingual_region_missing_cell_and_language(bilingual: Path) -> None:
    line = edit(
        bilingual,
        REGION,
        "      - {name: Ulla Holm, email: ulla.holm@narpes.example, language: sv}",
        "      - {name: Ulla Holm, email: ulla.holm@narpes.example, language: en}",
    )
    data = yaml.safe_load((bilingual / CYCLE).read_text(encoding="utf-8"))
    del data["goal_matrix"]["cells"][5]
    (bilingual / CYCLE).write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    problems = problems_of(bilingual)
    assert len(problems) == 2
    find(
        problems,
        REGION,
        line,
        "municipalities[2].contacts[0].language",
        "language 'en' is not one of ['fi', 'sv']",
    )
    find(
        problems,
        CYCLE,
        line_of(bilingual, CYCLE, "  cells:"),
        "goal_matrix.cells",
        "missing cell psykisk-halsa × vuxna",
    )


def test_bilingual_region_warns_about_text_missing_in_a_language(bilingual: Path) -> None:
    line = edit(bilingual, REGION, "    name: {fi: Närpiö, sv: Närpes}", "    name: {fi: Närpiö}")
    warnings = warnings_of(bilingual)
    assert len(warnings) == 1
    find(warnings, REGION, line, "municipalities[2].name", "no text in sv")


@pytest.mark.parametrize("value", ["-5", "20000", "soon"])
def test_session_alarm_minutes_out_of_range_is_located(example: Path, value: str) -> None:
    line = edit(
        example,
        CYCLE,
        "  invitation_lead_days: 21\n",
        f"  invitation_lead_days: 21\n  session_alarm_minutes: {value}\n",
    )
    message = "valid integer" if value == "soon" else "a calendar reminder is 0 to 10080 minutes"
    only(problems_of(example), CYCLE, line + 1, "cycle.session_alarm_minutes", message)


@pytest.mark.parametrize(("value", "expected"), [("", 15), ("30", 30), ("0", 0), ("null", None)])
def test_session_alarm_minutes(example: Path, value: str, expected: int | None) -> None:
    if value:
        edit(
            example,
            CYCLE,
            "  invitation_lead_days: 21\n",
            f"  invitation_lead_days: 21\n  session_alarm_minutes: {value}\n",
        )
    assert load_config(example).cycle.session_alarm_minutes == expected
