"""The coordinator's approval of the memos, independent of Prefect: what the form asks, in
the region's language, and how its answer becomes decisions.

The form (``flows/approval.py`` builds its Prefect model from :func:`form_items`) has one
field per memo, titled with the memo's name; the version id is only in the field's key, so
nobody types or sees it. Each memo gets a choice of approve / reject / not yet and a
comment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hytetu import db
from hytetu.memos import Decision, document_title, drafts
from hytetu.reports import document_url
from hytetu.state import cycle_view

# The choice per memo, in the form's language: (approve, reject, not yet).
CHOICES = {
    "fi": ("hyväksy", "hylkää", "ei vielä"),
    "sv": ("godkänn", "avslå", "inte än"),
}

TEXTS = {
    "fi": {
        "intro": (
            "Lue jokainen muistio (linkit alla ja tämän ajon artefakteissa), valitse sille "
            "”hyväksy”, ”hylkää” tai ”ei vielä” ja lähetä lomake. Vain hyväksytyt "
            "muistiot lähetetään kirjaamoihin; hylätty versio ei lähde koskaan. "
            "Ajo odottaa vastaustasi {days} päivää, viimeistään {until}."
        ),
        "reviewer": "Nimesi",
        "reviewer_help": "Tallennetaan jokaisen päätöksen yhteyteen.",
        "approve_all": "Hyväksy kaikki muistiot, joita ei ole alla hylätty",
        "approve_all_help": "Kun tämä on valittu, ”ei vielä” tarkoittaa hyväksyntää.",
        "comment": "Yleinen kommentti",
        "comment_help": "Tallennetaan jokaiseen päätökseen, jolla ei ole omaa kommenttia.",
        "decision": "Päätös",
        "memo_comment": "Kommentti (esim. mitä korjataan)",
        "memo_help": "Versio {number}, tiedosto {filename}. Avaa: {link}",
    },
    "sv": {
        "intro": (
            "Läs varje promemoria (länkarna nedan och i körningens artefakter), välj "
            "”godkänn”, ”avslå” eller ”inte än” för den och skicka formuläret. Endast "
            "godkända promemorior skickas till registratorskontoren; en avslagen version "
            "skickas aldrig. Körningen väntar på ditt svar i {days} dagar, senast {until}."
        ),
        "reviewer": "Ditt namn",
        "reviewer_help": "Sparas med varje beslut.",
        "approve_all": "Godkänn alla promemorior som inte avslås nedan",
        "approve_all_help": "När detta är valt betyder ”inte än” godkännande.",
        "comment": "Allmän kommentar",
        "comment_help": "Sparas med varje beslut som saknar egen kommentar.",
        "decision": "Beslut",
        "memo_comment": "Kommentar (t.ex. vad som ska rättas)",
        "memo_help": "Version {number}, fil {filename}. Öppna: {link}",
    },
}


def form_language(language: str) -> str:
    """The form's language: the region's first language where the form speaks it."""
    return language if language in TEXTS else "fi"


@dataclass(frozen=True)
class FormItem:
    """One memo on the form."""

    version_id: int
    title: str
    filename: str
    number: int
    link: str

    @property
    def key(self) -> str:
        """The form field's key; stable while the same version waits."""
        return f"memo_{self.version_id}"


def form_items(url: str | None = None, region: str | None = None) -> tuple[str, list[FormItem]]:
    """The form's language and one item per draft waiting for a decision."""
    with db.session_scope(url) as s:
        view = cycle_view(s, region)
        lang = form_language(view.language)
        items = [
            FormItem(
                v.id,
                document_title(view, v.memo),
                v.filename,
                v.number,
                document_url(v.id, v.filename, region),
            )
            for v in drafts(view)
        ]
    return lang, items


def decisions_from(answer: dict[str, Any], items: list[FormItem], lang: str) -> list[Decision]:
    """The form's answer as decisions: approve or reject per memo. 'Not yet' decides
    nothing, unless ``approve_all`` is ticked: then ``record_review`` approves it."""
    approve, reject, _ = CHOICES[lang]
    out = []
    for item in items:
        given = answer.get(item.key) or {}
        choice = given.get("decision")
        comment = (given.get("comment") or "").strip() or None
        if choice in (approve, reject):
            out.append(Decision(item.version_id, choice == approve, comment))
    return out


EXPIRED, FAILED = "expired", "failed"


def failure_markdown(kind: str, detail: str, run: str | None = None) -> str:
    """Why a review ended without decisions, in Finnish and Swedish, and what to do.
    ``detail``: the error's own words (``FAILED``), or the days waited (``EXPIRED``)."""
    where = f" ({run})" if run else ""
    if kind == EXPIRED:
        fi = (
            f"Muistioiden tarkistus{where} päättyi: kukaan ei vastannut lomakkeeseen ajoissa. "
            "Muistioita ei hyväksytty eikä lähetetty. Päivittäinen ajo aloittaa uuden "
            "tarkistuksen; vastaa sen lomakkeeseen Prefectissa."
        )
        sv = (
            f"Granskningen av promemoriorna{where} avslutades: ingen svarade på formuläret "
            "i tid. Inga promemorior godkändes eller skickades. Den dagliga körningen "
            "startar en ny granskning; svara på dess formulär i Prefect."
        )
        title = "Tarkistus vanheni / Granskningen gick ut"
    else:
        fi = (
            f"Muistioiden tarkistus{where} epäonnistui, eikä päätöksiä tallennettu. Syy on "
            "alla. Korjaa syy ja aloita tarkistus uudelleen (review-memos)."
        )
        sv = (
            f"Granskningen av promemoriorna{where} misslyckades och inga beslut sparades. "
            "Orsaken står nedan. Rätta orsaken och starta granskningen igen (review-memos)."
        )
        title = "Tarkistus epäonnistui / Granskningen misslyckades"
    return "\n".join([f"# {title}", "", fi, "", sv, "", "```", detail, "```", ""])
