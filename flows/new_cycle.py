"""Next year's config folder from this year's (``hytetu cycle new``)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from hytetu.cyclenew import new_cycle as write_new_cycle


@task(name="new-cycle")
def _write(source: str, year: int, target: str | None) -> dict:
    r = write_new_cycle(Path(source), year, Path(target) if target else None)
    return {
        "folder": str(r.folder),
        "year": r.year,
        "copied": r.copied,
        "sessions": r.sessions,
        "warnings": [str(w) for w in r.warnings],
    }


@flow(name="new-cycle", log_prints=True)
def new_cycle(source: str, year: int, target: str | None = None) -> dict:
    """Write ``year``'s cycle folder from last year's: the goal matrix carried over, the
    sessions and the feedback window moved a year on the same weekdays, each with a
    ``check:`` note for the coordinator. Never overwrites; load the folder once checked.

    Args:
        source: Last year's config folder (region.yaml, cycle.yaml).
        year: The new cycle's year.
        target: The new folder; default beside the source, its name with the new year.
    """
    report = _write(source, year, target)
    moved = "\n".join(f"- {old} → {new}" for old, new in report["sessions"])
    checks = "\n".join(f"- {w}" for w in report["warnings"])
    create_markdown_artifact(
        markdown=f"# Uusi kierros / Ny omgång {year}\n\n`{report['folder']}`\n\n"
        f"## Istunnot / Möten\n{moved}\n\n## Tarkistettavaa / Att kontrollera\n{checks}\n",
        key="hytetu-new-cycle",
        description=f"hytetu: new cycle {year}",
    )
    return report
