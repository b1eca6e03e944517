"""Where the words of a PDF stand, read back with pdfplumber: is each list item broken into
lines the way a reader expects (greedily: a line takes every word that fits on it)?

Text alone cannot show a bad break ("työ- / ja / toimintakyvyn" extracts as the same
words); the words' positions can. Used by tests/test_memos.py.
"""

from __future__ import annotations

import io
from typing import Any

import pdfplumber

MM = 72 / 25.4
Char = dict[str, Any]


def _lines(chars: list[Char]) -> list[list[list[Char]]]:
    """Chars grouped into lines by their baseline (smaller type on a line shares it), top
    to bottom; each line a list of words, a word the chars between ordinary spaces (a
    no-break space joins two words into one, as it does in the layout)."""
    rows: dict[int, list[Char]] = {}
    for c in chars:
        rows.setdefault(round(c["matrix"][5]), []).append(c)
    lines = []
    for baseline in sorted(rows, reverse=True):
        words: list[list[Char]] = [[]]
        for c in sorted(rows[baseline], key=lambda c: c["x0"]):
            if c["text"] == " ":
                words.append([])
            else:
                words[-1].append(c)
        lines.append([w for w in words if w])
    return lines


def _text(words: list[list[Char]]) -> str:
    return " ".join("".join(c["text"] for c in w) for w in words)


def misbroken(chars: list[Char], right: float, slack: float = 4.0) -> list[tuple[str, str]]:
    """(line, next word) for each line of a bullet list item ("• ...") that ends although
    the first word of the item's next line would have fitted on it, ``slack`` points to
    spare, before ``right`` (the x where the text's box ends)."""
    bad = []
    lines = _lines(chars)
    item_x: float | None = None  # where the text of the item being read starts
    for a, b in zip(lines, lines[1:], strict=False):
        if not a or not b:
            item_x = None
            continue
        if a[0][0]["text"] == "•" and len(a) > 1:
            item_x = a[1][0]["x0"]
        elif item_x is not None and abs(a[0][0]["x0"] - item_x) > 1:
            item_x = None
        last, first = a[-1][-1], b[0][0]
        if item_x is None or abs(first["x0"] - item_x) > 1:
            continue  # b is a new item, or text in another column or block
        if (last["fontname"], last["size"]) != (first["fontname"], first["size"]):
            continue
        if not 0.9 * last["size"] < last["matrix"][5] - first["matrix"][5] < 1.6 * last["size"]:
            continue  # not the next line: a gap between blocks
        space = 0.318 * last["size"]  # DejaVu Sans, the documents' font
        if last["x1"] + space + (b[0][-1]["x1"] - first["x0"]) + slack <= right:
            bad.append((_text(a), _text(b[:1])))
    return bad


def misbroken_in_pdf(pdf: bytes, cell_padding_mm: float = 1.6) -> list[tuple[int, str, str]]:
    """``misbroken`` for every page of a document: (page, line, next word). Text between two
    of a page's tall vertical rules (the summary's matrix columns) ends at the rule less the
    cell's padding; the rest at the page's right margin."""
    out = []
    with pdfplumber.open(io.BytesIO(pdf)) as doc:
        for number, page in enumerate(doc.pages, 1):
            margin = 14 if page.width > page.height else 20  # document.css @page
            chars = [c for c in page.chars if c["top"] < page.height - 16 * MM]  # no footer
            rules: list[float] = []
            for x in sorted(
                e["x0"] for e in page.edges if e["orientation"] == "v" and e["height"] > 20
            ):
                if not rules or x - rules[-1] > 2:
                    rules.append(x)
            for x0, x1 in zip(rules, rules[1:], strict=False):
                inside = [c for c in chars if x0 <= c["x0"] and c["x1"] <= x1]
                chars = [c for c in chars if not (x0 <= c["x0"] and c["x1"] <= x1)]
                out += [(number, *b) for b in misbroken(inside, x1 - cell_padding_mm * MM)]
            out += [(number, *b) for b in misbroken(chars, page.width - margin * MM)]
    return out
