"""GraphTransport against the fake Graph of tests/graph_server.py.

Graph cannot run here; that server speaks its wire format (msal's tenant discovery and
client-credentials token endpoint, sendMail with base64 MIME, the Sent Items query), over
HTTPS on 127.0.0.1. Faults are the server's real answers (429 with Retry-After, 503, 500,
401 for an expired token, Graph error bodies). Waits go through a recording ``sleep``, so
the tests check the order of requests and waits, never the clock.
"""

from __future__ import annotations

import base64
import datetime as dt
import email
import logging
import traceback
import uuid
from email import policy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from hytetu.errors import DeliveryError
from hytetu.graph import MAX_REQUEST_BYTES, GraphTransport, odata_string
from hytetu.mail import Attachment, MailSettings, build_message, make_transport

if TYPE_CHECKING:
    from graph_server import GraphServer

# the fixture; its module is not imported here, so that pytest loads it as a plugin
pytest_plugins = ["graph_server"]

SENDER = "hyte@hyvaks.example"
SUBJECT = "Muistio: Jämsä, Keuruu, Multia ja Petäjävesi – hyte-neuvottelu 2025 (ö)"
MESSAGE_ID = "<0123456789abcdef.hytetu@hyvaks.example>"
TO = ["kirjaamo@jamsa.example", "kirjaamo@keuruu.example"]


def raw_message(
    to: list[str] = TO, message_id: str = MESSAGE_ID, attachment: bytes | None = None
) -> bytes:
    msg = build_message(
        sender=("Keski-Suomen hyvinvointialue", SENDER),
        to=[(f"Kirjaamo {i}", address) for i, address in enumerate(to)],
        subject=SUBJECT,
        text="Hei,\n\nmuistio liitteenä. Ääkköset: äöå.\n",
        message_id=message_id,
        date=dt.datetime(2025, 11, 20, 9, 0, tzinfo=dt.UTC),
        purpose="registry_letter",
        calendar=b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n",
        attachments=[Attachment("muistio.pdf", attachment or b"%PDF-1.7\r\n\x00\xff" * 50)],
    )
    return msg.as_bytes()


def transport(server: GraphServer, **settings: Any) -> GraphTransport:
    """A transport whose waits are recorded in the server's event log, in order."""
    return GraphTransport(
        server.settings(**settings), sleep=lambda s: server.events.append(f"sleep {s:g}")
    )


def error_text(error: BaseException) -> str:
    """Everything an operator could see of an error: message, repr, traceback, causes."""
    parts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    for linked in (error.__cause__, error.__context__):
        if linked is not None:
            parts += [str(linked), repr(linked)]
    return "\n".join(parts + [str(getattr(error, "recipient", ""))])


def graph_events(server: GraphServer) -> list[str]:
    """Requests to Graph and the waits between them (token traffic left out)."""
    return [e for e in server.events if " token " not in e and " openid " not in e]


# --- sending ---------------------------------------------------------------------------


def test_sends_the_exact_mime_base64_encoded_as_text_plain(graph_server: GraphServer) -> None:
    raw = raw_message()
    receipt = transport(graph_server).send(raw, SENDER, TO)

    (call,) = graph_server.calls("sendMail")
    assert call.method == "POST"
    assert call.path == f"/v1.0/users/{SENDER}/sendMail"
    assert call.headers["content-type"] == "text/plain"
    assert call.headers["authorization"].startswith("Bearer ")
    assert base64.b64decode(call.body, validate=True) == raw  # exactly the bytes
    assert graph_server.sent == [raw]
    received = email.message_from_bytes(graph_server.sent[0], policy=policy.default)
    assert received["Message-ID"] == MESSAGE_ID
    assert received["Subject"] == SUBJECT
    assert [p.get_content_type() for p in received.walk()].count("text/calendar") == 2
    assert receipt.transport == "graph"
    assert SENDER in receipt.detail and "request-id" in receipt.detail
    token = call.headers["authorization"].split(" ", 1)[1]
    assert token not in receipt.detail


def test_the_token_comes_by_client_credentials_and_is_cached(graph_server: GraphServer) -> None:
    graph = transport(graph_server)
    graph.send(raw_message(), SENDER, TO)
    graph.send(raw_message(message_id="<second.hytetu@hyvaks.example>"), SENDER, TO)

    (token_call,) = graph_server.calls("token")
    form = token_call.form
    assert form["grant_type"] == "client_credentials"
    assert form["client_id"] == graph_server.client_id
    assert form["client_secret"] == graph_server.secret
    assert form["scope"] == f"{graph_server.url}/.default"
    assert len(graph_server.sent) == 2


