"""Templates and documents: the one Jinja environment, and HTML to PDF/A with WeasyPrint.

Templates live in ``templates/<language>/``; a region overrides any of them by putting a
file of the same name in ``<config folder>/templates/<language>/``. A template missing in
a language falls back to the region's first language.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


class _QuietFontFallback(logging.Filter):
    """WeasyPrint falls back to fontTools for font subsetting when the system lacks
    HarfBuzz-Subset; the PDFs are the same, so the notice is only noise to a coordinator."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "HarfBuzz-Subset" not in record.getMessage()


logging.getLogger("weasyprint").addFilter(_QuietFontFallback())


def _fi_date(value: date | datetime) -> str:
    return f"{value.day}.{value.month}.{value.year}"


def _fi_time(value: datetime) -> str:
    return f"{value.hour}.{value.minute:02d}"


@lru_cache(maxsize=16)
def environment(override: Path | None = None) -> Environment:
    loaders = [FileSystemLoader(str(override))] if override and override.is_dir() else []
    loaders.append(FileSystemLoader(str(TEMPLATES)))
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(["html", "html.j2"], default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["date"] = _fi_date
    env.filters["time"] = _fi_time
    return env


def render(
    name: str,
    language: str,
    context: dict[str, Any],
    *,
    fallback: str = "fi",
    override: Path | None = None,
) -> str:
    """Render ``<language>/<name>``, or the fallback language's template if there is none."""
    env = environment(override)
    template = env.select_template([f"{language}/{name}", f"{fallback}/{name}"])
    return template.render(**context)


def html_to_pdf(html: str, *, title: str, language: str, author: str, subject: str) -> bytes:
    """A PDF/A-3u document (archivable, text extractable), tagged for accessibility."""
    from weasyprint import HTML  # imported here: it is slow to import and only renders need it

    document = HTML(string=html, base_url=str(TEMPLATES)).render()
    document.metadata.title = title
    document.metadata.authors = [author]
    document.metadata.description = subject
    document.metadata.lang = language
    return document.write_pdf(pdf_variant="pdf/a-3u", pdf_tags=True, uncompressed_pdf=False)
