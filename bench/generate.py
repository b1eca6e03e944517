"""Synthetic regions for the benchmarks: S county config folders at the national average.

    .venv/bin/python bench/generate.py --scale 22 --out /tmp/regions [--seed 1]

Each folder is one wellbeing services county at the national average density (Finland's
totals / 22): 14 municipalities in 5 groups, 6 sessions (5 group sessions and a provider
forum), about 227 contacts, 4,500 feedback responses and 900 findings. Scale 22 is the
whole country, 88 four times it. The text is recombined from the example region's notes
and feedback (``config/examples/keski-suomi-2025``): the same themes recur across groups
in other wordings and inflections, so the compilation's merging and classification do real
work. Names carry ä, ö and å; every address is on a reserved ``*.example`` domain. The
output is deterministic for a seed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import re
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "examples" / "keski-suomi-2025"
TZ = ZoneInfo("Europe/Helsinki")
YEAR = 2025

MUNICIPALITIES = 14  # 308 / 22
GROUP_SIZES = (3, 3, 3, 3, 2)  # 5 groups: 5 group sessions + the provider forum = 6 sessions
FEEDBACK = 4500  # 100,000 / 22
CELL_FINDINGS = 11  # per group session and goal cell: 5 × 15 × 11 + the rest ≈ 900
FORUM_FINDINGS = 20
STAKEHOLDER_REMARKS = 8
GENERAL = 3
# Contacts per organisation: 14 × 5 + 40 × 2 + 14 + 3 × 3 + 5 × 4 + 17 × 2 = 227.
MUNICIPALITY_CONTACTS = 5
NGOS, NGO_CONTACTS = 40, 2
EMPLOYMENT_AREAS, EMPLOYMENT_CONTACTS = 3, 3
COUNTY_UNIT_CONTACTS = 4
COMPANIES, COMPANY_CONTACTS = 17, 2


def words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Place names: a Finnish stem and a head word (nominative, genitive); Swedish ones too.
STEMS = words(
    "Kivi Mänty Koivu Petäjä Kuusi Honka Haapa Tammi Raja Kesä Talvi Kulta Rauta Ilo Sini "
    "Valko Musta Puna Sää Hirvi Karhu Kettu Joutsen Pyhä Iso Ala Ylä Kanto Sammal Kärkö "
    "Pölkky Tähti Kuore Ahven Siika Lohi Hauki Kaski Niittu Pelto Ruis Kaura Pähkinä Mökki "
    "Sävi Ääri Övre Hämy Lähde Räme Kämmen Nälkä Syvä Leppä"
)
HEADS = (
    ("koski", "kosken"), ("järvi", "järven"), ("lahti", "lahden"), ("saari", "saaren"),
    ("niemi", "niemen"), ("mäki", "mäen"), ("salmi", "salmen"), ("vesi", "veden"),
    ("lampi", "lammen"), ("harju", "harjun"), ("joki", "joen"), ("kylä", "kylän"),
    ("maa", "maan"), ("virta", "virran"), ("ranta", "rannan"), ("linna", "linnan"),
    ("vaara", "vaaran"), ("kangas", "kankaan"), ("salo", "salon"), ("puro", "puron"),
    ("lehto", "lehdon"), ("selkä", "selän"), ("kallio", "kallion"), ("suo", "suon"),
    ("aho", "ahon"), ("nummi", "nummen"), ("rinne", "rinteen"),
)  # fmt: skip
SWEDISH_STEMS = words("Åker Ström Kron Sand Lill Stor Mal Öster Väster Nor Björk Ås")
SWEDISH_HEADS = (("by", "byn"), ("vik", "vikin"), ("fors", "forsin"), ("holm", "holmin"),
                 ("sund", "sundin"), ("näs", "näsin"), ("berg", "bergin"))  # fmt: skip
DIRECTIONS = ("Itä-", "Länsi-", "Pohjois-", "Etelä-", "Keski-", "Vanha-", "Uusi-")

FIRST_NAMES = words(
    "Päivi Jyrki Sari Tiina Mikko Anu Eija Jari Heli Marjut Timo Leena Katja Petri Johanna "
    "Antti Riikka Minna Outi Seppo Hanna Satu Ville Pirjo Marja Kaisa Elina Tuomas Laura "
    "Raija Jussi Kirsi Markus Anneli Niina Harri Tarja Merja Jenni Olli Helena Tiia Janne "
    "Essi Kalle Åsa Björn Sölve Märta Jörgen Väinö Ilmari Aino Hertta Lyydia Säde Yrjö"
)
SURNAMES = words(
    "Mäkelä Lehtonen Hämäläinen Järvinen Pöyhönen Kärkkäinen Nieminen Mäkinen Kokkonen "
    "Salminen Räsänen Hyvönen Virtanen Heikkinen Väisänen Lähteenmäki Mäntylä Kärnä Pesonen "
    "Kämäräinen Jääskeläinen Hänninen Kinnunen Möttönen Tähtinen Pöllänen Räty Kähkönen "
    "Söderholm Mönkkönen Ylönen Hölttä Väätäinen Pääkkönen Kettunen Lämsä Hietanen Koivisto "
    "Särkkä Räisänen Mäkäräinen Häkkinen Pylkkänen Lindström Åberg Öhman Ström Kärppä "
    "Tuominen Välimäki Östman Häyrinen Löppönen Sjöblom Äijälä Ylä-Outinen Nyström"
)
MUNICIPALITY_ROLES = ("hyte_coordinator", "hyte_coordinator", "sivistystoimi", "liikunta",
                      "tekninen_toimi")  # fmt: skip
NGO_KINDS = (
    "Omaishoitajat", "Nuorisoseura", "Eläkeläiset", "Liikuntaseura", "Mielenterveysyhdistys",
    "Kyläyhdistys", "Vanhempainyhdistys", "Sydänyhdistys", "Invalidiyhdistys", "Martat",
    "Partiolaiset", "Näkövammaiset", "Kuurojen yhdistys", "Ystäväpalvelu", "Urheiluseura",
)  # fmt: skip
COUNTY_UNITS = (
    "Hyvinvointi ja kumppanuus", "Lasten, nuorten ja perheiden palvelut", "Työikäisten palvelut",
    "Ikääntyneiden palvelut", "Vammaispalvelut",
)  # fmt: skip
COMPANY_KINDS = ("Hoivakoti", "Kotipalvelu", "Liikuntakeskus", "Terveyspalvelu", "Kuntoutus",
                 "Fysioterapia", "Palvelutalo", "Työterveys")  # fmt: skip
COMPANY_NAMES = ("Kataja", "Arjen Apu", "Vire", "Saarni", "Kielo", "Pihlaja", "Lumme",
                 "Mesikkä", "Kätevä", "Syli", "Ässä", "Öljypuu", "Åkervikin Hoiva")  # fmt: skip

# Seed phrases (the county's summary slides) beyond the example notes, per service area.
SEED_PHRASES = {
    "lapset-nuoret-perheet": [
        "Koulupudokkaat ja NEET-nuoret", "Neuvolapalveluiden saavutettavuus",
        "Nuorten vapaa-ajan ilmiöiden hallinta, häiriökäyttäytyminen",
        "Perhekeskusten roolin selkiyttäminen ja yhteiset toimintamallit kuntien kanssa",
        "Ryhmäytymisen tukeminen", "Kiusaamisen ja väkivallan ehkäisy",
    ],
    "tyoikaiset": [
        "Korkea työttömyys sekä pitkäaikaistyöttömyys", "Työkyvyn tuen tiimien kehittäminen",
        "Työllisyysalueen ja kuntien yhteiset toimintamallit",
        "Työikäisten mielenterveyden tukeminen ryhmätoiminnalla",
    ],
    "ikaantyneet": [
        "Kaatumisten ennaltaehkäisy", "Yhteinen tietopohja kaatumisten syistä",
        "Lääkityksen vaikutus kaatumisiin", "Yksinäisyyden ja osattomuuden ehkäisy",
        "Etsivän vanhustyön tarve", "Seniorineuvolatoiminnan kehittäminen",
    ],
    "vammaispalvelut": [
        "Esteettömyys ja katuvalaistus", "Vammaisten osallisuuden tukeminen",
        "Esteettömyys tapahtumissa", "Liikkumisen esteiden vaikutukset kuljetuspalveluihin",
        "Esteettömät liikuntalajikokeilut sekä harrastusmahdollisuudet",
    ],
    "terveydenhuolto": [
        "Lähisuhdeväkivallan ja kaltoinkohtelun tunnistaminen", "Jalkautuva toiminta neuvonnassa",
        "Liikuntaneuvonnan ja elämäntapaohjauksen yhteistyön kehittäminen",
        "Potilasjärjestöjen ja hyvinvointialueen yhteistyön vahvistaminen",
    ],
}  # fmt: skip
# Ways a secretary writes the same theme down: the compilation must see through them.
FRAMES = (
    "{x}", "{x}", "{x}", "{x} kaikissa kunnissa", "Tarve: {x_lower}", "Huolena {x_lower}",
    "{x} – yhteistyö järjestöjen kanssa", "{x} myös pienissä kunnissa", "Toive: {x_lower}",
    "{x} ({municipality})", "Keskustelussa nousi esiin: {x_lower}",
)  # fmt: skip
# Inflection and compound variants that the Finnish stemmer and same_word must match.
VARIANTS = (
    ("ehkäisy", "ennaltaehkäisy"), ("Yhteistyö ", "Yhteistyön vahvistaminen: "),
    ("palvelujen", "palveluiden"), ("nuorten", "nuorille"), ("Nuorten", "Nuorille"),
    ("ikääntyneiden", "ikääntyneille"), ("Ikääntyneiden", "Ikääntyneille"),
    ("tukeminen", "tukemista"), ("vahvistaminen", "vahvistamista"), ("kuntien", "kunnissa"),
    ("järjestöjen", "järjestöt"), ("lisääminen", "lisäämistä"), ("kanssa", "kanssa yhdessä"),
)  # fmt: skip
FEEDBACK_TAILS = (
    "", "", "", " Toivomme, että tämä kirjataan hyvinvointisuunnitelmaan.",
    " Asia koskee koko kuntaa.", " Tähän tarvitaan rahoitusta myös ensi vuonna.",
    " Yhteistyö hyvinvointialueen kanssa on tässä avainasemassa.",
    " Kiitos mahdollisuudesta kommentoida!", " Järjestöt voivat auttaa tässä.",
    " Pienissä kunnissa tilanne on vaikein.", " Seurakunta on valmis yhteistyöhön.",
)  # fmt: skip
FEEDBACK_OPENINGS = ("", "", "", "Meidän kunnassamme ", "Mielestäni ", "Huomiona: ",
                     "Kokemukseni mukaan ", "Toivon, että ")  # fmt: skip


@dataclass
class Bank:
    """The example's texts, per goal cell (``pa/sa``) and kind."""

    cells: dict[str, list[str]] = field(default_factory=dict)
    feedback: dict[str, list[str]] = field(default_factory=dict)  # "" = no cell named
    general: list[str] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)


