"""What words mean, from FreeDict's Wiktionary dictionaries (Debian's dict-freedict-fin-eng,
-eng-fin, -swe-fin and -fin-swe, read from /usr/share/dictd; ``HYTETU_DICT_DIR`` elsewhere).

A Finnish word's *senses* are the English words it translates to, in both directions:
"vanhus" gives old, senior, citizen, elderly; "iäkäs" aged, old, elderly; so the two meet
on "elderly" and "old" though they share no letter. English words that many Finnish words
translate to ("make", "thing") weigh little (IDF over the dictionary). A Swedish word is
looked up by its stem in the Swedish–Finnish dictionaries and takes its Finnish
translations' senses, so "ensamhet" meets "yksinäisyys".
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import math
import os
import pickle
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from hytetu.language.analysis import fi_stem, sv_stem

log = logging.getLogger(__name__)

_ENGLISH_STOP_TEXT = """a an the of to in on at for by with from as or and be is are been
    being that this which who whom something someone somebody one ones it its thing things
    person people make made do done get give take have has having some any other not no up out into
    over about very more most much many way kind type act state quality"""
_ENGLISH_STOP = frozenset(_ENGLISH_STOP_TEXT.split())
_HEADER = re.compile(r"^(.+?)\s+(?:/[^/]*/\s*)*<[^>]*>\s*$")
_NUMBERED = re.compile(r"^\s*\d+\.\s*(.*)$")
_BAD_WORD = re.compile(r"[^a-zåäö-]")


def _folder() -> Path:
    return Path(os.environ.get("HYTETU_DICT_DIR", "/usr/share/dictd"))


def _b64(text: str) -> int:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    n = 0
    for ch in text:
        n = n * 64 + alphabet.index(ch)
    return n


def _entries(name: str) -> Iterator[tuple[str, list[str]]]:
    """(headword, translations) of every entry of a dictd dictionary."""
    folder = _folder()
    index, data = folder / f"{name}.index", folder / f"{name}.dict.dz"
    if not index.exists() or not data.exists():
        return
    body = gzip.decompress(data.read_bytes())
    for line in index.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or parts[0].startswith("00database"):
            continue
        start, length = _b64(parts[1]), _b64(parts[2])
        lines = body[start : start + length].decode("utf-8", "replace").splitlines()
        if not lines or not (m := _HEADER.match(lines[0])):
            continue
        translations = []
        if len(lines) > 1 and not _NUMBERED.match(lines[1]):
            translations.append(lines[1])
        translations += [n.group(1) for x in lines[1:] if (n := _NUMBERED.match(x))]
        yield m.group(1).strip().casefold(), translations


def _words(text: str) -> list[str]:
    """The single words of a comma-separated translation line, lower-cased."""
    out = []
    for phrase in re.split(r"[,;]", re.sub(r"\([^)]*\)", " ", text)):
        for w in phrase.casefold().split():
            if w not in _ENGLISH_STOP and len(w) > 2 and not _BAD_WORD.search(w):
                out.append(w)
    return out


# Dictionary keys are Snowball stems, so that "vanhukset" (a translation as written) is
# found under "vanhus" (a lemma), and a Swedish token's lemma (its stem) is its key.
fi_key = fi_stem
sv_key = sv_stem


class Lexicon:
    def __init__(self) -> None:
        senses: dict[str, set[str]] = defaultdict(set)
        for head, translations in _entries("freedict-fin-eng"):
            if " " not in head:
                for t in translations:
                    senses[fi_key(head)].update(_words(t))
        for head, translations in _entries("freedict-eng-fin"):
            if " " in head or _BAD_WORD.search(head):
                continue
            for t in translations:
                for phrase in t.split(","):
                    phrase = phrase.strip().casefold()
                    if phrase and " " not in phrase and not _BAD_WORD.search(phrase):
                        senses[fi_key(phrase)].add(head)
        self.senses = {k: frozenset(v) for k, v in senses.items() if v}
        df: Counter[str] = Counter(w for v in self.senses.values() for w in v)
        n = max(len(self.senses), 1)
        self.idf = {w: math.log(n / d) for w, d in df.items()}
        sv: dict[str, set[str]] = defaultdict(set)
        for head, translations in _entries("freedict-swe-fin"):
            if " " not in head:
                for t in translations:
                    sv[sv_key(head)].update(
                        p.strip().casefold() for p in t.split(",") if " " not in p.strip()
                    )
        for head, translations in _entries("freedict-fin-swe"):
            if " " in head:
                continue
            for t in translations:
                for p in t.split(","):
                    if (p := p.strip().casefold()) and " " not in p:
                        sv[sv_key(p)].add(head)
        self.sv_fi = {k: frozenset(x for x in v if x) for k, v in sv.items()}

    def __bool__(self) -> bool:
        return bool(self.senses)

    def fi_senses(self, lemma: str) -> frozenset[str]:
        return self.senses.get(fi_key(lemma), frozenset())

    def sv_senses(self, stem: str) -> frozenset[str]:
        out: set[str] = set()
        for fi in self.sv_fi.get(stem, ()):
            out |= self.fi_senses(fi)
        return frozenset(out)

    def sv_translations(self, stem: str) -> frozenset[str]:
        """Finnish look-up keys of the translations of a Swedish word (by its stem)."""
        return frozenset(fi_key(w) for w in self.sv_fi.get(stem, ()))

    def overlap(self, a: frozenset[str], b: frozenset[str]) -> float:
        """IDF-weighted Jaccard of two sense sets, 0..1."""
        if not a or not b:
            return 0.0
        inter = sum(self.idf.get(w, 0.0) for w in a & b)
        union = sum(self.idf.get(w, 0.0) for w in a | b)
        return inter / union if union else 0.0


def _cache_file() -> Path | None:
    """The parsed dictionaries are kept in the user's cache (8 s to parse, 0.3 s to read),
    keyed by the dictionaries' sizes and times and by this module's source."""
    files = sorted(_folder().glob("freedict-*.index"))
    if not files:
        return None
    stamp = hashlib.sha256(Path(__file__).read_bytes())
    for f in files:
        st = f.stat()
        stamp.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "hytetu" / f"lexicon-{stamp.hexdigest()[:16]}.pickle"


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    cache = _cache_file()
    if cache is not None and cache.exists():
        try:
            with cache.open("rb") as fh:
                loaded = pickle.load(fh)
            if isinstance(loaded, Lexicon):
                return loaded
        except Exception:  # a damaged cache is parsed anew
            pass
    lex = Lexicon()
    if lex and cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")
            with tmp.open("wb") as fh:
                pickle.dump(lex, fh, protocol=pickle.HIGHEST_PROTOCOL)
            tmp.replace(cache)
        except OSError:
            pass
    if not lex:
        log.warning(
            "FreeDict dictionaries not found in %s: findings match by their words and "
            "vectors only; install Debian's dict-freedict-fin-eng, -eng-fin, -swe-fin, "
            "-fin-swe",
            _folder(),
        )
    return lex


def available() -> bool:
    return bool(lexicon())
