"""Prefect Secret blocks: the one place a secret is loaded from one (EWS, Graph, IMAP)."""

from __future__ import annotations

from typing import Any

from hytetu.errors import DeliveryError


def prefect_secret(name: str, who: str) -> str:
    """The value of the Prefect Secret block ``name``; a permanent DeliveryError naming
    ``who`` ("EWS", "Graph", "IMAP") and the block, never the value, when it cannot load."""
    try:
        from prefect.blocks.system import Secret

        block: Any = Secret.load(name)  # sync in a sync context
        return str(block.get())
    except Exception as e:  # an unknown block or no API: a configuration problem
        raise DeliveryError(
            f"{who}: cannot load the Prefect Secret block {name}: {type(e).__name__}",
            permanent=True,
        ) from None