def test_the_sender_setting_overrides_the_region_sender(graph_server: GraphServer) -> None:
    transport(graph_server, sender="neuvottelut@hyvaks.example").send(raw_message(), SENDER, TO)
    (call,) = graph_server.calls("sendMail")
    assert call.path == "/v1.0/users/neuvottelut@hyvaks.example/sendMail"


def test_make_transport_routes_graph_to_the_server(
    graph_server: GraphServer, tmp_path: Path
) -> None:
    mail = MailSettings(transport="graph", graph=graph_server.settings())
    chosen = make_transport(mail, tmp_path)
    assert isinstance(chosen, GraphTransport)
    raw = raw_message()
    chosen.send(raw, SENDER, TO)
    assert graph_server.sent == [raw]


def test_a_message_over_the_request_limit_fails_before_anything_is_sent(
    graph_server: GraphServer,
) -> None:
    big = raw_message(attachment=b"\x00\x01\x02" * (MAX_REQUEST_BYTES // 5))
    assert len(big) < MAX_REQUEST_BYTES < len(base64.b64encode(big))  # fits only unencoded
    with pytest.raises(DeliveryError) as info:
        transport(graph_server).send(big, SENDER, TO)
    assert info.value.permanent is True
    assert "4 MB" in str(info.value) and "smtp" in str(info.value)
    assert "nothing was sent" in str(info.value)
    assert graph_server.requests == []  # not even a token


# --- throttling and transient errors ------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"), [(429, "ApplicationThrottled"), (503, "ServiceUnavailable")]
)
def test_retry_after_is_waited_before_the_second_attempt(
    graph_server: GraphServer, status: int, code: str
) -> None:
    graph_server.inject(
        "sendMail", graph_server.error(status, code, "Too many", **{"Retry-After": "7"})
    )
    raw = raw_message()
    transport(graph_server).send(raw, SENDER, TO)
    assert graph_events(graph_server) == [
        f"POST sendMail {status}",
        "sleep 7",
        "POST sendMail 202",
    ]
    assert graph_server.sent == [raw]  # once


def test_500_backs_off_with_jitter_and_resends_when_sent_items_lacks_it(
    graph_server: GraphServer,
) -> None:
    graph_server.inject("sendMail", graph_server.error(500, "InternalServerError", "Oops"))
    transport(graph_server).send(raw_message(), SENDER, TO)
    events = graph_events(graph_server)
    assert events[0] == "POST sendMail 500"
    assert events[1].startswith("sleep ") and 0.5 <= float(events[1].split()[1]) <= 1.0
    assert events[2:] == ["GET sentItems 200", "POST sendMail 202"]
    assert len(graph_server.sent) == 1


def test_500_after_the_message_went_out_does_not_send_it_twice(
    graph_server: GraphServer,
) -> None:
    """A 500 can come after Exchange took the message; Sent Items tells, before a retry."""
    raw = raw_message()

    def went_out_anyway(request: Any) -> dict[str, Any]:
        graph_server.sent_items.setdefault(SENDER, []).append(raw)
        return graph_server.error(500, "InternalServerError", "Oops").body  # type: ignore[return-value]

    graph_server.inject("sendMail", graph_server.Reply(500, went_out_anyway))
    receipt = transport(graph_server).send(raw, SENDER, TO)
    assert "Sent Items" in receipt.detail
    assert len(graph_server.calls("sendMail")) == 1


def test_attempts_are_bounded_and_back_off_grows(graph_server: GraphServer) -> None:
    graph_server.inject("sendMail", *[graph_server.error(503, "ServiceUnavailable", "Busy")] * 5)
    with pytest.raises(DeliveryError) as info:
        transport(graph_server, max_attempts=3).send(raw_message(), SENDER, TO)
    assert info.value.permanent is False  # the outbox tries again later
    assert info.value.attempt == 3
    assert "503" in str(info.value) and "3 attempts" in str(info.value)
    waits = [float(e.split()[1]) for e in graph_server.events if e.startswith("sleep")]
    assert len(waits) == 2 and 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0
    assert len(graph_server.calls("sendMail")) == 3
    assert graph_server.sent == []


def test_a_retry_after_beyond_the_wait_bound_gives_up_at_once(graph_server: GraphServer) -> None:
    graph_server.inject(
        "sendMail",
        graph_server.error(429, "ApplicationThrottled", "Slow", **{"Retry-After": "600"}),
    )
    with pytest.raises(DeliveryError) as info:
        transport(graph_server, max_wait_seconds=300).send(raw_message(), SENDER, TO)
    assert info.value.permanent is False
    assert "429" in str(info.value) and "600" in str(info.value) and "300" in str(info.value)
    assert not any(e.startswith("sleep") for e in graph_server.events)
    assert len(graph_server.calls("sendMail")) == 1


# --- tokens ---------------------------------------------------------------------------


def test_an_expired_token_is_refreshed_once_and_the_send_retried(
    graph_server: GraphServer,
) -> None:
    graph = transport(graph_server)
    graph.send(raw_message(), SENDER, TO)
    graph_server.expire_tokens()
    graph.send(raw_message(message_id="<second.hytetu@hyvaks.example>"), SENDER, TO)

    assert [e for e in graph_server.events if "openid" not in e] == [
        "POST token 200",
        "POST sendMail 202",
        "POST sendMail 401",
        "POST token 200",
        "POST sendMail 202",
    ]
    first, second = graph_server.calls("sendMail")[1:]
    assert first.headers["authorization"] != second.headers["authorization"]
    assert len(graph_server.sent) == 2


def test_a_token_near_its_expiry_is_replaced_before_use(graph_server: GraphServer) -> None:
    """msal treats a token with under five minutes left as expired and fetches a new one."""
    graph_server.token_lifetime = 60
    graph = transport(graph_server)
    graph.send(raw_message(), SENDER, TO)
    graph.send(raw_message(message_id="<second.hytetu@hyvaks.example>"), SENDER, TO)
    assert len(graph_server.calls("token")) == 2
    assert "POST sendMail 401" not in graph_server.events


def test_a_401_that_a_new_token_does_not_mend_is_permanent(graph_server: GraphServer) -> None:
    expired = graph_server.error(401, "InvalidAuthenticationToken", "Lifetime validation failed.")
    graph_server.inject("sendMail", expired, expired)
    with pytest.raises(DeliveryError) as info:
        transport(graph_server).send(raw_message(), SENDER, TO)
    assert info.value.permanent is True
    assert "401 InvalidAuthenticationToken" in str(info.value)
    assert len(graph_server.calls("token")) == 2
    assert len(graph_server.calls("sendMail")) == 2


# --- permanent errors and secrets --------------------------------------------------------


def test_invalid_recipients_is_permanent_with_graphs_code_and_message(
    graph_server: GraphServer,
) -> None:
    raw = raw_message(to=[])  # the fake refuses it as Graph does
    with pytest.raises(DeliveryError) as info:
        transport(graph_server).send(raw, SENDER, ["kirjaamo@jamsa.example"])
    assert info.value.permanent is True
    assert info.value.attempt == 1
    assert info.value.recipient == "kirjaamo@jamsa.example"
    text = str(info.value)
    assert "400 ErrorInvalidRecipients: At least one recipient is not valid." in text
    assert "request-id" in text
    assert len(graph_server.calls("sendMail")) == 1


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."),
        (404, "ErrorInvalidUser", "The requested user 'hyte@hyvaks.example' is invalid."),
        (413, "RequestEntityTooLarge", "The request is larger than 4 MB."),
    ],
)
def test_other_4xx_are_permanent_and_not_retried(
    graph_server: GraphServer, status: int, code: str, message: str
) -> None:
    graph_server.inject("sendMail", graph_server.error(status, code, message))
    with pytest.raises(DeliveryError) as info:
        transport(graph_server).send(raw_message(), SENDER, TO)
    assert info.value.permanent is True
    assert f"{status} {code}: {message}" in str(info.value)
    assert len(graph_server.calls("sendMail")) == 1


