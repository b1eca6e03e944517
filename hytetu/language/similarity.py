"""How alike two findings are, 0..1, for one cycle's findings.

Each word of one finding is paired with its best match in the other, and the matches are
averaged, weighted by how rare the word is in the cycle's findings (IDF: "yhteistyö" and
"kehittäminen" are everywhere, "kaatuminen" is not). Two words match:
  - 1.0: the same lemma ("kaatumisten" / "kaatumisiin");
  - 0.85: one's parts all belong to the other and the heads agree ("ehkäisy" in
    "ennaltaehkäisy", "hälsovård" in "skolhälsovård");
  - 0.6: the parts of one all belong to the other ("kaatuminen" in
    "kaatumistapaturma") or they share the head and another part;
  - their word vectors' cosine where it is at least ``VECTOR_FLOOR`` (Finnish: "estäminen"
    and "ehkäisy"), scaled down a little, since a vector also likes a word's opposite;
  - 0.9 for unknown words (abbreviations, names) of one stem.
A short finding wholly covered by a longer one (at most three times its words) scores its
coverage ("Kaatumisten ehkäisy" in "Kaatumisten ehkäisy – yhteistyö verkoston kanssa").
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

import numpy as np

from hytetu.language import vectors
from hytetu.language.analysis import Token, analyse, detect_language, normalise
from hytetu.language.lexicon import fi_key, lexicon

VECTOR_FLOOR = 0.5
VECTOR_SCALE = 0.9
CONTAINED = 0.8
SPAN = 3
LATER = 0.5
_LEAD = re.compile(r"[.!?;]\s+|\s[–—-]\s")
CENTROID_WEIGHT = 0.9
CENTROID_FLOOR = 0.6
SENSE_FLOOR = 0.2
SENSE_SCORE = 0.7


def _prefix(a: str, b: str) -> int:
    n = 0
    for p, q in zip(a, b, strict=False):
        if p != q:
            break
        n += 1
    return n


@lru_cache(maxsize=100_000)
def _senses(t: Token) -> frozenset[str]:
    lex = lexicon()
    return lex.fi_senses(t.lemma) if t.lang == "fi" else lex.sv_senses(t.lemma)


@lru_cache(maxsize=400_000)
def word_match(x: Token, y: Token) -> float:
    """The lexical part of a word match (vectors are added by the matcher)."""
    if x.lemma == y.lemma:
        return 1.0
    if x.lang != y.lang:
        sv, fi = (x, y) if x.lang == "sv" else (y, x)
        translations = lexicon().sv_translations(sv.lemma)
        if fi_key(fi.lemma) in translations or fi_key(fi.head) in translations:
            return 0.9
        return _sense_match(x, y)
    a, b = sorted((x.lemma, y.lemma), key=len)
    if not (x.known and y.known):
        return 0.9 if len(a) >= 4 and b.startswith(a) and len(a) >= 0.75 * len(b) else 0.0
    if x.lang == "sv":
        # Snowball leaves derivations apart ("ensam", "ensamhet"); a compound's head is
        # last ("skolhälsovård" ends in "hälsovård"), its modifier first ("fallolycka").
        if len(a) >= 4 and b.endswith(a):
            return 0.85
        if _prefix(a, b) >= max(5, 0.75 * len(a)):
            return 0.85 if len(b) - len(a) <= 4 else 0.6
        return _sense_match(x, y)
    small, big = sorted((x, y), key=lambda t: (len(t.roots), len(t.lemma)))
    same_head = x.head == y.head and len(x.head) >= 4
    if small.roots <= big.roots:
        return 0.85 if same_head else 0.6
    if same_head and len(x.roots & y.roots) >= 2:
        return 0.6
    return _sense_match(x, y)


def _sense_match(x: Token, y: Token) -> float:
    """Two words that the dictionaries translate alike ("vanhus", "iäkäs": old, elderly)."""
    overlap = lexicon().overlap(_senses(x), _senses(y))
    return SENSE_SCORE if overlap >= SENSE_FLOOR else 0.0


@lru_cache(maxsize=100_000)
def _token_vector(t: Token) -> np.ndarray | None:
    """A Finnish word's vector; a Swedish word's is the mean of its Finnish translations'
    (so that the two languages meet in one space)."""
    if t.lang == "fi":
        return vectors.unit(t.lemma)
    rows = [v for w in lexicon().sv_fi.get(t.lemma, ()) if (v := vectors.unit(w)) is not None]
    if not rows:
        return None
    mean = np.mean(rows, axis=0)
    n = float(np.linalg.norm(mean))
    return mean / n if n else None


def _bucket_keys(t: Token) -> set[str]:
    """Keys two tokens share whenever ``word_match`` can be above 0."""
    keys = {"r:" + r for r in t.roots} | {"r:" + t.head}
    lex = lexicon()
    if t.lang == "sv" or not t.known:
        keys.add("p:" + t.lemma[:4])
        keys.update("s:" + t.lemma[-k:] for k in range(4, len(t.lemma) + 1))
    if t.lang == "sv":
        keys.update("t:" + k for k in lex.sv_translations(t.lemma))
    else:
        keys.update(("t:" + fi_key(t.lemma), "t:" + fi_key(t.head)))
    keys.update("e:" + w for w in _senses(t))
    return keys


class Matcher:
    """Similarity of findings within one corpus (a cycle's findings and goal matrix).

    ``similarities(texts)`` scores every pair of a list at once (a goal cell's findings),
    with numpy over a table of the words they use: each word pair is matched once."""

    def __init__(self, texts: Iterable[str], languages: tuple[str, ...] = ("fi",)) -> None:
        self.languages = tuple(languages) or ("fi",)
        self._tokens: dict[str, tuple[Token, ...]] = {}
        # Matrices already scored, with the index of their texts (newest last).
        self._blocks: list[tuple[dict[str, int], dict[str, int], np.ndarray]] = []
        docs = {t for t in texts}
        df: Counter[str] = Counter()
        for text in docs:
            df.update({tok.lemma for tok in self.tokens(text)})
        n = max(len(docs), 1)
        self._idf = {lemma: math.log((1 + n) / (1 + d)) + 1.0 for lemma, d in df.items()}
        self._default_idf = math.log(1 + n) + 1.0

    def tokens(self, text: str) -> tuple[Token, ...]:
        toks = self._tokens.get(text)
        if toks is None:
            toks = analyse(text, detect_language(text, self.languages))
            # A word said twice counts once.
            seen: dict[str, Token] = {}
            for t in toks:
                seen.setdefault(t.lemma, t)
            toks = self._tokens[text] = tuple(seen.values())
        return toks

    def weight(self, token: Token) -> float:
        return self._idf.get(token.lemma, self._default_idf)

    def _weights(self, text: str) -> np.ndarray:
        """Each word's weight in this finding: its IDF, less (``LATER``) after the first
        sentence or dash, where minutes elaborate ("Kaatumisten ehkäisy – yhteistyö
        verkoston kanssa"; "…tärkeimpänä asiana. Pihtiputaan fysioterapeutti: …")."""
        toks = self.tokens(text)
        lead_text = _LEAD.split(text, maxsplit=1)[0]
        lead = {t.lemma for t in self.tokens(lead_text)} if lead_text != text else None
        return np.array(
            [self.weight(t) * (1.0 if lead is None or t.lemma in lead else LATER) for t in toks],
            dtype=np.float64,
        )

    def similarity(self, a: str, b: str) -> float:
        if a == b:
            return 1.0
        for rows, cols, block in reversed(self._blocks):
            i, j = rows.get(a), cols.get(b)
            if i is not None and j is not None:
                return float(block[i, j])
            i, j = rows.get(b), cols.get(a)
            if i is not None and j is not None:
                return float(block[i, j])
        return float(self.similarities([a, b])[0, 1])

    def similarities(self, texts: list[str], others: list[str] | None = None) -> np.ndarray:
        """The matrix of ``similarity`` of every text with every other (n × n), or with
        each of ``others`` (n × m: feedback responses against a cell's findings)."""
        cols_texts = texts if others is None else others
        out = np.zeros((len(texts), len(cols_texts)), dtype=np.float64)
        toks_a = [self.tokens(t) for t in texts]
        toks_b = toks_a if others is None else [self.tokens(t) for t in cols_texts]
        table: dict[Token, int] = {}
        for ts in toks_a + toks_b:
            for t in ts:
                table.setdefault(t, len(table))
        words = list(table)
        rows = [i for i, ts in enumerate(toks_a) if ts]
        cols = [j for j, ts in enumerate(toks_b) if ts]
        if rows and cols:
            match = self._word_matrix(words)
            ids_a = [np.array([table[t] for t in toks_a[i]], dtype=np.int64) for i in rows]
            ids_b = [np.array([table[t] for t in toks_b[j]], dtype=np.int64) for j in cols]
            w_a = [self._weights(texts[i]) for i in rows]
            w_b = [self._weights(cols_texts[j]) for j in cols]
            cover_ab, least_ab = _cover(match, ids_a, w_a, ids_b)
            cover_ba, least_ba = (
                (cover_ab, least_ab) if others is None else _cover(match, ids_b, w_b, ids_a)
            )
            cover_ba, least_ba = cover_ba.T, least_ba.T  # [row, col] like the others
            tot_a = np.array([w.sum() for w in w_a])[:, None]
            tot_b = np.array([w.sum() for w in w_b])[None, :]
            score = (cover_ab * tot_a + cover_ba * tot_b) / (tot_a + tot_b)
            if CENTROID_WEIGHT:
                cent = self._centroid_cos(words, ids_a, w_a, ids_b, w_b)
                score = np.maximum(score, CENTROID_WEIGHT * cent)
            # Wholly contained: every word of the shorter one has its own strong match.
            k_a = np.array([len(x) for x in ids_a], dtype=np.float64)[:, None]
            k_b = np.array([len(x) for x in ids_b], dtype=np.float64)[None, :]
            a_in_b = (k_a <= k_b) & (k_a >= 2) & (k_b <= SPAN * k_a) & (least_ab >= CONTAINED)
            b_in_a = (k_b <= k_a) & (k_b >= 2) & (k_a <= SPAN * k_b) & (least_ba >= CONTAINED)
            score = np.maximum(score, np.where(a_in_b, 0.95 * cover_ab, 0.0))
            score = np.maximum(score, np.where(b_in_a, 0.95 * cover_ba, 0.0))
            out[np.ix_(rows, cols)] = score
        # No content words: alike only when written alike. A text is itself.
        norms_b = [normalise(t) for t in cols_texts]
        for i in (i for i, ts in enumerate(toks_a) if not ts):
            out[i] = [1.0 if normalise(texts[i]) == nb else 0.0 for nb in norms_b]
        for j in (j for j, ts in enumerate(toks_b) if not ts):
            out[:, j] = [1.0 if normalise(t) == norms_b[j] else 0.0 for t in texts]
        where_b: dict[str, list[int]] = {}
        for j, text in enumerate(cols_texts):
            where_b.setdefault(text, []).append(j)
        for i, text in enumerate(texts):
            out[i, where_b.get(text, [])] = 1.0
        out = np.round(out, 4)
        index_a = {t: i for i, t in enumerate(texts)}
        index_b = index_a if others is None else {t: j for j, t in enumerate(cols_texts)}
        self._blocks.append((index_a, index_b, out))
        return out

    def _word_matrix(self, words: list[Token]) -> np.ndarray:
        """Word-by-word match scores: the lexical rules where two words share a key, and
        the word vectors' cosine."""
        n = len(words)
        m = np.eye(n, dtype=np.float64)
        buckets: dict[str, list[int]] = {}
        for i, t in enumerate(words):
            for key in _bucket_keys(t):
                buckets.setdefault(key, []).append(i)
        done: set[tuple[int, int]] = set()
        for members in buckets.values():
            for a, i in enumerate(members):
                for j in members[a + 1 :]:
                    if (i, j) not in done:
                        done.add((i, j))
                        m[i, j] = m[j, i] = word_match(words[i], words[j])
        vecs = [_token_vector(t) for t in words]
        if any(v is not None for v in vecs):
            zero = np.zeros(vectors.DIMENSIONS, dtype=np.float32)
            v = np.stack([x if x is not None else zero for x in vecs]).astype(np.float64)
            cos = v @ v.T
            m = np.maximum(m, np.where(cos >= VECTOR_FLOOR, cos * VECTOR_SCALE, 0.0))
        return m

    def _centroid_cos(
        self,
        words: list[Token],
        ids_a: list[np.ndarray],
        w_a: list[np.ndarray],
        ids_b: list[np.ndarray],
        w_b: list[np.ndarray],
    ) -> np.ndarray:
        """The findings' IDF-weighted mean word vectors, compared: above ``CENTROID_FLOOR``
        scaled to 0..1."""
        vecs = [_token_vector(t) for t in words]
        zero = np.zeros(vectors.DIMENSIONS, dtype=np.float64)
        v = np.stack([x if x is not None else zero for x in vecs]).astype(np.float64)

        def centroids(ids: list[np.ndarray], weights: list[np.ndarray]) -> np.ndarray:
            pairs = zip(ids, weights, strict=True)
            cent = np.stack([(v[x] * w[:, None]).sum(axis=0) for x, w in pairs])
            norm = np.linalg.norm(cent, axis=1)
            return np.where(norm[:, None] > 0, cent / np.maximum(norm, 1e-12)[:, None], 0.0)

        cos = centroids(ids_a, w_a) @ centroids(ids_b, w_b).T
        return np.maximum(0.0, (cos - CENTROID_FLOOR) / (1.0 - CENTROID_FLOOR))


def _cover(
    match: np.ndarray, ids_a: list[np.ndarray], w_a: list[np.ndarray], ids_b: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """How much of each finding of ``a`` the findings of ``b`` cover (its words' best
    matches, weighted), and its weakest word's best match, as |a| × |b| matrices."""
    cols = np.concatenate(ids_b)
    starts = np.cumsum([0] + [len(x) for x in ids_b[:-1]])
    cover = np.zeros((len(ids_a), len(ids_b)))
    least = np.zeros((len(ids_a), len(ids_b)))
    for r, (x, w) in enumerate(zip(ids_a, w_a, strict=True)):
        best = np.maximum.reduceat(match[np.ix_(x, cols)], starts, axis=1)
        cover[r] = w @ best / w.sum()
        least[r] = best.min(axis=0)
    return cover, least
