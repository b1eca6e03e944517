"""The configuration of a region and its yearly cycle: schema, loading and checks.

A config folder holds ``region.yaml`` and ``cycle.yaml`` (see docs/config-format.md).
``load_config`` returns a validated ``Config`` or raises ``ConfigError`` listing every
problem as ``file:line: field: what is wrong``. Nothing regional is hard-coded here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from hytetu.errors import ConfigError, Problem, StateError
from hytetu.inputs import MB, Limits
from hytetu.localtime import local_datetime
from hytetu.mail import MailSettings
from hytetu.yamlsource import YamlDoc, YamlSyntaxError, control_problems, load_yaml

REGION_FILE = "region.yaml"
CYCLE_FILE = "cycle.yaml"
DEFAULT_LANGUAGE_KEY = "*"


def _to_localized(value: Any) -> Any:
    if isinstance(value, str):
        return {DEFAULT_LANGUAGE_KEY: value}
    return value


ID_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
#: Names Windows keeps for devices: ids become file names (notes/<session>.yaml).
_DEVICE_NAMES = {"con", "prn", "aux", "nul"} | {
    f"{d}{i}" for d in ("com", "lpt") for i in range(10)
}


def _not_a_device_name(value: str) -> str:
    if value in _DEVICE_NAMES:
        raise ValueError(
            f"{value!r} is a device name on Windows and ids become file names; choose another"
        )
    return value


Id = Annotated[
    str,
    StringConstraints(pattern=ID_PATTERN, max_length=80),
    AfterValidator(_not_a_device_name),
    Field(description="Lowercase ascii letters, digits and '-', e.g. jamsa"),
]
LocalizedText = Annotated[
    dict[str, Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]],
    BeforeValidator(_to_localized),
    Field(description="Plain text, or a mapping from language code to text: {fi: ..., sv: ...}"),
]
StakeholderType = Literal[
    "ngo", "parish", "employment_area", "company", "county_unit", "public_body"
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class Person(_Model):
    name: LocalizedText
    email: EmailStr
    phone: str | None = None


class Contact(_Model):
    """A person who is invited and notified: hyte coordinator, NGO worker, county staff..."""

    name: str = Field(min_length=1)
    email: EmailStr
    role: str = Field("contact", description="e.g. hyte_coordinator, employment, ngo, parish")
    language: str | None = Field(None, description="fi, sv...; default the region's first")


LanguageCode = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")]


class RegionInfo(_Model):
    id: Id
    name: LocalizedText
    timezone: str = "Europe/Helsinki"
    languages: list[Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")]] = Field(
        default=["fi"],
        min_length=1,
        description="The languages it sends in; the first is its default",
    )
    sender: Person = Field(description="The county's sending address; organiser of sessions")
    contact: Person | None = Field(
        None,
        description="The person a reader can ask: named in invitations, notices, memos and "
        "cover letters (default: the sender)",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {v!r} (use an IANA name such as Europe/Helsinki)"
            ) from None
        return v


class Municipality(_Model):
    id: Id
    name: LocalizedText
    registry: EmailStr = Field(description="The registry (kirjaamo) address; memos go here")
    languages: list[LanguageCode] | None = Field(
        None,
        min_length=1,
        description="The municipality's official language(s), e.g. [sv] or [sv, fi]: its "
        "registry gets letters and memos in these only (default: the region's languages)",
    )
    code: Annotated[str, StringConstraints(pattern=r"^[0-9]{3}$")] | None = Field(
        None,
        description="The municipality number (kuntanumero), e.g. '179': how its indicator "
        "values are found in Sotkanet's and THL's files (default: by its Finnish name)",
    )
    contacts: list[Contact] = []

    @field_validator("languages", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class Group(_Model):
    """A municipality group (kuntaryhmä): the municipalities that meet in one session."""

    id: Id
    name: LocalizedText
    municipalities: list[Id] = Field(min_length=1)


class Stakeholder(_Model):
    """An actor other than a municipality: NGO, parish, employment area, company, county unit."""

    id: Id
    type: StakeholderType
    name: LocalizedText
    municipalities: list[Id] = Field([], description="Where it works; empty = the whole region")
    contacts: list[Contact] = []


class RegionFile(_Model):
    region: RegionInfo
    mail: MailSettings = MailSettings()
    municipalities: list[Municipality] = Field(min_length=1)
    groups: list[Group] = []
    stakeholders: list[Stakeholder] = []


#: The calendar reminder (VALARM) before a session, in minutes, unless the cycle says.
DEFAULT_ALARM_MINUTES = 15
MAX_ALARM_MINUTES = 7 * 24 * 60


class CycleInfo(_Model):
    year: int = Field(ge=2020, le=2100)
    title: LocalizedText
    plan_period: str | None = None
    reference: str | None = Field(None, description="The county's registry (diary) number")
    invitation_lead_days: int = Field(21, ge=0, le=365)
    session_reminder_days: int = Field(7, ge=0, le=60)
    session_reminders: Literal["unanswered", "all"] = Field(
        "unanswered",
        description="Who gets the session reminder: unanswered (those who have not answered "
        "the invitation) or all (everyone but those who declined)",
    )
    session_alarm_minutes: int | None = Field(
        DEFAULT_ALARM_MINUTES,
        description=(
            "Calendar reminder (VALARM) this many minutes before each session, in the "
            "invitations and the feeds; 0 or null: none"
        ),
    )
    common_threshold: int = Field(2, ge=1, description="Groups needed for a common theme")

    @field_validator("session_alarm_minutes")
    @classmethod
    def _alarm_minutes(cls, v: int | None) -> int | None:
        if v is not None and not 0 <= v <= MAX_ALARM_MINUTES:
            raise ValueError(
                f"a calendar reminder is 0 to {MAX_ALARM_MINUTES} minutes (a week) before "
                f"the session, not {v}; 0 or null for none"
            )
        return v


ColumnNames = Annotated[
    list[Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]],
    BeforeValidator(lambda v: [v] if isinstance(v, str) else v),
    Field(description="A column's header, or several: the first one in the file is used"),
]


ImportField = Literal[
    "received_at",
    "organisation",
    "respondent_type",
    "municipality",
    "priority_area",
    "service_area",
    "text",
    "email",
]


class FeedbackImport(_Model):
    """Which column of a form export (Webropol, Microsoft Forms; CSV or XLSX) holds what.
    Files are read from ``feedback/`` in the config folder; the defaults fit both, with
    the Finnish, Swedish or English questions of hytetu's own form."""

    received_at: ColumnNames = ["Vastausaika", "Valmistumisaika", "Svarstid", "Completion time"]
    organisation: ColumnNames = ["Organisaatio", "Organisation"]
    respondent_type: ColumnNames = ["Vastaajan tyyppi", "Typ av svarande", "Respondent type"]
    municipality: ColumnNames = ["Kunta tai kuntaryhmä", "Kommun eller kommungrupp", "Municipality"]
    priority_area: ColumnNames = ["Painopiste", "Prioritering", "Priority area"]
    service_area: ColumnNames = ["Palvelualue", "Tjänsteområde", "Service area"]
    text: ColumnNames = ["Näkemys", "Din synpunkt", "Your view"]
    email: ColumnNames = ["Sähköposti", "E-post", "Email"]
    max_text: int = Field(5000, ge=100, le=100_000, description="Longest text accepted")
    date_format: str | None = Field(
        None,
        description=(
            "How the export writes its times, in Python's strptime codes, e.g. "
            "'%m/%d/%Y %I:%M %p' (Microsoft Forms in US English) or '%d/%m/%Y %H:%M'; unset: "
            "24.10.2025 9.12, ISO and Excel's own dates are read as such, and 10/24/2025 by "
            "the file's days over 12 (a file that does not show its order is refused)"
        ),
    )
    optional: list[ImportField] = Field(
        ["organisation", "respondent_type", "priority_area", "service_area", "email"],
        description=(
            "Mapped columns an export may lack (the list replaces this default); any other "
            "mapped column missing from the header is an error (without the municipality "
            "column every answer would be read as feedback for the whole region)"
        ),
    )
    max_file_mb: float = Field(
        20, gt=0, le=1000, description="Largest export file (CSV, or XLSX as stored), in MB"
    )
    max_unpacked_mb: float = Field(
        50, gt=0, le=2000, description="Largest total an XLSX may unpack to, in MB"
    )
    max_rows: int = Field(50_000, ge=1, description="Most rows an export may have")
    max_cells: int = Field(
        1_000_000, ge=1, description="Most cells (or shared strings) an export may have"
    )

    @field_validator("date_format")
    @classmethod
    def _reads_a_date(cls, v: str | None) -> str | None:
        if v is None:
            return v
        sample = datetime(2025, 10, 24, 21, 12, 34)
        try:
            back = datetime.strptime(sample.strftime(v), v)
        except ValueError as e:
            raise ValueError(f"not a strptime format: {e}") from None
        if back.date() != sample.date():
            raise ValueError("needs the day, month and year, e.g. %d.%m.%Y %H.%M")
        return v

    @field_validator("optional")
    @classmethod
    def _not_required(cls, v: list[str]) -> list[str]:
        if {"received_at", "text"} & set(v):
            raise ValueError("received_at and text cannot be optional: every answer has them")
        return v

    def limits(self) -> Limits:
        return Limits(
            file_bytes=int(self.max_file_mb * MB),
            unpacked_bytes=int(self.max_unpacked_mb * MB),
            rows=self.max_rows,
            cells=self.max_cells,
            setting="feedback.import of cycle.yaml",
        )


