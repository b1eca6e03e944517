"""Templates and documents: the one Jinja environment, and HTML to PDF/A with WeasyPrint.

Templates live in ``templates/<language>/``; a region overrides any of them by putting a
file of the same name in ``<config folder>/templates/<language>/`` (or a partial in
``<config folder>/templates/_partials/``). A template missing in a language falls back to
the region's first language.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

#: The PDF flavour of every document: PDF/A-3 level U (archivable, Unicode text) with a
#: tagged structure tree, /Lang, the title shown (DisplayDocTitle). WeasyPrint writes one
#: variant at a time; the PDF/UA-1 identification and ``dc:language`` are added to its XMP
#: by ``_with_pdfua`` (see docs/documents.md for what is and is not checked).
PDF_VARIANT = "pdf/a-3u"
PDFUA_PART = 1

_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_XMP_NS = {
    "rdf": _RDF,
    "dc": "http://purl.org/dc/elements/1.1/",
    "pdfuaid": "http://www.aiim.org/pdfua/ns/id/",
    "pdfaExtension": "http://www.aiim.org/pdfa/ns/extension/",
    "pdfaSchema": "http://www.aiim.org/pdfa/ns/schema#",
    "pdfaProperty": "http://www.aiim.org/pdfa/ns/property#",
}


class _QuietFontFallback(logging.Filter):
    """WeasyPrint falls back to fontTools for font subsetting when the system lacks
    HarfBuzz-Subset; the PDFs are the same, so the notice is only noise to a coordinator."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "HarfBuzz-Subset" not in record.getMessage()


logging.getLogger("weasyprint").addFilter(_QuietFontFallback())
logger = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class PdfJob:
    """One document to turn into a PDF: the HTML and the metadata of the PDF."""

    html: str
    title: str
    language: str
    author: str
    subject: str


def allowed_resource(url: str) -> bool:
    """What WeasyPrint may load for a document: ``data:`` URLs and files inside the
    templates folder. Never the network and no other file, whatever the HTML says: user
    text is escaped anyway, this is the second wall (SSRF, local file disclosure)."""
    if url.startswith("data:"):
        return True
    if not url.startswith("file://"):
        return False
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        return False
    return Path(unquote(parts.path)).resolve().is_relative_to(TEMPLATES)


def _url_fetcher() -> Any:
    from weasyprint.urls import URLFetcher

    class TemplatesOnly(URLFetcher):
        def fetch(self, url: str, headers: Any = None) -> Any:
            if not allowed_resource(url):
                raise ValueError(f"not loaded (outside hytetu's templates): {url[:200]}")
            return super().fetch(url, headers)

    return TemplatesOnly(allowed_protocols=("file", "data"), allow_redirects=False)


def _pdfua_rdf(rdf: bytes, language: str) -> bytes:
    """WeasyPrint's XMP ``rdf:RDF`` with the PDF/UA identification (``pdfuaid:part``) and
    the document's language (``dc:language``) added, in the same ``rdf:RDF`` (readers such
    as pypdf read only the first). PDF/A allows a property outside its predefined schemas
    only with an extension schema describing it, so pdfuaid's is declared too (as ISO
    14289-1 and the PDF/A Competence Center's guidance give it)."""
    from xml.etree.ElementTree import SubElement, fromstring, register_namespace, tostring

    for prefix, uri in _XMP_NS.items():
        register_namespace(prefix, uri)

    def q(name: str) -> str:
        prefix, local = name.split(":")
        return f"{{{_XMP_NS[prefix]}}}{local}"

    root = fromstring(rdf)
    ua = SubElement(root, q("rdf:Description"), {q("rdf:about"): ""})
    SubElement(ua, q("pdfuaid:part")).text = str(PDFUA_PART)
    dc = SubElement(root, q("rdf:Description"), {q("rdf:about"): ""})
    bag = SubElement(SubElement(dc, q("dc:language")), q("rdf:Bag"))
    SubElement(bag, q("rdf:li")).text = language
    ext = SubElement(root, q("rdf:Description"), {q("rdf:about"): ""})
    schemas = SubElement(SubElement(ext, q("pdfaExtension:schemas")), q("rdf:Bag"))
    schema = SubElement(schemas, q("rdf:li"), {q("rdf:parseType"): "Resource"})
    for field, value in (
        ("schema", "PDF/UA Universal Accessibility Schema"),
        ("namespaceURI", _XMP_NS["pdfuaid"]),
        ("prefix", "pdfuaid"),
    ):
        SubElement(schema, q(f"pdfaSchema:{field}")).text = value
    props = SubElement(SubElement(schema, q("pdfaSchema:property")), q("rdf:Seq"))
    prop = SubElement(props, q("rdf:li"), {q("rdf:parseType"): "Resource"})
    for field, value in (
        ("name", "part"),
        ("valueType", "Integer"),
        ("category", "internal"),
        ("description", "Indicates, which part of ISO 14289 standard is followed"),
    ):
        SubElement(prop, q(f"pdfaProperty:{field}")).text = value
    return tostring(root, encoding="utf-8")


