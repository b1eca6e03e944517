"""Human-readable reports of what a phase did, for artifacts, logs and the CLI."""

from __future__ import annotations

from typing import Any

_TITLES = {
    "load": "Asetukset ladattu / Configuration loaded",
    "invitations": "Kutsut / Invitations",
    "open_feedback": "Palauteikkuna avattu / Feedback window opened",
    "remind_feedback": "Palautemuistutus / Feedback reminder",
    "close_feedback": "Palauteikkuna suljettu / Feedback window closed",
    "import_notes": "Muistiinpanot tuotu / Session notes imported",
    "compile": "Koonti / Compilation",
    "render": "Muistiot / Memos rendered",
    "dispatch": "Lähetys kirjaamoihin / Dispatch to registries",
}


def phase_markdown(report: dict[str, Any]) -> str:
    lines = [f"# {_TITLES.get(report['phase'], report['phase'])}", ""]
    for key, value in report.get("did", {}).items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value) or "-"
        lines.append(f"- **{key}**: {value}")
    lines.append(f"- **sent**: {report.get('sent', 0)}")
    if report.get("failed"):
        lines += ["", "## Failed", *[f"- {f}" for f in report["failed"]]]
    if report.get("warnings"):
        lines += ["", "## Warnings", *[f"- {w}" for w in report["warnings"]]]
    if report.get("files"):
        lines += ["", "## Files", *[f"- `{f}`" for f in report["files"]]]
    return "\n".join(lines) + "\n"