#: A note ``hytetu cycle new`` puts on what it moved a year: ``validate`` and ``load``
#: warn about it until the coordinator has checked and removed it.
CheckNote = Annotated[
    str | None,
    Field(description="A note of what to check (hytetu cycle new); remove it once checked"),
]


class FeedbackWindow(_Model):
    check: CheckNote = None
    opens: date
    deadline: date = Field(description="Last day to respond, inclusive, region's time zone")
    url: str | None = None
    reminder_days: int = Field(7, ge=0, le=60)
    import_: FeedbackImport = Field(
        FeedbackImport(), alias="import", description="Column mapping of form exports"
    )


class Area(_Model):
    id: Id
    name: LocalizedText


class Cell(_Model):
    priority_area: Id
    service_area: Id
    goal: LocalizedText
    background: LocalizedText | None = None


class GoalMatrix(_Model):
    priority_areas: list[Area] = Field(min_length=1)
    service_areas: list[Area] = Field(min_length=1)
    cells: list[Cell] = []


class Session(_Model):
    id: Id
    check: CheckNote = None
    kind: Literal["group_session", "provider_forum"] = "group_session"
    group: Id | None = None
    title: LocalizedText | None = None
    start: datetime = Field(
        description="Local time in the region's zone (2026-10-22T09:00), or with its UTC "
        "offset (2026-10-22T09:00+03:00)"
    )
    end: datetime
    online_url: str | None = None
    place: str | None = None
    invite: list[StakeholderType] = ["ngo", "parish", "employment_area", "county_unit"]
    status: Literal["scheduled", "cancelled"] = "scheduled"