def test_a_wrong_client_secret_is_permanent_and_never_shown(
    graph_server: GraphServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "Väärä~salaisuus.123-abc"
    monkeypatch.setenv(graph_server.secret_env, wrong)
    with pytest.raises(DeliveryError) as info:
        transport(graph_server).send(raw_message(), SENDER, TO)
    assert info.value.permanent is True
    assert "invalid_client" in str(info.value) and "AADSTS7000215" in str(info.value)
    assert wrong not in error_text(info.value)
    assert graph_server.calls("sendMail") == []


def test_a_token_service_echoing_the_secret_does_not_leak_it(graph_server: GraphServer) -> None:
    graph_server.inject(
        "token",
        graph_server.Reply(
            401,
            lambda request: {
                "error": "invalid_client",
                "error_description": f"AADSTS7000215: got {request.form['client_secret']}",
            },
        ),
    )
    with pytest.raises(DeliveryError) as info:
        transport(graph_server).send(raw_message(), SENDER, TO)
    assert "AADSTS7000215" in str(info.value)
    assert graph_server.secret not in error_text(info.value)


def test_graph_echoing_the_token_leaks_it_neither_to_errors_nor_logs(
    graph_server: GraphServer, caplog: pytest.LogCaptureFixture
) -> None:
    def echo(request: Any) -> dict[str, Any]:
        header = request.headers["authorization"]
        return {"error": {"code": "ErrorInvalidRequest", "message": f"bad header {header}"}}

    graph_server.inject("sendMail", graph_server.error(503, "ServiceUnavailable", "Busy"))
    graph_server.inject("sendMail", graph_server.Reply(400, echo))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DeliveryError) as info:
        transport(graph_server).send(raw_message(), SENDER, TO)
    tokens = [c.headers["authorization"].split(" ", 1)[1] for c in graph_server.calls("sendMail")]
    assert "ErrorInvalidRequest" in str(info.value)
    for secret in [*tokens, graph_server.secret]:
        assert secret not in error_text(info.value)
        assert secret not in caplog.text
    assert "Graph" in caplog.text  # the 503 was logged, cleaned