@dataclass
class Place:
    name: str
    genitive: str
    key: str


def slug(text: str) -> str:
    folded = text.lower().translate(str.maketrans("äöåé", "aoae"))
    return re.sub(r"[^a-z0-9]+", "-", folded).strip("-")


def quoted(text: str) -> str:
    """A YAML double-quoted scalar (a JSON string is one)."""
    return json.dumps(text, ensure_ascii=False)


def load_bank(example: Path = EXAMPLE) -> tuple[Bank, str]:
    """The phrase bank and the example's cycle.yaml (its goal matrix is reused)."""
    bank = Bank()
    cycle_text = (example / "cycle.yaml").read_text(encoding="utf-8")
    cycle = yaml.safe_load(cycle_text)
    names = {a["name"]["fi"]: a["id"] for a in cycle["goal_matrix"]["priority_areas"]}
    names |= {a["name"]["fi"]: a["id"] for a in cycle["goal_matrix"]["service_areas"]}
    for cell in cycle["goal_matrix"]["cells"]:
        key = f"{cell['priority_area']}/{cell['service_area']}"
        bank.cells[key] = list(SEED_PHRASES.get(cell["service_area"], []))[:3]
        bank.feedback[key] = []
    bank.feedback[""] = []
    for path in sorted((example / "notes").glob("*.yaml")):
        notes = yaml.safe_load(path.read_text(encoding="utf-8"))
        bank.general += notes.get("general") or []
        bank.remarks += notes.get("stakeholder_remarks") or []
        for cell in notes.get("findings") or []:
            bank.cells[f"{cell['priority_area']}/{cell['service_area']}"] += cell["items"]
    for path in sorted((example / "feedback").glob("*.csv")):
        rows = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")), delimiter=";")
        for row in rows:
            pa, sa = names.get(row["Painopiste"] or ""), names.get(row["Palvelualue"] or "")
            bank.feedback[f"{pa}/{sa}" if pa and sa else ""].append(row["Näkemys"])
    for key, texts in bank.feedback.items():  # every cell gets feedback-like texts too
        texts += [t.rstrip(".") + "." for t in bank.cells.get(key, [])]
    return bank, cycle_text