class DispatchSettings(_Model):
    """The ``dispatch:`` block of cycle.yaml: how approved memos go to the registries."""

    cc_contacts: bool = Field(
        False, description="Copy (cc) each letter to the municipality's hyte coordinators"
    )
    summary_to_stakeholders: bool = Field(
        False, description="Send the regional summary also to every stakeholder's contacts"
    )
    rate_per_minute: int = Field(
        30, ge=1, le=10000, description="Most messages sent a minute, by all runs together"
    )
    max_attachment_mb: float = Field(
        20, gt=0, description="Largest total size of a letter's attachments, in megabytes"
    )
    lease_seconds: int = Field(
        600,
        ge=0,
        description=(
            "Any message (invitation, reminder, notice, letter) left 'sending' this long by a "
            "run that died is checked and re-sent; at once when that run's process on the "
            "same machine is gone"
        ),
    )


def _both(fi: str, sv: str) -> dict[str, str]:
    return {"fi": fi, "sv": sv}


class Texts(_Model):
    """The ``texts:`` block of cycle.yaml: what the invitations, notices and memos say about
    the negotiations, in every language the region sends in. The defaults are the texts of
    the 2025 cycle in Central Finland, with their Swedish translations."""

    topic: LocalizedText = Field(
        _both(
            "hyvinvoinnin, terveyden ja turvallisuuden edistämisen",
            "främjande av välfärd, hälsa och säkerhet",
        ),
        description="What the negotiations are about, worded to fit 'X neuvottelut' (fi) "
        "and 'förhandlingarna om X' (sv)",
    )
    law: LocalizedText = Field(
        _both(
            "laki sosiaali- ja terveydenhuollon järjestämisestä 612/2021, 6 § ja 7 §",
            "lagen om ordnande av social- och hälsovård 612/2021, 6 § och 7 §",
        ),
        description="The law the negotiations are held under, as invitations name it",
    )
    agenda: list[LocalizedText] = Field(
        [
            _both(
                "Johdatus: alueellisen hyvinvointisuunnitelman painopisteet, alustavat "
                "tavoitteet ja toimenpiteet; HYTE-kerroin hyvinvointialueen ja kunnan "
                "yhdyspinnalla",
                "Inledning: den regionala välfärdsplanens prioriteringar, preliminära mål och "
                "åtgärder; HYTE-koefficienten i gränssnittet mellan välfärdsområdet och "
                "kommunen",
            ),
            _both(
                "Yhteinen keskustelu tavoitteista ikäryhmittäin ja kuntakohtaisista painotuksista",
                "Gemensam diskussion om målen per åldersgrupp och om kommunernas betoningar",
            ),
            _both(
                "Keskustelun yhteenveto ja alueellisen hyvinvointisuunnitelman jatkovalmistelu",
                "Sammanfattning av diskussionen och fortsatt beredning av den regionala "
                "välfärdsplanen",
            ),
        ],
        min_length=1,
        description="The sessions' agenda, one item each: in invitations and memos",
    )
    background: list[LocalizedText] = Field(
        [
            _both(
                "Laki sosiaali- ja terveydenhuollon järjestämisestä (612/2021) velvoittaa "
                "kunnan toimimaan hyvinvoinnin ja terveyden edistämisessä yhteistyössä "
                "hyvinvointialueen kanssa, tekemään yhteistyötä muiden toimijoiden kanssa ja "
                "osallistumaan hyvinvointialueen neuvotteluihin (6 § 4 mom.).",
                "Enligt lagen om ordnande av social- och hälsovård (612/2021) ska kommunen "
                "samarbeta med välfärdsområdet i främjandet av välfärd och hälsa, samarbeta "
                "med andra aktörer och delta i välfärdsområdets förhandlingar (6 § 4 mom.).",
            ),
            _both(
                "Hyvinvointialueen on neuvoteltava vähintään kerran vuodessa yhdessä alueensa "
                "kuntien sekä muiden hyvinvoinnin ja terveyden edistämistyötä tekevien "
                "toimijoiden kanssa tavoitteista, toimenpiteistä, yhteistyöstä ja seurannasta "
                "(7 § 4 mom.).",
                "Välfärdsområdet ska minst en gång om året förhandla tillsammans med kommunerna "
                "i området och andra aktörer som främjar välfärd och hälsa om mål, åtgärder, "
                "samarbete och uppföljning (7 § 4 mom.).",
            ),
        ],
        description="The memo's background paragraphs (the law); the memo adds a sentence "
        "on the plan period",
    )


