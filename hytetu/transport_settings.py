"""Settings of the Exchange transports, kept apart from their (heavy) implementations so the
config schema can import them cheaply. Secrets are never here: only the names of the
environment variables (or Prefect Secret blocks) that hold them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EwsSettings(BaseModel):
    """Exchange Web Services (exchangelib). Exchange Online turns EWS off by default from
    1 Oct 2026 and ends it on 1 Apr 2027; use ``graph`` there."""

    model_config = ConfigDict(extra="forbid")
    server: str = Field(description="EWS host, e.g. outlook.office365.com or mail.county.example")
    auth: str = Field("oauth2", description="oauth2 (Exchange Online) | ntlm | basic (on-premises)")
    username: str | None = Field(None, description="For ntlm/basic")
    password_env: str = Field("HYTETU_EWS_PASSWORD", description="Env var with the password")
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret_env: str = Field("HYTETU_EWS_CLIENT_SECRET", description="Env var, OAuth2")
    sender: str | None = Field(None, description="Mailbox to send as; default the region's sender")
    max_wait_seconds: int = Field(300, ge=0, description="Bound on ErrorServerBusy back-off")


class GraphSettings(BaseModel):
    """Microsoft Graph, app-only (client credentials), for counties on Exchange Online."""

    model_config = ConfigDict(extra="forbid")
    tenant_id: str
    client_id: str
    client_secret_env: str = Field("HYTETU_GRAPH_CLIENT_SECRET", description="Env var")
    certificate_path_env: str | None = Field(None, description="Env var with a PEM path")
    sender: str | None = Field(None, description="Mailbox to send as; default the region's sender")
    authority: str = "https://login.microsoftonline.com"
    endpoint: str = "https://graph.microsoft.com/v1.0"
