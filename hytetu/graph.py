"""Microsoft Graph transport. Not yet implemented."""

from __future__ import annotations

from hytetu.errors import DeliveryError
from hytetu.mail import Receipt
from hytetu.transport_settings import GraphSettings


class GraphTransport:
    name = "graph"

    def __init__(self, settings: GraphSettings) -> None:
        self.settings = settings

    def send(self, raw: bytes, sender: str, recipients: list[str]) -> Receipt:
        raise DeliveryError("the Graph transport is not implemented yet", permanent=True)

    def was_sent(self, message_id: str, sender: str) -> bool | None:
        return None