class Indicator(_Model):
    """An indicator shown beside the findings of the goal cells it is mapped to."""

    id: Id
    source: Literal["sotkanet", "hyte-kerroin"] = Field(
        "sotkanet",
        description="sotkanet: THL's Sotkanet (the id in 'sotkanet'); hyte-kerroin: the HYTE "
        "coefficient file (docs/indicators.md)",
    )
    sotkanet: int | None = Field(None, ge=1, description="The Sotkanet indicator id, e.g. 3342")
    label: LocalizedText
    unit: LocalizedText | None = Field(None, description="e.g. {fi: '% työvoimasta'}")
    better: Literal["higher", "lower"] = Field(
        description="Which way is better: 'higher' or 'lower' (the trend's wording)"
    )
    decimals: int = Field(1, ge=0, le=3)


class Indicators(_Model):
    """The ``indicators:`` block: what is shown, and beside which goal cells. The data
    files are in the folder ``indicators/`` beside cycle.yaml (docs/indicators.md)."""

    county: str | None = Field(
        None,
        description="The county's Sotkanet code (HYVINVOINTIALUE), e.g. '15'; default: the "
        "region of that category whose Finnish name is the region's",
    )
    items: list[Indicator] = []
    goal_cells: dict[str, list[Id]] = Field(
        {},
        description="Goal cell 'priority-area/service-area' → the ids of its indicators",
    )


class CycleFile(_Model):
    cycle: CycleInfo
    texts: Texts = Texts()
    feedback: FeedbackWindow
    goal_matrix: GoalMatrix
    sessions: list[Session] = Field(min_length=1)
    dispatch: DispatchSettings = DispatchSettings()
    indicators: Indicators = Indicators()


@dataclass(frozen=True)
class Config:
    """A validated region and cycle, with helpers for what the rest of hytetu asks of it."""

    folder: Path
    region_file: RegionFile
    cycle_file: CycleFile
    warnings: list[Problem] = field(default_factory=list)

    @property
    def region(self) -> RegionInfo:
        return self.region_file.region

    @property
    def cycle(self) -> CycleInfo:
        return self.cycle_file.cycle

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.region.timezone)

    @property
    def language(self) -> str:
        return self.region.languages[0]

    def group(self, group_id: str) -> Group:
        return next(g for g in self.region_file.groups if g.id == group_id)

    def municipality(self, municipality_id: str) -> Municipality:
        return next(m for m in self.region_file.municipalities if m.id == municipality_id)

    def municipality_languages(self, municipality: Municipality) -> list[str]:
        """The languages its registry gets letters in: its own, else the region's."""
        return list(municipality.languages or self.region.languages)

    def invitees(self, session: Session) -> list[tuple[str, Contact]]:
        """(organisation id, contact) pairs invited to ``session``, without duplicates."""
        members = set(self.group(session.group).municipalities) if session.group else None
        orgs: list[tuple[str, str, list[str], list[Contact]]] = [
            (m.id, "municipality", [m.id], m.contacts) for m in self.region_file.municipalities
        ] + [(s.id, s.type, s.municipalities, s.contacts) for s in self.region_file.stakeholders]
        out: list[tuple[str, Contact]] = []
        seen: set[str] = set()
        for key, kind, where, contacts in orgs:
            if is_invited(kind, where, members, session.invite):
                for c in contacts:
                    if c.email.lower() not in seen:
                        seen.add(c.email.lower())
                        out.append((key, c))
        return out


