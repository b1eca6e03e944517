"""Imported once by the PDF workers' fork server: WeasyPrint and its fonts made ready, so
every worker forked from it starts warm instead of paying ~0.5 s on its first document."""

from __future__ import annotations

from hytetu.render import PdfJob, _job_to_pdf

_job_to_pdf(
    PdfJob(
        "<html><body><h1>Lämmitys</h1><p>åäö <b>b</b> <i>i</i></p>"
        "<table><tr><th>a</th><td>b</td></tr></table></body></html>",
        "warm-up",
        "fi",
        "hytetu",
        "warm-up",
    )
)
