"""Time to fetch and mark handled 1,000 messages from Dovecot over IMAP.

    .venv/bin/python bench/readers.py [--messages 1000] [--security none|starttls|tls]

Starts the tests' throwaway Dovecot (tests/dovecot.py, Debian's dovecot-imapd) on
loopback, APPENDs ``--messages`` messages (the reader samples of tests/data/mail/readers,
each with its own Message-ID, cycled), then times one tick of the IMAP reader twice: once
marking by keyword (``$HytetuHandled`` and ``\\Seen``), once moving to ``Käsitellyt``.
The APPEND itself is not timed. Prints the figures; the load average too, as the machine
is shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from dovecot import PASSWORD, PASSWORD_ENV, Dovecot, running_dovecot  # noqa: E402

from hytetu.inbox import InboxSettings  # noqa: E402
from hytetu.readers_imap import ImapAccount, ImapReader  # noqa: E402

SAMPLES = sorted((ROOT / "tests" / "data" / "mail" / "readers").glob("*.eml"))


def messages(count: int) -> list[bytes]:
    out = []
    for i in range(count):
        raw = SAMPLES[i % len(SAMPLES)].read_bytes()
        head, sep, body = raw.partition(b"\r\n\r\n")
        lines = [
            line for line in head.split(b"\r\n") if not line.lower().startswith(b"message-id:")
        ]
        lines.append(f"Message-ID: <bench-{i:05d}@hyvaks.example>".encode())
        out.append(b"\r\n".join(lines) + sep + body)
    return out


def tick(server: Dovecot, security: str, **inbox: str) -> tuple[int, float]:
    port = server.tls_port if security == "tls" else server.port
    account = ImapAccount("127.0.0.1", port, security, server.user, PASSWORD_ENV, timeout=60)
    reader = ImapReader(account, InboxSettings(**inbox), ssl_context=server.tls_context())
    start = time.perf_counter()
    count = 0
    try:
        for mail in reader.fetch():
            reader.mark_handled(mail.key)
            count += 1
    finally:
        reader.close()
    return count, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--security", default="none", choices=["none", "starttls", "tls"])
    args = parser.parse_args()
    os.environ[PASSWORD_ENV] = PASSWORD
    with running_dovecot() as server:
        batch = messages(args.messages)
        size = sum(len(m) for m in batch)
        results = []
        for how, inbox in (
            ("keyword", {}),
            ("move to Käsitellyt", {"handled_folder": "Käsitellyt"}),
        ):
            # new messages for each way (the flagged ones of the first stay, and are skipped)
            server.append(batch, folder="INBOX")
            count, seconds = tick(server, args.security, **inbox)
            again, seconds_again = tick(server, args.security, **inbox)
            results.append((how, count, seconds, again, seconds_again))
        print(f"{args.messages} messages, {size / 1e6:.1f} MB, IMAP {args.security} on loopback")
        for how, count, seconds, again, seconds_again in results:
            print(
                f"  {how:20s} {count:5d} fetched+marked in {seconds:6.2f} s "
                f"({1000 * seconds / max(count, 1):.2f} ms each); "
                f"next tick {again} in {seconds_again:.3f} s"
            )
        print(f"  counts after: {server.counts()}")
        print(f"  load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