def is_invited(
    org_type: str,
    org_municipalities: Sequence[str],
    group_members: set[str] | None,
    invite: Sequence[str],
) -> bool:
    """Who is invited to a session: the group's municipalities, and stakeholders of the
    invited types that work in one of them or in the whole region."""
    if org_type == "municipality":
        return group_members is not None and bool(group_members & set(org_municipalities))
    return org_type in invite and (
        not org_municipalities
        or group_members is None
        or bool(group_members & set(org_municipalities))
    )


def localized(text: dict[str, str] | None, language: str, default: str) -> str:
    """The text in ``language``, else in the default language, else any."""
    if not text:
        return ""
    for key in (language, DEFAULT_LANGUAGE_KEY, default):
        if key in text:
            return text[key]
    return next(iter(text.values()))


def fallback_language(text: dict[str, str] | None, language: str, default: str) -> str | None:
    """The language of ``localized(text, language, default)`` when it is another one than
    ``language`` (a fallback, to be marked with ``lang``), else None (also for a text
    written for every language)."""
    if not text or language in text or DEFAULT_LANGUAGE_KEY in text:
        return None
    return default if default in text else next(iter(text))


_MESSAGES = {
    "extra_forbidden": "unknown field (check the spelling; see docs/config-format.md)",
    "missing": "required field is missing",
}


def _yaml_path(data: Any, loc: tuple[str | int, ...], missing: bool) -> tuple[str | int, ...]:
    """Pydantic's error location as a path in the YAML: walks the data and drops the tags
    pydantic adds for unions and validators (``function-before[...]``, ``[key]``...).
    Only a key the data really has is kept, or the last one of a missing field."""
    path: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        in_data = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if in_data:
            node = node[part]
        elif not (missing and i == len(loc) - 1):
            continue
        path.append(part)
    return tuple(path)


def _shown(value: Any) -> str:
    if isinstance(value, date | time):  # datetime is a date
        return value.isoformat()
    return repr(value)


def _pydantic_problems(doc: YamlDoc, error: ValidationError) -> list[Problem]:
    problems = []
    for e in error.errors():
        path = _yaml_path(doc.data, tuple(e["loc"]), missing=e["type"] == "missing")
        message = _MESSAGES.get(e["type"], e["msg"])
        if (
            e["type"] == "string_pattern_mismatch"
            and (e.get("ctx") or {}).get("pattern") == ID_PATTERN
        ):
            message = (
                "an id is lowercase a-z, digits and '-', starting with a letter or digit "
                "(no '/', '.', spaces or ä, ö: ids become file names)"
            )
        if e["type"] == "value_error":
            message = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] not in ("missing", "extra_forbidden") and "input" in e:
            shown = _shown(e["input"])
            repeated = e["type"] == "value_error" and shown in message  # says it already
            if len(shown) < 60 and not isinstance(e["input"], dict | list) and not repeated:
                message += f" (got {shown})"
            if e["type"] == "string_type" and isinstance(e["input"], bool):
                message += "; YAML reads yes/no/on/off as true/false: quote it, e.g. 'no'"
        problems.append(doc.problem(path, message))
    return problems


