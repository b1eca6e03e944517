"""Settings of the Exchange transports, kept apart from their (heavy) implementations so the
config schema can import them cheaply. Secrets are never here: only the names of the
environment variables (or Prefect Secret blocks) that hold them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class EwsSettings(BaseModel):
    """Exchange Web Services (exchangelib). Exchange Online turns EWS off by default from
    1 Oct 2026 and ends it on 1 Apr 2027; use ``graph`` there."""

    model_config = ConfigDict(extra="forbid")
    server: str = Field(description="EWS host, e.g. outlook.office365.com or mail.county.example")
    auth: Literal["oauth2", "ntlm", "basic"] = Field(
        "oauth2", description="oauth2 (Exchange Online) | ntlm | basic (on-premises)"
    )
    username: str | None = Field(None, description="For ntlm (DOMAIN\\user) and basic")
    password_env: str = Field("HYTETU_EWS_PASSWORD", description="Env var with the password")
    tenant_id: str | None = Field(None, description="Entra ID tenant, OAuth2")
    client_id: str | None = Field(None, description="App registration (client) id, OAuth2")
    client_secret_env: str = Field("HYTETU_EWS_CLIENT_SECRET", description="Env var, OAuth2")
    password_block: str | None = Field(
        None, description="Prefect Secret block with the password (instead of password_env)"
    )
    client_secret_block: str | None = Field(
        None, description="Prefect Secret block with the client secret (instead of the env var)"
    )
    sender: str | None = Field(None, description="Mailbox to send as; default the region's sender")
    max_wait_seconds: int = Field(300, ge=0, description="Bound on ErrorServerBusy back-off")
    service_endpoint: str | None = Field(
        None, description="Full EWS URL; default https://<server>/EWS/Exchange.asmx"
    )
    exchange_version: str = Field(
        "15.1",
        description="Exchange build (major.minor) to speak, so nothing is probed; "
        "15.1 = Exchange 2016 schema, also right for 2019 and Exchange Online",
    )
    impersonation: bool | None = Field(
        None,
        description="Act on the sender's mailbox by impersonation (default: yes for oauth2, "
        "where the app has no mailbox of its own; no for ntlm/basic, where the service "
        "account has delegate (send as) rights)",
    )
    authority: str = Field(
        "https://login.microsoftonline.com", description="OAuth2 token authority"
    )

    @model_validator(mode="after")
    def _auth_fields(self) -> EwsSettings:
        if self.auth == "oauth2" and not (self.tenant_id and self.client_id):
            raise ValueError("auth oauth2 needs tenant_id and client_id")
        if self.auth in ("ntlm", "basic") and not self.username:
            raise ValueError(f"auth {self.auth} needs username")
        parts = self.exchange_version.split(".")
        if not (1 <= len(parts) <= 4 and all(p.isdigit() for p in parts)):
            raise ValueError(f"exchange_version must look like 15.1, not {self.exchange_version!r}")
        return self


class GraphSettings(BaseModel):
    """Microsoft Graph, app-only (client credentials), for counties on Exchange Online.

    The secret comes from a certificate (``certificate_path_env``), a Prefect Secret block
    (``client_secret_block``) or an environment variable (``client_secret_env``), in that
    order; see the README for the Entra ID app registration."""

    model_config = ConfigDict(extra="forbid")
    tenant_id: str = Field(description="Directory (tenant) id of the county's Entra ID")
    client_id: str = Field(description="Application (client) id of the app registration")
    client_secret_env: str = Field(
        "HYTETU_GRAPH_CLIENT_SECRET", description="Env var with the client secret"
    )
    client_secret_block: str | None = Field(
        None, description="Name of a Prefect Secret block with the client secret"
    )
    certificate_path_env: str | None = Field(
        None, description="Env var with the path of a PEM file: private key and certificate"
    )
    sender: str | None = Field(None, description="Mailbox to send as; default the region's sender")
    authority: str = Field(
        "https://login.microsoftonline.com", description="Entra ID login host (national clouds)"
    )
    endpoint: str = Field("https://graph.microsoft.com/v1.0", description="Graph API base URL")
    ca_bundle: str | None = Field(
        None, description="PEM file of CAs to trust instead of the system's (TLS inspection)"
    )
    timeout: float = Field(60.0, gt=0, description="Seconds per HTTP request")
    max_attempts: int = Field(5, ge=1, description="Attempts per request on throttling/5xx")
    max_wait_seconds: int = Field(300, ge=0, description="Bound on the total back-off wait")