def place_names(rng: random.Random, count: int) -> list[Place]:
    """``count`` distinct municipality names (ids distinct too), in a seeded order."""
    finnish = [(s + h, s + g) for s in STEMS for h, g in HEADS]
    swedish = [(s + h, s + g) for s in SWEDISH_STEMS for h, g in SWEDISH_HEADS]
    base = finnish + swedish
    rng.shuffle(base)
    pool = base + [(d + n, d + g) for d in DIRECTIONS for n, g in base]
    out: list[Place] = []
    seen: set[str] = set()
    for name, genitive in pool:
        name = name[0] + name[1:].lower() if "-" not in name else name
        key = slug(name)
        if key in seen:
            continue
        seen.add(key)
        out.append(Place(name, genitive[0] + genitive[1:].lower(), key))
        if len(out) == count:
            return out
    raise ValueError(f"at most {len(out)} distinct municipality names")


class People:
    """Distinct person names and addresses, across all regions."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.emails: set[str] = set()

    def contact(self, domain: str, role: str) -> str:
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(SURNAMES)
        local = f"{slug(first)}.{slug(last)}"
        email, n = f"{local}@{domain}", 1
        while email in self.emails:
            n += 1
            email = f"{local}{n}@{domain}"
        self.emails.add(email)
        return (
            f"      - {{name: {quoted(first + ' ' + last)}, email: {email}, "
            f"role: {role}, language: fi}}"
        )


@dataclass
class Region:
    index: int
    key: str
    name: str
    places: list[Place]
    groups: list[list[Place]]
    orgs: list[tuple[str, str, str, list[str]]] = field(default_factory=list)  # id, type, name
    sessions: list[tuple[str, int | None, datetime]] = field(default_factory=list)


def region_yaml(region: Region, people: People, rng: random.Random) -> str:
    domain = f"{region.key}.example"
    lines = [
        f"# Synthetic region {region.index + 1} for the benchmarks (bench/generate.py).",
        "region:",
        f"  id: {region.key}",
        f"  name: {{fi: {quoted(region.name)}}}",
        "  timezone: Europe/Helsinki",
        "  languages: [fi]",
        f"  sender: {{name: {quoted(region.name + ', hyvinvointi ja kumppanuus')}, "
        f"email: hyte@{domain}}}",
        f'  contact: {{name: "Hyte-koordinaattori", email: hyte@{domain}, '
        f'phone: "+358 40 000 {region.index % 10000:04d}"}}',
        "",
        "municipalities:",
    ]
    for p in region.places:
        lines += [
            f"  - id: {p.key}",
            f"    name: {{fi: {quoted(p.name)}}}",
            f"    registry: kirjaamo@{p.key}.example",
            "    contacts:",
        ]
        lines += [
            people.contact(f"{p.key}.example", MUNICIPALITY_ROLES[i])
            for i in range(MUNICIPALITY_CONTACTS)
        ]
    lines.append("\ngroups:")
    for members in region.groups:
        lines += [
            f"  - id: {'-'.join(p.key for p in members)}",
            f"    name: {{fi: {quoted(group_name(members))}}}",
            f"    municipalities: [{', '.join(p.key for p in members)}]",
        ]
    lines.append("\nstakeholders:")
    for key, kind, name, where in stakeholders(region, rng):
        count = {
            "ngo": NGO_CONTACTS,
            "parish": 1,
            "employment_area": EMPLOYMENT_CONTACTS,
            "county_unit": COUNTY_UNIT_CONTACTS,
            "company": COMPANY_CONTACTS,
        }[kind]
        role = {"employment_area": "employment", "county_unit": "county"}.get(kind, kind)
        lines += [
            f"  - id: {key}",
            f"    type: {kind}",
            f"    name: {{fi: {quoted(name)}}}",
            f"    municipalities: [{', '.join(where)}]",
            "    contacts:",
        ]
        dom = domain if kind == "county_unit" else f"{key}.example"
        lines += [people.contact(dom, role) for _ in range(count)]
        region.orgs.append((key, kind, name, where))
    return "\n".join(lines) + "\n"


def group_name(members: list[Place]) -> str:
    names = [p.name for p in members]
    return ", ".join(names[:-1]) + " ja " + names[-1]


def stakeholders(region: Region, rng: random.Random) -> list[tuple[str, str, str, list[str]]]:
    out: list[tuple[str, str, str, list[str]]] = []
    r = region.key
    for i in range(NGOS):
        kind = NGO_KINDS[i % len(NGO_KINDS)]
        if i < 5:  # regional NGOs work everywhere
            name = f"{region.places[i].genitive} seudun {kind} ry"
            out.append((f"{r}-{slug(kind)}-{i}", "ngo", name, []))
        else:
            p = region.places[i % len(region.places)]
            out.append((f"{p.key}-{slug(kind)}-{i}", "ngo", f"{p.genitive} {kind} ry", [p.key]))
    for p in region.places:
        out.append((f"{p.key}-seurakunta", "parish", f"{p.genitive} seurakunta", [p.key]))
    for i in range(EMPLOYMENT_AREAS):
        members = region.places[i::EMPLOYMENT_AREAS]
        name = f"{members[0].genitive} seudun työllisyysalue"
        out.append((f"{members[0].key}-tyollisyysalue", "employment_area", name,
                    [p.key for p in members]))  # fmt: skip
    for unit in COUNTY_UNITS:
        out.append((f"{r}-{slug(unit)}", "county_unit", unit, []))
    for i in range(COMPANIES):
        name = f"{COMPANY_KINDS[i % len(COMPANY_KINDS)]} {rng.choice(COMPANY_NAMES)} Oy"
        out.append((f"{r}-{slug(name)}-{i}", "company", name, []))
    return out


def session_days(index: int) -> list[date]:
    """Five group sessions a week apart from late October, the forum in early December;
    regions are spread over the weekdays so their ticks do not all fall on the same days."""
    first = date(YEAR, 10, 20) + timedelta(days=index % 5)
    days = [first + timedelta(days=7 * i) for i in range(len(GROUP_SIZES))]
    return [*days, date(YEAR, 12, 1) + timedelta(days=index % 5)]


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=TZ)


def cycle_yaml(region: Region, example_cycle: str) -> str:
    matrix = example_cycle.partition("goal_matrix:")[2].partition("\nsessions:")[0]
    days = session_days(region.index)
    lines = [
        f"# Synthetic 2025 cycle of {region.name} (bench/generate.py).",
        "cycle:",
        f"  year: {YEAR}",
        f"  title: {{fi: {quoted('Hyvinvoinnin, terveyden ja turvallisuuden edistämisen neuvottelut 2025')}}}",  # noqa: E501
        '  plan_period: "2026–2029"',
        f'  reference: "{region.key.upper()}/{100 + region.index}/00.00.01/2025"',
        "  invitation_lead_days: 21",
        "  common_threshold: 2",
        "",
        "feedback:",
        f"  opens: {days[0].isoformat()}",
        f"  deadline: {date(YEAR, 12, 19).isoformat()}",
        f"  url: https://palaute.{region.key}.example/hytetu-2025",
        "",
        "goal_matrix:" + matrix.rstrip(),
        "",
        "sessions:",
    ]
    for i, members in enumerate(region.groups):
        key = f"{days[i].isoformat()}-{members[0].key}"
        region.sessions.append((key, i, local(days[i], 9)))
        lines += session_lines(key, days[i], 9, 11, region.key)
        lines += [
            f"    group: {'-'.join(p.key for p in members)}",
            "    invite: [ngo, parish, employment_area, county_unit]",
        ]
    key = f"{days[-1].isoformat()}-{region.key}-palveluntuottajafoorumi"
    region.sessions.append((key, None, local(days[-1], 13)))
    lines += session_lines(key, days[-1], 13, 15, region.key)
    lines += [
        "    kind: provider_forum",
        '    title: {fi: "Palveluntuottajafoorumi"}',
        "    invite: [company, county_unit]",
    ]
    return "\n".join(lines) + "\n"


def session_lines(key: str, day: date, start: int, end: int, region_key: str) -> list[str]:
    return [
        f"  - id: {key}",
        f"    start: {local(day, start).isoformat()}",
        f"    end: {local(day, end, 30).isoformat()}",
        f"    online_url: https://teams.{region_key}.example/l/meetup-join/{key}",
        "    place: null",
        "    status: scheduled",
    ]


def variant(text: str, rng: random.Random, municipality: str) -> str:
    """The same theme in another wording: a frame, maybe an inflection or compound variant."""
    for old, new in VARIANTS:
        if old in text and rng.random() < 0.3:
            text = text.replace(old, new, 1)
    frame = rng.choice(FRAMES)
    lower = text[0].lower() + text[1:] if text[1:2].islower() else text
    return frame.format(x=text, x_lower=lower, municipality=municipality)


def own_emphasis(texts: list[str], rng: random.Random) -> str:
    """A group's own wording: the head of one finding joined to the tail of another."""
    a, b = rng.sample(texts, 2) if len(texts) > 1 else (texts[0], texts[0])
    head = re.split(r" – |: |, | ja ", a)[0]
    tail = re.split(r" – |: |, | ja ", b)[-1]
    return f"{head} ja {tail[0].lower() + tail[1:]}" if tail and head != tail else head