def test_an_empty_secret_variable_is_a_configuration_error_before_any_request(
    graph_server: GraphServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(graph_server.secret_env)
    with pytest.raises(DeliveryError) as info:
        transport(graph_server).send(raw_message(), SENDER, TO)
    assert info.value.permanent is True
    assert graph_server.secret_env in str(info.value)
    assert graph_server.calls("token") == []


def test_a_certificate_signs_the_client_assertion(
    graph_server: GraphServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hytetu graph app")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = tmp_path / "hytetu-graph.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    graph_server.client_certificate = cert
    monkeypatch.delenv(graph_server.secret_env)
    monkeypatch.setenv("HYTETU_TEST_GRAPH_CERT", str(pem))

    transport(graph_server, certificate_path_env="HYTETU_TEST_GRAPH_CERT").send(
        raw_message(), SENDER, TO
    )
    (token_call,) = graph_server.calls("token")
    assert "client_secret" not in token_call.form
    assert token_call.form["client_assertion_type"].endswith("jwt-bearer")
    assert len(graph_server.sent) == 1


# --- Sent Items ---------------------------------------------------------------------------


def test_sent_items_lookup_quotes_the_message_id(graph_server: GraphServer) -> None:
    awkward = "<o'brien+1&$top=0#x%20?@hyvaks.example>"
    graph_server.put_in_sent_items(SENDER, raw_message(message_id=awkward))
    graph = transport(graph_server)

    assert graph.was_sent(awkward, SENDER) is True
    assert graph.was_sent(MESSAGE_ID, SENDER) is False
    first = graph_server.calls("sentItems")[0]
    assert first.path == f"/v1.0/users/{SENDER}/mailFolders('SentItems')/messages"
    assert first.query["$filter"] == f"internetMessageId eq {odata_string(awkward)}"
    assert first.query["$filter"].endswith("'<o''brien+1&$top=0#x%20?@hyvaks.example>'")
    assert "+" not in first.raw_path.split("?", 1)[1]  # '+' would be read as a space


def test_a_sent_message_is_found_by_its_message_id(graph_server: GraphServer) -> None:
    graph = transport(graph_server)
    assert graph.was_sent(MESSAGE_ID, SENDER) is False
    graph.send(raw_message(), SENDER, TO)
    assert graph.was_sent(MESSAGE_ID, SENDER) is True
    assert graph.was_sent(MESSAGE_ID, "toinen@hyvaks.example") is False  # another mailbox


def test_sent_items_lookup_retries_throttling(graph_server: GraphServer) -> None:
    graph_server.put_in_sent_items(SENDER, raw_message())
    graph_server.inject(
        "sentItems", graph_server.error(429, "ApplicationThrottled", "Slow", **{"Retry-After": "2"})
    )
    assert transport(graph_server).was_sent(MESSAGE_ID, SENDER) is True
    assert graph_events(graph_server) == ["GET sentItems 429", "sleep 2", "GET sentItems 200"]


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (403, "ErrorAccessDenied", "Access is denied."),
        (400, "BadRequest", "Invalid filter clause"),
        (200, None, "not a Graph collection"),
    ],
)
def test_sent_items_lookup_failing_is_none(
    graph_server: GraphServer, status: int, code: str | None, message: str
) -> None:
    if code is None:
        graph_server.inject("sentItems", graph_server.Reply(status, {"unexpected": message}))
    else:
        graph_server.inject("sentItems", graph_server.error(status, code, message))
    assert transport(graph_server).was_sent(MESSAGE_ID, SENDER) is None