def _with_pdfua(metadata: Any, language: str) -> None:
    """Make WeasyPrint's metadata write the PDF/UA identification and dc:language into
    its XMP. WeasyPrint (70) has no option for either while it writes PDF/A; its
    ``xmp_metadata`` would add a second ``rdf:RDF``, which XMP readers ignore."""
    generate = metadata.generate_rdf_metadata

    def generate_rdf_metadata(*args: Any, **kwargs: Any) -> bytes:
        return _pdfua_rdf(generate(*args, **kwargs), language)

    metadata.generate_rdf_metadata = generate_rdf_metadata


def html_to_pdf(html: str, *, title: str, language: str, author: str, subject: str) -> bytes:
    """A PDF/A-3u document (archivable, text extractable), tagged for accessibility and
    identified as PDF/UA-1."""
    from weasyprint import HTML  # imported here: it is slow to import and only renders need it

    fetcher = _url_fetcher()
    document = HTML(string=html, base_url=str(TEMPLATES), url_fetcher=fetcher).render()
    document.metadata.title = title
    document.metadata.authors = [author]
    document.metadata.description = subject
    document.metadata.lang = language
    _with_pdfua(document.metadata, language)
    return document.write_pdf(pdf_variant=PDF_VARIANT, pdf_tags=True, uncompressed_pdf=False)


def _job_to_pdf(job: PdfJob) -> bytes:
    return html_to_pdf(
        job.html, title=job.title, language=job.language, author=job.author, subject=job.subject
    )


#: Below this much HTML (characters of all the documents together, about 2 s of PDF work)
#: the PDFs are made in the calling process: starting the workers' fork server (a Python
#: with WeasyPrint loaded and warmed) costs about as much as a second of rendering, once
#: per process (see bench/render_bench.py). The example region's seven documents are
#: 110,000 characters; a county at the national average has 700,000.
PARALLEL_MIN_HTML = 250_000


def render_workers(html_chars: int | None = None) -> int:
    """Worker processes for documents of ``html_chars`` characters in all:
    HYTETU_RENDER_WORKERS if set, else 2 (1 on a one-core box, or for less HTML than
    ``PARALLEL_MIN_HTML``)."""
    configured = os.environ.get("HYTETU_RENDER_WORKERS", "").strip()
    if configured:
        return max(1, int(configured))
    if html_chars is not None and html_chars < PARALLEL_MIN_HTML and not _warm:
        return 1
    return max(1, min(2, os.cpu_count() or 1))


# Workers are forked from a small server process that has already imported WeasyPrint:
# a fork of the caller itself is unsafe when it runs threads (a Prefect task does), and a
# plain spawn would pay WeasyPrint's import in every worker of every render.
_context: multiprocessing.context.BaseContext | None = None
_warm = False  # the fork server was started ahead (warm_up): workers cost next to nothing


def warm_up() -> None:
    """Start the workers' fork server now, so that it loads WeasyPrint while the caller
    does other work (the demo: while the year runs up to the render). Returns at once."""
    global _warm
    context = _pool_context()
    if os.cpu_count() == 1 or context.get_start_method() != "forkserver":
        return
    from multiprocessing import forkserver

    forkserver.ensure_running()
    _warm = True


def _pool_context() -> multiprocessing.context.BaseContext:
    global _context
    if _context is None:
        if "forkserver" in multiprocessing.get_all_start_methods():
            server = multiprocessing.get_context("forkserver")
            server.set_forkserver_preload(["hytetu._pdf_worker"])
            _context = server
        else:  # pragma: no cover - Windows and macOS without forkserver
            _context = multiprocessing.get_context("spawn")
    return _context


def html_to_pdfs(jobs: list[PdfJob], workers: int | None = None) -> list[bytes]:
    """PDFs of ``jobs`` in their order, rendered by ``workers`` processes when that helps.

    WeasyPrint is pure Python and holds the GIL, so threads do not help; processes do once
    there are a few documents. The pool lives only for this call and is shut down on exit.
    """
    if workers is None:
        workers = render_workers(sum(len(j.html) for j in jobs))
    workers = max(1, workers)
    if workers == 1 or len(jobs) < 2:
        return [_job_to_pdf(j) for j in jobs]
    # Biggest first, so the long summary does not start last and keep one worker busy alone.
    order = sorted(range(len(jobs)), key=lambda i: -len(jobs[i].html))
    results: list[bytes] = [b""] * len(jobs)
    try:
        with ProcessPoolExecutor(
            max_workers=min(workers, len(jobs)), mp_context=_pool_context()
        ) as pool:
            for i, pdf in zip(order, pool.map(_job_to_pdf, [jobs[i] for i in order]), strict=True):
                results[i] = pdf
    except BrokenProcessPool:
        # A worker died: out of memory, or a script without the ``__main__`` guard that
        # multiprocessing needs. The documents are still wanted, so render them here.
        logger.warning("PDF worker processes failed; rendering %d documents serially", len(jobs))
        return [_job_to_pdf(j) for j in jobs]
    return results