def cell_items(texts: list[str], count: int, rng: random.Random, municipality: str) -> list[str]:
    items: list[str] = []
    while len(items) < count:
        if rng.random() < 0.25:
            text = own_emphasis(texts, rng)
        else:
            text = variant(rng.choice(texts), rng, municipality)
        if text not in items:
            items.append(text)
    return items


def notes_yaml(
    region: Region, session: str, group: int | None, bank: Bank, rng: random.Random
) -> str:
    members = region.groups[group] if group is not None else []
    lines = [f"session: {session}", "attendees:"]
    if members:
        lines += [
            f"  - {{organisation: {quoted(p.genitive + ' kunta')}, type: municipality, "
            f"count: {rng.randint(1, 3)}}}"
            for p in members
        ]
    for _key, kind, name, works_in in region.orgs:
        invited = (
            kind in ("ngo", "parish", "employment_area", "county_unit")
            if members
            else (kind in ("company", "county_unit"))
        )
        near = not works_in or any(p.key in works_in for p in members) or not members
        if invited and near and rng.random() < 0.4:
            lines.append(f"  - {{organisation: {quoted(name)}, type: {kind}, count: 1}}")
    lines.append("general:")
    lines += [f"  - {quoted(t)}" for t in rng.sample(bank.general, GENERAL)]
    lines.append("findings:")
    cells = list(bank.cells)
    per_cell = {c: CELL_FINDINGS for c in cells} if members else {}
    for _ in range(0 if members else FORUM_FINDINGS):
        c = rng.choice(cells)
        per_cell[c] = per_cell.get(c, 0) + 1
    where = members[0].name if members else region.name
    for cell, count in per_cell.items():
        pa, sa = cell.split("/")
        lines += [f"  - priority_area: {pa}", f"    service_area: {sa}", "    items:"]
        lines += [f"      - {quoted(t)}" for t in cell_items(bank.cells[cell], count, rng, where)]
    lines.append("stakeholder_remarks:")
    if members:
        remarks = [
            variant(rng.choice(bank.remarks), rng, where) for _ in range(STAKEHOLDER_REMARKS)
        ]
        lines += [f"  - {quoted(t)}" for t in dict.fromkeys(remarks)]
    else:
        lines[-1] += " []"
    return "\n".join(lines) + "\n"