def load_config(folder: Path | str) -> Config:
    """Load and check a config folder. Raises ``ConfigError`` with every problem found."""
    folder = Path(folder)
    if folder.is_file():
        if folder.name not in (REGION_FILE, CYCLE_FILE):
            raise ConfigError(
                f"{folder}: not a config folder",
                problems=[
                    Problem(
                        str(folder),
                        None,
                        "",
                        f"a file, not a config folder: give the folder that holds "
                        f"{REGION_FILE} and {CYCLE_FILE}",
                    )
                ],
            )
        folder = folder.parent
    problems: list[Problem] = []
    docs: dict[str, YamlDoc] = {}
    for name in (REGION_FILE, CYCLE_FILE):
        try:
            docs[name] = load_yaml(folder / name, display=str(folder / name))
        except YamlSyntaxError as e:
            problems.append(e.problem)
    parsed: dict[str, Any] = {}
    for name, model in ((REGION_FILE, RegionFile), (CYCLE_FILE, CycleFile)):
        doc = docs.get(name)
        if doc is None:
            continue
        if not isinstance(doc.data, dict):
            problems.append(doc.problem((), "the file must be a YAML mapping (key: value)"))
            continue
        controls = control_problems(doc)
        if controls:
            problems.extend(controls)
            continue
        try:
            parsed[name] = model.model_validate(doc.data)
        except ValidationError as e:
            problems.extend(_pydantic_problems(doc, e))
    if not problems and len(parsed) == 2:
        parsed[CYCLE_FILE] = _sessions_in_zone(
            parsed[CYCLE_FILE], parsed[REGION_FILE].region.timezone, docs[CYCLE_FILE], problems
        )
    if problems or len(parsed) < 2:
        raise ConfigError(f"{folder}: the configuration is invalid", problems=problems)
    config = Config(folder, parsed[REGION_FILE], parsed[CYCLE_FILE])
    found = _check(config, docs[REGION_FILE], docs[CYCLE_FILE])
    errors = [p for p in found if p.severity == "error"]
    if errors:
        raise ConfigError(f"{folder}: the configuration is invalid", problems=errors)
    return Config(config.folder, config.region_file, config.cycle_file, found)


def _sessions_in_zone(
    cycle: CycleFile, zone: str, doc: YamlDoc, problems: list[Problem]
) -> CycleFile:
    """Sessions with times without an offset read in the region's zone ``zone``."""
    tz = ZoneInfo(zone)
    sessions = []
    for si, s in enumerate(cycle.sessions):
        times = {}
        for name in ("start", "end"):
            value: datetime = getattr(s, name)
            if value.tzinfo is None:
                try:
                    times[name] = local_datetime(value, tz)
                except StateError as e:
                    problems.append(doc.problem(("sessions", si, name), str(e)))
        sessions.append(s.model_copy(update=times))
    return cycle.model_copy(update={"sessions": sessions})