def test_sent_items_lookup_without_a_server_is_none(graph_server: GraphServer) -> None:
    graph = transport(graph_server, max_attempts=1)
    graph_server.stop()
    assert graph.was_sent(MESSAGE_ID, SENDER) is None


# --- configuration and the whole path -------------------------------------------------------


@pytest.mark.prefect
def test_client_secret_from_a_prefect_secret_block(
    prefect_api: None, graph_server: GraphServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.blocks.system import Secret

    monkeypatch.delenv(graph_server.secret_env)
    name = f"hytetu-graph-test-{uuid.uuid4().hex[:8]}"
    Secret(value=graph_server.secret).save(name)

    transport(graph_server, client_secret_block=name).send(raw_message(), SENDER, TO)

    assert len(graph_server.sent) == 1
    with pytest.raises(DeliveryError, match="no-such-block") as info:
        transport(graph_server, client_secret_block="no-such-block").send(raw_message(), SENDER, TO)
    assert info.value.permanent is True
    assert len(graph_server.sent) == 1


def test_invitations_of_the_example_go_out_through_graph(
    graph_server: GraphServer, example: Path, sqlite_url: str, tmp_path: Path
) -> None:
    """region.yaml chooses graph; the invitations phase sends through it, once."""
    from conftest import helsinki

    from hytetu import phases

    settings = graph_server.settings()
    region = (example / "region.yaml").read_text(encoding="utf-8")
    if "\nmail:" in region:
        region = region.split("\nmail:", 1)[0] + "\n"
    mail = "\nmail:\n  transport: graph\n  graph:\n" + "".join(
        f"    {key}: '{value}'\n"
        for key, value in settings.model_dump(exclude_defaults=True).items()
    )
    (example / "region.yaml").write_text(region + mail, encoding="utf-8")
    phases.load(example, sqlite_url)

    report = phases.run_invitations(helsinki("2025-10-02 07:00"), tmp_path / "out", sqlite_url)

    assert report.failed == []
    assert report.sent == len(graph_server.sent) > 0
    for raw in graph_server.sent:
        msg = email.message_from_bytes(raw, policy=policy.default)
        assert msg["Subject"].startswith("Kutsu: ")
        assert "text/calendar" in [part.get_content_type() for part in msg.walk()]
    again = phases.run_invitations(helsinki("2025-10-02 07:30"), tmp_path / "out", sqlite_url)
    assert again.sent == 0
    assert len(graph_server.calls("sendMail")) == report.sent


def test_crash_recovery_asks_sent_items_before_resending(
    graph_server: GraphServer, loaded: str
) -> None:
    """Two rows left in ``sending`` by a dead run: one went out (found in Sent Items, not
    sent again), one did not (sent again, the same bytes)."""
    from sqlalchemy import select, update

    from hytetu import db
    from hytetu.outbox import deliver_pending, enqueue

    with db.session_scope(loaded) as s:
        cycle_id = s.scalars(select(db.Cycle.id)).first()
        for key in ("crash:went-out", "crash:never-left"):
            enqueue(
                s,
                cycle_id=cycle_id,
                dedupe_key=key,
                purpose="graph-test",
                sender_email=SENDER,
                build=lambda message_id: email.message_from_bytes(
                    raw_message(message_id=message_id), policy=policy.SMTP
                ),
            )
    graph = transport(graph_server)

    def deliver(lease_seconds: float) -> Any:
        return deliver_pending(
            loaded,
            graph,
            cycle_id=cycle_id,
            sender_email=SENDER,
            purposes=["graph-test"],
            lease_seconds=lease_seconds,
        )

    first = deliver(lease_seconds=600)
    assert len(first.sent) == 2
    went_out, never_left = first.sent
    with db.session_scope(loaded) as s:  # the crash: both rows still say "sending"
        s.execute(
            update(db.OutgoingMessage)
            .where(db.OutgoingMessage.id.in_(first.sent))
            .values(state="sending", claimed_at=None)
        )
        lost_raw = s.get_one(db.OutgoingMessage, never_left).raw
    graph_server.sent_items[SENDER].remove(lost_raw)  # that one never reached Graph

    report = deliver(lease_seconds=0)

    assert report.found_sent == [went_out]
    assert report.resent == [never_left]
    assert len(graph_server.calls("sendMail")) == 3
    assert graph_server.sent[-1] == lost_raw
    with db.session_scope(loaded) as s:
        states = {r.id: r.state for r in s.scalars(select(db.OutgoingMessage))}
    assert states[went_out] == states[never_left] == "sent"