PA_NAMES = {
    "arjen-turvallisuus": "Arjen turvallisuuden edistäminen",
    "mielen-hyvinvointi": "Mielen hyvinvoinnin edistäminen",
    "liikunnallinen-elamantapa": "Liikunnallisen elämäntavan edistäminen",
}
SA_NAMES = {
    "lapset-nuoret-perheet": "Lasten, nuorten ja perheiden palvelut",
    "tyoikaiset": "Työikäisten palvelut",
    "ikaantyneet": "Ikääntyneiden palvelut",
    "vammaispalvelut": "Vammaispalvelut",
    "terveydenhuolto": "Terveydenhuolto",
}
TYPE_NAMES = {
    "municipality": "Kunta",
    "ngo": "Järjestö",
    "parish": "Seurakunta",
    "employment_area": "Työllisyysalue",
    "county_unit": "Hyvinvointialue",
    "company": "Yritys",
}
HEADER = ["Vastaustunniste", "Vastausaika", "Organisaatio", "Vastaajan tyyppi",
          "Kunta tai kuntaryhmä", "Painopiste", "Palvelualue", "Näkemys", "Sähköposti"]  # fmt: skip


def feedback_rows(region: Region, bank: Bank, rng: random.Random) -> list[list[str]]:
    """The form's responses: ~1 % after the deadline, ~30 % name no goal cell (the
    compilation suggests one), the rest a cell; organisations and residents mixed."""
    opens = session_days(region.index)[0]
    days = (date(YEAR, 12, 20) - opens).days
    cells = [c for c in bank.feedback if c]
    rows: list[list[str]] = []
    seen: set[tuple[str, str, str]] = set()
    number = 1000
    while len(rows) < FEEDBACK:
        late = rng.random() < 0.01
        day = opens + timedelta(days=rng.randrange(days, days + 3) if late else rng.randrange(days))
        at = local(day, rng.randint(7, 21)) + timedelta(seconds=rng.randrange(3600))
        key, kind, org, where = responder(region, rng)
        cell = rng.choice(cells) if rng.random() < 0.7 else ""
        pool = bank.feedback[cell] or bank.feedback[""]
        text = feedback_text(rng.choice(pool), rng)
        stamp = at.strftime("%d.%m.%Y %H:%M:%S")
        if (stamp, org, text) in seen:
            continue
        seen.add((stamp, org, text))
        pa, sa = cell.split("/") if cell else ("", "")
        email = f"{slug(key)}@{key}.example" if key and rng.random() < 0.3 else ""
        number += 1
        rows.append([str(number), stamp, org, TYPE_NAMES.get(kind, "Asukas"), where,
                     PA_NAMES.get(pa, ""), SA_NAMES.get(sa, ""), text, email])  # fmt: skip
    rows.sort(key=lambda r: datetime.strptime(r[1], "%d.%m.%Y %H:%M:%S"))
    return rows