def _check(config: Config, rdoc: YamlDoc, cdoc: YamlDoc) -> list[Problem]:
    """Checks across fields and files that the schema alone cannot make."""
    out: list[Problem] = []
    rf, cf = config.region_file, config.cycle_file
    languages = set(rf.region.languages)

    municipality_ids = _ids_checked(rdoc, ("municipalities",), rf.municipalities, out)
    group_ids = _ids_checked(rdoc, ("groups",), rf.groups, out)
    _ids_checked(rdoc, ("stakeholders",), rf.stakeholders, out)
    _ids_checked(cdoc, ("sessions",), cf.sessions, out)
    pa_ids = _ids_checked(
        cdoc, ("goal_matrix", "priority_areas"), cf.goal_matrix.priority_areas, out
    )
    sa_ids = _ids_checked(cdoc, ("goal_matrix", "service_areas"), cf.goal_matrix.service_areas, out)

    for gi, g in enumerate(rf.groups):
        for mi, m in enumerate(g.municipalities):
            if m not in municipality_ids:
                out.append(
                    rdoc.problem(
                        ("groups", gi, "municipalities", mi), f"unknown municipality {m!r}"
                    )
                )
    for si, st in enumerate(rf.stakeholders):
        for mi, m in enumerate(st.municipalities):
            if m not in municipality_ids:
                out.append(
                    rdoc.problem(
                        ("stakeholders", si, "municipalities", mi), f"unknown municipality {m!r}"
                    )
                )

    # Languages of texts and contacts.
    def check_text(
        doc: YamlDoc, path: tuple, text: dict[str, str] | None, required: bool = False
    ) -> None:
        """Every language of a text is the region's; a missing one is a warning, or an
        error when it is ``required`` (shown to readers of every language: the invitation
        would silently show another language)."""
        if not text:
            return
        for lang in text:
            if lang != "*" and lang not in languages:
                out.append(
                    doc.problem(
                        (*path, lang),
                        f"language {lang!r} is not one of the region's languages "
                        f"{sorted(languages)}",
                    )
                )
        given = {rf.region.languages[0] if k == "*" else k for k in text}
        missing = sorted(languages - given)
        if missing and required:
            out.append(
                doc.problem(
                    path,
                    f"no text in {', '.join(missing)}: the region sends in "
                    f"{', '.join(rf.region.languages)}, and its {', '.join(missing)} "
                    "invitations and memos would show another language",
                )
            )
        elif missing:
            out.append(doc.problem(path, f"no text in {', '.join(missing)}", severity="warning"))

    check_text(rdoc, ("region", "name"), rf.region.name)
    for role in ("sender", "contact"):
        person = getattr(rf.region, role)
        if person is not None and DEFAULT_LANGUAGE_KEY not in person.name:  # a plain name is fine
            check_text(rdoc, ("region", role, "name"), person.name)
    written = (cdoc.data or {}).get("texts") or {}  # the defaults are in fi and sv
    for key in ("topic", "law"):
        if key in written:
            check_text(cdoc, ("texts", key), getattr(cf.texts, key), required=True)
    for key in ("agenda", "background"):
        if key in written:
            for i, item in enumerate(getattr(cf.texts, key)):
                check_text(cdoc, ("texts", key, i), item, required=True)
    orgs: list[tuple[str, Sequence[Municipality | Stakeholder]]] = [
        ("municipalities", rf.municipalities),
        ("stakeholders", rf.stakeholders),
    ]
    path: tuple[str | int, ...]
    for mi, muni in enumerate(rf.municipalities):
        for li, lang in enumerate(muni.languages or []):
            if lang not in languages:
                out.append(
                    rdoc.problem(
                        ("municipalities", mi, "languages", li),
                        f"language {lang!r} is not one of the region's languages "
                        f"{sorted(languages)}",
                    )
                )
    for kind, items in orgs:
        for i, item in enumerate(items):
            check_text(rdoc, (kind, i, "name"), item.name)
            for ci, c in enumerate(item.contacts):
                path = (kind, i, "contacts", ci, "language")
                if c.language is None:
                    out.append(
                        rdoc.problem(
                            path[:-1],
                            f"contact {c.name} has no language; "
                            f"{rf.region.languages[0]} is assumed",
                            severity="warning",
                        )
                    )
                elif c.language not in languages:
                    out.append(
                        rdoc.problem(
                            path, f"language {c.language!r} is not one of {sorted(languages)}"
                        )
                    )
    for gi, g in enumerate(rf.groups):
        check_text(rdoc, ("groups", gi, "name"), g.name)
    check_text(cdoc, ("cycle", "title"), cf.cycle.title)

    # The goal matrix: every cell once, no unknown areas.
    seen_cells: set[tuple[str, str]] = set()
    for ci, cell in enumerate(cf.goal_matrix.cells):
        path = ("goal_matrix", "cells", ci)
        if cell.priority_area not in pa_ids:
            out.append(
                cdoc.problem(
                    (*path, "priority_area"), f"unknown priority area {cell.priority_area!r}"
                )
            )
        if cell.service_area not in sa_ids:
            out.append(
                cdoc.problem((*path, "service_area"), f"unknown service area {cell.service_area!r}")
            )
        cell_key = (cell.priority_area, cell.service_area)
        if cell_key in seen_cells:
            out.append(cdoc.problem(path, f"duplicate cell {cell_key[0]} × {cell_key[1]}"))
        seen_cells.add(cell_key)
        check_text(cdoc, (*path, "goal"), cell.goal, required=True)
    for pa in cf.goal_matrix.priority_areas:
        for sa in cf.goal_matrix.service_areas:
            if (pa.id, sa.id) not in seen_cells:
                out.append(
                    cdoc.problem(
                        ("goal_matrix", "cells"),
                        f"missing cell {pa.id} × {sa.id}: every priority area needs a goal "
                        "for every service area",
                    )
                )

    # A cell of known areas: one missing from the matrix is reported there, once.
    matrix_cells = {(pa, sa) for pa in pa_ids for sa in sa_ids}
    _check_indicators(cf, cdoc, matrix_cells, languages, check_text, out)

    # Sessions.
    tz = config.tz
    year = cf.cycle.year
    local_starts: dict[int, datetime] = {}
    for si, s in enumerate(cf.sessions):
        path = ("sessions", si)
        if s.end <= s.start:
            out.append(cdoc.problem((*path, "end"), "the session ends before it starts"))
        start, end = _in_zone(s.start, tz), _in_zone(s.end, tz)
        if start is None or start.year != year:
            out.append(
                cdoc.problem((*path, "start"), f"the session is outside the cycle year {year}")
            )
        if start is not None:
            local_starts[si] = start
        for name, value, local in (("start", s.start, start), ("end", s.end, end)):
            expected = local.utcoffset() if local is not None else None
            if expected is not None and value.utcoffset() != expected:
                off_by = abs((value.utcoffset() or timedelta()) - expected)
                out.append(
                    cdoc.problem(
                        (*path, name),
                        f"offset {_fmt_offset(value.utcoffset())} is not {rf.region.timezone}'s "
                        f"offset on that day ({_fmt_offset(expected)}); the time is off by "
                        + ("an hour" if off_by == timedelta(hours=1) else _fmt_offset(off_by)[1:]),
                        severity="warning",
                    )
                )
        if s.kind == "group_session" and not s.group:
            out.append(cdoc.problem(path, "a group session needs a group"))
        if s.group and s.group not in group_ids:
            out.append(cdoc.problem((*path, "group"), f"unknown group {s.group!r}"))
        if s.title:
            check_text(cdoc, (*path, "title"), s.title)
    fb = cf.feedback
    if fb.deadline < fb.opens:
        out.append(cdoc.problem(("feedback", "deadline"), "the deadline is before the opening"))
    scheduled = [s for s in cf.sessions if s.status == "scheduled"]
    starts = [
        local_starts[i]
        for i, s in enumerate(cf.sessions)
        if s.status == "scheduled" and i in local_starts
    ]
    if starts:
        first = min(starts).date()
        if fb.deadline < first:
            out.append(
                cdoc.problem(
                    ("feedback", "deadline"),
                    f"the deadline {fb.deadline} is before the first session ({first})",
                )
            )

    if any(p.severity == "error" for p in out):
        return out
    # Warnings: legal, but likely a mistake.
    in_sessions = {m for s in scheduled if s.group for m in config.group(s.group).municipalities}
    for mi, muni in enumerate(rf.municipalities):
        if muni.id not in in_sessions:
            out.append(
                rdoc.problem(
                    ("municipalities", mi),
                    f"{localized(muni.name, config.language, config.language)} is in no session "
                    "this cycle",
                    severity="warning",
                )
            )
    if cf.feedback.check:
        out.append(cdoc.problem(("feedback", "check"), f"to check: {cf.feedback.check}", "warning"))
    for si, s in enumerate(cf.sessions):
        if s.check:
            out.append(cdoc.problem(("sessions", si, "check"), f"to check: {s.check}", "warning"))
        if s.status == "scheduled" and not config.invitees(s):
            out.append(
                cdoc.problem(
                    ("sessions", si),
                    f"session {s.id} has no contacts to invite",
                    severity="warning",
                )
            )
    return out


