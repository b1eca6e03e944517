"""A finding's words as tokens: lemma, roots and head.

Finnish goes through Voikko (the Finnish morphology of LibreOffice and the Finnish
spell-checkers; Debian's ``libvoikko1`` and ``voikko-fi``), which gives each word its base
form and the base forms of its compound parts and derivations: "kaatumistapaturmien" is
the lemma ``kaatumistapaturma`` with roots ``kaatua``, ``tapa``, ``turma``;
"ennaltaehkäiseminen" is ``ennaltaehkäistä`` with roots ``ennalta`` and ``ehkäistä``.
Swedish, and Finnish where Voikko is not installed, goes through Snowball's stemmer; a
Swedish compound's head is found as a suffix ("skolhälsovård" ends in "hälsovård").
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import snowballstemmer

log = logging.getLogger(__name__)

# Voikko's word classes that carry no topic: conjunctions, adpositions, pronouns,
# the negation verb, interjections.
_FUNCTION_CLASSES = frozenset(
    {"sidesana", "suhdesana", "asemosana", "kieltosana", "huudahdussana", "lukusana"}
)
# Abbreviations and verbs of no content that minutes are full of.
_FI_STOP_TEXT = "esim mm yms jne ns ym ks eli tms olla tulla voida pitää"
_FI_STOP = frozenset(_FI_STOP_TEXT.split())
_SV_STOP_TEXT = """och i att det som en ett på är av för med till den de har inte om men var sig så
    vid kan ska skall bör eller från mellan även samt t ex bl a m fl etc genom under
    efter hos inom mot utan vilket vilka vara bli blir finns behövs behöver mer mycket
    också både alla andra deras dess dem detta dessa där här när hur vad man vi
    """
_SV_STOP = frozenset(_SV_STOP_TEXT.split())
# Swedish words that Finnish lacks: a text holding them (and few words Voikko knows) is
# Swedish.
_SV_MARKER_TEXT = "och att som för med till av är på det inte eller samt även"
_SV_MARKERS = frozenset(_SV_MARKER_TEXT.split())

_WORD = re.compile(r"[^\W\d_]+(?::[^\W\d_]{1,4})?")


@dataclass(frozen=True)
class Token:
    """One content word. ``roots`` always holds ``lemma``; ``head`` is the base of the last
    compound part (the lemma itself for a simple word)."""

    lemma: str
    roots: frozenset[str]
    head: str
    lang: str
    known: bool


class _Voikko:
    def __init__(self) -> None:
        import libvoikko

        self._v: Any = libvoikko.Voikko("fi")

    def analyse(self, word: str) -> list[dict[str, str]]:
        return list(self._v.analyze(word))


@lru_cache(maxsize=1)
def _voikko() -> _Voikko | None:
    try:
        return _Voikko()
    except Exception as exc:  # the library or the dictionary is not installed
        log.warning(
            "Voikko is not available (%s): Finnish falls back to Snowball stemming; "
            "install Debian's libvoikko1 and voikko-fi",
            exc.__class__.__name__,
        )
        return None


def analyser_name() -> str:
    """``voikko`` or ``snowball``: recorded with each compilation."""
    return "voikko" if _voikko() is not None else "snowball"


_fi_stemmer = snowballstemmer.stemmer("finnish")
_sv_stemmer = snowballstemmer.stemmer("swedish")


@lru_cache(maxsize=200_000)
def fi_stem(word: str) -> str:
    """Snowball's Finnish stem of a word, lower-cased: where Voikko does not know the
    word, and the dictionaries' look-up key ("vanhukset" is found under "vanhus")."""
    return str(_fi_stemmer.stemWord(word.casefold()))


@lru_cache(maxsize=200_000)
def sv_stem(word: str) -> str:
    """Snowball's Swedish stem: a Swedish word's lemma here, and its dictionary key."""
    return str(_sv_stemmer.stemWord(word.casefold()))


def normalise(text: str) -> str:
    """Spaces collapsed, case folded: how two wordings are compared as written."""
    return " ".join(text.split()).casefold()


def words(text: str) -> list[str]:
    """Lower-cased words; hyphens and slashes split compounds, "hva:n" is "hva"."""
    return [w.split(":", 1)[0] for w in _WORD.findall(text.casefold())]


_SEGMENT = re.compile(r"\+([^+(]*)(?:\(([^)]*)\))?")


def _parts(wordbases: str) -> list[str]:
    """The base forms of a compound's parts from Voikko's WORDBASES
    ("+kaatumis(kaatua)+tapa(tapa)+turma(turma)" -> kaatua, tapa, turma); derivational
    suffixes ("(+us)") belong to the part before them; "ennalta=ehkäistä" is two parts."""
    out: list[str] = []
    for piece, base in _SEGMENT.findall(wordbases):
        # "(+us)" is a derivational suffix; a bare "+n" or "+a" an inflectional piece;
        # a bare "+vammais" or "+lähi" a compound part Voikko gives no base form for.
        if base.startswith("+") or (not base and len(piece) < 3):
            continue
        for part in (base or piece).split("="):
            if part:
                out.append(part)
    return out


_CLASS_ORDER = {"nimisana": 0, "laatusana": 1, "nimi_laatusana": 1, "teonsana": 2}


@lru_cache(maxsize=100_000)
def _finnish(word: str) -> Token | None:
    if word in _FI_STOP or len(word) < 2:
        return None
    voikko = _voikko()
    analyses = voikko.analyse(word) if voikko is not None else []
    if not analyses:
        stem = fi_stem(word)
        return Token(stem, frozenset({stem}), stem, "fi", False)
    if any(a.get("CLASS") in _FUNCTION_CLASSES for a in analyses):
        return None
    a = min(analyses, key=lambda a: _CLASS_ORDER.get(a.get("CLASS", ""), 3))
    lemma = a.get("BASEFORM", word).casefold().replace("-", "")
    if lemma in _FI_STOP:
        return None
    parts = [p.casefold() for p in _parts(a.get("WORDBASES", ""))] or [lemma]
    return Token(lemma, frozenset({lemma, *parts}), parts[-1], "fi", True)


@lru_cache(maxsize=100_000)
def _swedish(word: str) -> Token | None:
    if word in _SV_STOP or len(word) < 2:
        return None
    stem = sv_stem(word)
    return Token(stem, frozenset({stem}), stem, "sv", True)


def known_fraction(text: str) -> float:
    """How many of the words Voikko recognises as Finnish."""
    voikko = _voikko()
    ws = words(text)
    if voikko is None or not ws:
        return 1.0
    return sum(1 for w in ws if voikko.analyse(w)) / len(ws)


def detect_language(text: str, languages: tuple[str, ...] | list[str]) -> str:
    """``fi`` or ``sv`` for a text of a region with these languages (the first one when
    the region has only one or the text gives no sign)."""
    if "sv" not in languages or "fi" not in languages:
        return languages[0] if languages else "fi"
    ws = words(text)
    swedish = sum(1 for w in ws if w in _SV_MARKERS or "å" in w)
    if swedish and known_fraction(text) < 0.75:
        return "sv"
    return "fi"


def analyse(text: str, lang: str = "fi") -> tuple[Token, ...]:
    """The content words of ``text`` as tokens, in order."""
    one = _swedish if lang == "sv" else _finnish
    return tuple(t for w in words(text) if (t := one(w)) is not None)