def responder(region: Region, rng: random.Random) -> tuple[str, str, str, str]:
    """(org key, type, organisation, municipality column) of one respondent."""
    roll = rng.random()
    if roll < 0.35:
        p = rng.choice(region.places)
        return p.key, "municipality", f"{p.genitive} kunta", p.name
    if roll < 0.65:
        p = rng.choice(region.places)
        return "", "resident", "", rng.choice((p.name, p.key, "Koko alue"))
    key, kind, name, where = rng.choice(region.orgs)
    if not where:
        return key, kind, name, "Koko alue"
    group = next((g for g in region.groups if where[0] in {p.key for p in g}), None)
    place = next(p for p in region.places if p.key == where[0])
    return key, kind, name, group_name(group) if group and rng.random() < 0.2 else place.name


def feedback_text(base: str, rng: random.Random) -> str:
    opening = rng.choice(FEEDBACK_OPENINGS)
    text = base[0].lower() + base[1:] if opening and base[1:2].islower() else base
    return (opening + text).rstrip() + rng.choice(FEEDBACK_TAILS)


def write_feedback(folder: Path, rows: list[list[str]]) -> None:
    """Two exports, as a county would download them: a Webropol CSV (;, BOM) and a later
    one of the rest (tab-separated)."""
    folder.mkdir(parents=True, exist_ok=True)
    half = len(rows) * 2 // 3
    for name, part, delimiter in (
        ("webropol-vastaukset.csv", rows[:half], ";"),
        ("webropol-vastaukset-2.csv", rows[half:], "\t"),
    ):
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
        writer.writerow(HEADER)
        writer.writerows(part)
        (folder / name).write_text("\ufeff" + buf.getvalue(), encoding="utf-8")


