"""Small line charts of an indicator for the memos: the group's municipalities, the county
and the whole country over the years, as SVG with its text kept as text (matplotlib's
SVG backend, ``svg.fonttype: none``), so the PDF gets vector lines and real, searchable
text. A missing value is a gap in the line, never a point at 0."""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import Any

#: Okabe & Ito's palette: told apart with the common colour-vision deficiencies.
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9")
FONT = "DejaVu Sans"


@dataclass(frozen=True)
class Line:
    name: str
    values: tuple[float | None, ...]
    style: str = "municipality"  # "municipality" | "county" | "country"


def line_chart(
    years: tuple[int, ...], lines: tuple[Line, ...], unit: str, decimal_comma: bool = True
) -> str:
    """An SVG document (text) of ``lines`` over ``years``."""
    import matplotlib

    matplotlib.use("svg", force=False)
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    params: dict[str, Any] = {
        "svg.fonttype": "none",  # text stays text: extractable, scalable, tagged
        "svg.hashsalt": "hytetu",  # the same chart is the same bytes (memo digests)
        "font.family": FONT,
        "font.size": 7,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.linewidth": 0.6,
        "xtick.major.width": 0.6,
        "ytick.major.width": 0.6,
    }
    with matplotlib.rc_context(params):  # type: ignore[arg-type]
        fig = Figure(figsize=(6.3, 1.75))
        FigureCanvasSVG(fig)
        # Fewer SVG elements, a faster PDF: no backgrounds, no tick marks, a marker only on
        # a value with no neighbour (a line needs two points: it would not show).
        fig.patch.set_visible(False)
        ax = fig.add_axes((0.075, 0.14, 0.6, 0.8))
        ax.patch.set_visible(False)
        ax.tick_params(bottom=False, left=False, pad=2)
        municipal = 0
        for line in lines:
            ys = [math.nan if v is None else v for v in line.values]
            alone = [
                i
                for i, v in enumerate(line.values)
                if v is not None
                and (i == 0 or line.values[i - 1] is None)
                and (i == len(ys) - 1 or line.values[i + 1] is None)
            ]
            kw: dict[str, Any]
            if line.style == "county":
                kw = {"color": "#222222", "linestyle": "--", "marker": "s", "linewidth": 1.5}
            elif line.style == "country":
                kw = {"color": "#777777", "linestyle": ":", "marker": "^", "linewidth": 1.6}
            else:
                kw = {
                    "color": COLOURS[municipal % len(COLOURS)],
                    "linestyle": "-",
                    "marker": "o",
                    "linewidth": 1.3,
                }
                municipal += 1
            if not alone:
                kw["marker"] = ""
            ax.plot(years, ys, label=line.name, markersize=3.2, markevery=alone or None, **kw)
        ax.set_xticks(years)
        ax.set_xticklabels([str(y) for y in years])
        ax.set_ylabel(unit)
        ax.yaxis.label.set_fontsize(6.5)
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", linewidth=0.3, color="#cccccc")

        def fmt(value: float, _pos: int) -> str:
            text = f"{value:g}"
            return text.replace(".", ",") if decimal_comma else text

        ax.yaxis.set_major_formatter(FuncFormatter(fmt))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
        legend = ax.legend(
            loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False, fontsize=6.5
        )
        for handle in legend.legend_handles:
            if handle is not None:
                handle.set_marker("")  # type: ignore[attr-defined]
        out = io.StringIO()
        fig.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    return out.getvalue()


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