def _check_indicators(
    cf: CycleFile,
    cdoc: YamlDoc,
    cells: set[tuple[str, str]],
    languages: set[str],
    check_text: Any,
    out: list[Problem],
) -> None:
    """The indicators block: ids once, each one's source, and only known cells and ids.
    A label may be in more languages than the region's (THL publishes fi, sv and en)."""
    block = cf.indicators
    ids = _ids_checked(cdoc, ("indicators", "items"), block.items, out)
    path: tuple[str | int, ...]
    for i, item in enumerate(block.items):
        path = ("indicators", "items", i)
        if item.source == "sotkanet" and item.sotkanet is None:
            out.append(
                cdoc.problem(path, f"indicator {item.id} needs its Sotkanet id (sotkanet: 3342)")
            )
        if item.source != "sotkanet" and item.sotkanet is not None:
            out.append(
                cdoc.problem((*path, "sotkanet"), f"a Sotkanet id with source {item.source}")
            )
        for name in ("label", "unit"):
            text = getattr(item, name)
            if text:
                ours = {k: v for k, v in text.items() if k in languages or k == "*"}
                check_text(cdoc, (*path, name), ours or text, required=name == "label")
    for key, mapped in block.goal_cells.items():
        path = ("indicators", "goal_cells", key)
        pa, _, sa = key.partition("/")
        if (pa, sa) not in cells:
            out.append(
                cdoc.problem(
                    path,
                    f"unknown goal cell {key!r}: write priority-area/service-area, e.g. "
                    "arjen-turvallisuus/ikaantyneet",
                )
            )
        for j, ident in enumerate(mapped):
            if ident not in ids:
                out.append(
                    cdoc.problem(
                        (*path, j), f"unknown indicator {ident!r} (not in indicators.items)"
                    )
                )


def _ids_checked(doc: YamlDoc, path: tuple, items: list[Any], out: list[Problem]) -> set[str]:
    counts = Counter(i.id for i in items)
    for i, item in enumerate(items):
        if counts[item.id] > 1:
            out.append(doc.problem((*path, i, "id"), f"duplicate id {item.id!r} in {path[-1]}"))
    return set(counts)


def _in_zone(value: datetime, tz: ZoneInfo) -> datetime | None:
    """``value`` in the region's zone; None when that is out of range (year 1 or 9999)."""
    try:
        return value.astimezone(tz)
    except (OverflowError, ValueError):
        return None


def _fmt_offset(delta: timedelta | None) -> str:
    minutes = int((delta or timedelta()).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