def make_regions(scale: int, seed: int) -> list[Region]:
    rng = random.Random(seed)
    places = place_names(rng, scale * MUNICIPALITIES)
    regions = []
    for i in range(scale):
        mine = places[i * MUNICIPALITIES : (i + 1) * MUNICIPALITIES]
        groups, at = [], 0
        for size in GROUP_SIZES:
            groups.append(mine[at : at + size])
            at += size
        groups[-1] = groups[-1] + mine[at:]  # the remainder joins the last group
        key = f"hva-{i + 1:02d}-{mine[0].key}"
        regions.append(Region(i, key, f"{mine[0].genitive} hyvinvointialue", mine, groups))
    return regions


def generate(scale: int, out: Path, seed: int = 1, example: Path = EXAMPLE) -> list[Path]:
    """Write ``scale`` region folders under ``out``; returns them."""
    bank, example_cycle = load_bank(example)
    people = People(random.Random(seed + 1))
    folders = []
    for region in make_regions(scale, seed):
        rng = random.Random(f"{seed}-{region.key}")
        folder = out / region.key
        (folder / "notes").mkdir(parents=True, exist_ok=True)
        (folder / "region.yaml").write_text(region_yaml(region, people, rng), encoding="utf-8")
        (folder / "cycle.yaml").write_text(cycle_yaml(region, example_cycle), encoding="utf-8")
        for session, group, _ in region.sessions:
            text = notes_yaml(region, session, group, bank, rng)
            (folder / "notes" / f"{session}.yaml").write_text(text, encoding="utf-8")
        write_feedback(folder / "feedback", feedback_rows(region, bank, rng))
        folders.append(folder)
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=1, help="regions (22 = all of Finland)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    folders = generate(args.scale, args.out, args.seed)
    seconds = time.perf_counter() - started
    print(f"{len(folders)} regions in {args.out} ({seconds:.1f} s)")


if __name__ == "__main__":
    main()
