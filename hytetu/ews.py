"""Exchange Web Services transport (exchangelib): sends the exact MIME bytes it is given
(MimeContent, SendAndSaveCopy, so a copy lands in Sent Items) and finds them there again.

OAuth2 client credentials for Exchange Online, NTLM or basic for on-premises Exchange
Server. Secrets come from environment variables and are kept out of error texts and out of
exchangelib's and requests-oauthlib's debug logs (which print request headers and bodies).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import re
from email import message_from_bytes, policy
from email.utils import getaddresses
from typing import Any

import requests.exceptions
from exchangelib import (
    BASIC,
    DELEGATE,
    IMPERSONATION,
    NTLM,
    Account,
    Build,
    Configuration,
    Credentials,
    FaultTolerance,
    Identity,
    Mailbox,
    Message,
    OAuth2Credentials,
    Version,
)
from exchangelib import errors as ews_errors

from hytetu.errors import DeliveryError
from hytetu.mail import Receipt
from hytetu.secret_blocks import prefect_secret
from hytetu.transport_settings import EwsSettings

# Response codes after which a retry cannot help: the message, a recipient, the mailbox or
# the rights are wrong. Anything else (busy, timeouts, connection) is worth another try.
_PERMANENT = (
    "ErrorInvalidRecipients",
    "ErrorInvalidSmtpAddress",
    "ErrorInvalidEmailAddress",
    "ErrorRecipientNotFound",
    "ErrorNonExistentMailbox",
    "ErrorMailRecipientNotFound",
    "ErrorMessageSizeExceeded",
    "ErrorInvalidMimeContent",
    "ErrorMimeContentConversionFailed",
    "ErrorMimeContentInvalid",
    "ErrorSendAsDenied",
    "ErrorAccessDenied",
    "ErrorImpersonateUserDenied",
    "ErrorImpersonationDenied",
    "ErrorInvalidRequest",
    "ErrorSchemaValidation",
    "ErrorQuotaExceeded",
    "ErrorSubmissionQuotaExceeded",
    "ErrorAccountDisabled",
    "UnauthorizedError",
    "InvalidClientIdError",
    "InvalidClientError",
    "UnauthorizedClientError",
)
_AUTH_HEADER = re.compile(
    r"(Authorization['\"]?\s*[:,]\s*['\"]?)"
    r"(Basic|Bearer|NTLM|Negotiate)\s+[A-Za-z0-9+/=._~-]+",
    re.IGNORECASE,
)
_FORM_SECRET = re.compile(r"((?:client_secret|password|access_token)=)[^&\s'\"]+")
_JSON_TOKEN = re.compile(r"(['\"](?:access_token|refresh_token)['\"]\s*:\s*['\"])[^'\"]+")


class _Redactor(logging.Filter):
    """Blanks secrets (ours, and any Authorization header or token) in log records."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def scrub(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):  # before any pattern
            text = text.replace(secret, "***")
        text = _AUTH_HEADER.sub(r"\1\2 ***", text)
        text = _FORM_SECRET.sub(r"\1***", text)
        return _JSON_TOKEN.sub(r"\1***", text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot format is shown as its template only
            message = str(record.msg)
        record.msg, record.args = self.scrub(message), None
        return True


_redactor = _Redactor()
_LOGGED_PACKAGES = ("exchangelib", "requests_oauthlib", "oauthlib")


def _guard_logs() -> None:
    """A filter on a logger only sees that logger's own records, so every existing logger
    of the packages that print headers or bodies gets one."""
    names = [
        n for n in list(logging.root.manager.loggerDict) if n.split(".", 1)[0] in _LOGGED_PACKAGES
    ]
    for name in [*_LOGGED_PACKAGES, *names]:
        logger = logging.getLogger(name)
        if _redactor not in logger.filters:
            logger.addFilter(_redactor)


class _Credentials(OAuth2Credentials):
    """Client credentials with a configurable authority (a national cloud, or a test)."""

    def __init__(self, *args: Any, authority: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.authority = authority.rstrip("/")

    @property
    def token_url(self) -> str:
        return f"{self.authority}/{self.tenant_id}/oauth2/v2.0/token"


class _Patience(FaultTolerance):
    """FaultTolerance bounded by max_wait, except that a 401 is a login failure: exchangelib's
    FaultTolerance would read it as throttling and retry bad credentials until max_wait."""

    def raise_response_errors(self, response: Any) -> Any:
        if response.status_code == 401:
            raise ews_errors.UnauthorizedError(f"HTTP 401 from {response.url}")
        return super().raise_response_errors(response)


def _build(version: str) -> Build:
    parts = [int(p) for p in version.split(".")]
    return Build(*parts)


class EwsTransport:
    """Sends through an Exchange mailbox; one exchangelib Account per sending mailbox."""

    name = "ews"

    def __init__(self, settings: EwsSettings) -> None:
        self.settings = settings
        self._accounts: dict[str, Account] = {}
        self._configuration: Configuration | None = None
        self._secret: str | None = None
        _guard_logs()

    # --- setup ----------------------------------------------------------------------------

    def _read_secret(self) -> str:
        """The password or client secret: from the Prefect Secret block when one is named,
        else from the environment variable."""
        s = self.settings
        oauth = s.auth == "oauth2"
        what = "client secret" if oauth else "password"
        block = s.client_secret_block if oauth else s.password_block
        if block:
            value = prefect_secret(block, "EWS")
            if not value:
                raise DeliveryError(
                    f"EWS {what} missing: the Prefect Secret block {block} is empty",
                    permanent=True,
                )
            return value
        env = s.client_secret_env if oauth else s.password_env
        value = os.environ.get(env, "")
        if not value:
            raise DeliveryError(
                f"EWS {what} missing: the environment variable {env} is empty", permanent=True
            )
        return value

    def credentials(self, mailbox: str) -> Credentials | OAuth2Credentials:
        """The exchangelib credentials the settings describe; the secret from the env."""
        s = self.settings
        secret = self._read_secret()
        self._secret = secret
        _redactor.secrets.add(secret)
        if s.auth == "oauth2":
            return _Credentials(
                client_id=s.client_id,
                client_secret=secret,
                tenant_id=s.tenant_id,
                identity=Identity(primary_smtp_address=mailbox),
                authority=s.authority,
            )
        assert s.username is not None  # the settings validator requires it
        if s.auth == "basic":  # requests encodes Basic credentials as Latin-1 when it can
            for encoding in ("utf-8", "latin-1"):
                with contextlib.suppress(UnicodeError):
                    pair = f"{s.username}:{secret}".encode(encoding)
                    _redactor.secrets.add(base64.b64encode(pair).decode())
        return Credentials(username=s.username, password=secret)

    def configuration(self, mailbox: str) -> Configuration:
        if self._configuration is None:
            s = self.settings
            endpoint = s.service_endpoint or f"https://{s.server}/EWS/Exchange.asmx"
            auth_type = {"ntlm": NTLM, "basic": BASIC}.get(s.auth)  # None: from the credentials
            self._configuration = Configuration(
                credentials=self.credentials(mailbox),
                service_endpoint=endpoint,
                auth_type=auth_type,
                version=Version(build=_build(s.exchange_version)),
                retry_policy=_Patience(max_wait=s.max_wait_seconds),
            )
        return self._configuration

    def account(self, mailbox: str) -> Account:
        if mailbox not in self._accounts:
            s = self.settings
            impersonate = s.impersonation if s.impersonation is not None else s.auth == "oauth2"
            self._accounts[mailbox] = Account(
                primary_smtp_address=mailbox,
                config=self.configuration(mailbox),
                autodiscover=False,
                access_type=IMPERSONATION if impersonate else DELEGATE,
            )
        return self._accounts[mailbox]

    # --- the transport ----------------------------------------------------------------------

    def send(self, raw: bytes, sender: str, recipients: list[str]) -> Receipt:
        """Send ``raw`` as it is (MimeContent) to ``recipients`` and save it in Sent Items.

        Recipients in the message's To and Cc headers are given as such; any others (the
        envelope's blind copies) as Bcc, so everyone in ``recipients`` gets it once."""
        mailbox = self.settings.sender or sender
        to, cc, bcc = _split_recipients(raw, recipients)
        try:
            account = self.account(mailbox)
            message = Message(
                account=account,
                folder=account.sent,
                mime_content=raw,
                to_recipients=[Mailbox(email_address=a) for a in to] or None,
                cc_recipients=[Mailbox(email_address=a) for a in cc] or None,
                bcc_recipients=[Mailbox(email_address=a) for a in bcc] or None,
            )
            message.send_and_save()
        except DeliveryError:
            raise
        except Exception as e:
            raise self._error(e, ", ".join(recipients)) from None
        return Receipt(self.name, f"sent by EWS from {mailbox} to {len(recipients)}")

    def was_sent(self, message_id: str, sender: str) -> bool | None:
        """Whether Sent Items of the sending mailbox holds a message with this Message-ID;
        None when the lookup fails (the caller then cannot tell)."""
        mailbox = self.settings.sender or sender
        try:
            return bool(self.account(mailbox).sent.filter(message_id=message_id).exists())
        except Exception:
            return None

    # --- errors -----------------------------------------------------------------------------

    def _error(self, e: Exception, recipient: str) -> DeliveryError:
        name = type(e).__name__
        if isinstance(e, ews_errors.RateLimitError):
            text = f"Exchange stayed busy beyond max_wait_seconds={self.settings.max_wait_seconds}"
            permanent = False
        elif isinstance(e, ews_errors.UnauthorizedError):
            text = "Exchange refused the credentials (HTTP 401 or locked account)"
            permanent = True
        elif isinstance(e, requests.exceptions.RequestException | OSError):
            text = f"connection to Exchange failed: {name}: {e}"
            permanent = False
        else:
            text = f"{name}: {e}"
            permanent = name in _PERMANENT
        endpoint = self.settings.service_endpoint or self.settings.server
        return DeliveryError(
            _redactor.scrub(f"EWS ({endpoint}): {text}"), recipient=recipient, permanent=permanent
        )


def _split_recipients(raw: bytes, recipients: list[str]) -> tuple[list[str], list[str], list[str]]:
    headers = message_from_bytes(raw, policy=policy.SMTP)

    def listed(field: str) -> set[str]:
        return {a.lower() for _, a in getaddresses([str(v) for v in headers.get_all(field, [])])}

    in_to, in_cc = listed("To"), listed("Cc")
    to = [r for r in recipients if r.lower() in in_to]
    cc = [r for r in recipients if r.lower() in in_cc and r.lower() not in in_to]
    bcc = [r for r in recipients if r not in to and r not in cc]
    return to, cc, bcc
