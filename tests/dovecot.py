"""A throwaway Dovecot IMAP server on loopback, for the mailbox reader tests.

Debian's ``dovecot-imapd`` (in ``.ci/debian-packages --test``), started with its own
configuration in a temporary folder: no system config, no root ports (free ports picked on
127.0.0.1), one user from a passwd-file with a test password, Maildir in the temporary
folder, plain IMAP (loopback) and implicit TLS with a throwaway self-signed certificate.
It runs as the current user (or, under root, drops to Dovecot's own users as the package
made them) and is stopped after the test. Use it as a plugin:
``pytest_plugins = ["dovecot"]`` and the ``dovecot`` fixture.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from imapclient import IMAPClient

USER = "hyte@hyvaks.example"
PASSWORD = "Imap-sal@sana-ÄÖ-7"  # noqa: S105 - a test secret, given through the environment
PASSWORD_ENV = "HYTETU_TEST_IMAP_PASSWORD"
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dovecot:
    """One running Dovecot; ``append`` fills a folder the way a delivery would."""

    user = USER
    password = PASSWORD
    password_env = PASSWORD_ENV

    def __init__(self, folder: Path, cert: Path, key: Path) -> None:
        self.folder = folder
        self.ca_file = str(cert)
        self.port = free_port()
        self.tls_port = free_port()
        self.config = folder / "dovecot.conf"
        self.log = folder / "dovecot.log"
        self._process: subprocess.Popen[bytes] | None = None
        for sub in ("run", "state", "home"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        if os.getuid() == 0:  # root: the package's unprivileged users, which own the tmp dir
            internal, login = "dovecot", "dovenull"
            mail = pwd.getpwnam("dovecot")
            for path in [folder, *folder.rglob("*")]:
                os.chown(path, mail.pw_uid, mail.pw_gid)
            folder.chmod(0o755)
        else:
            mail = pwd.getpwuid(os.getuid())
            internal = login = mail.pw_name
        group = grp.getgrgid(mail.pw_gid).gr_name
        users = folder / "users"
        users.write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n", encoding="utf-8")
        self.config.write_text(
            f"""
base_dir = {folder}/run
state_dir = {folder}/state
instance_name = hytetu-test-{self.port}
log_path = {self.log}
protocols = imap
listen = 127.0.0.1
default_internal_user = {internal}
default_internal_group = {group}
default_login_user = {login}
first_valid_uid = {mail.pw_uid}
last_valid_uid = {mail.pw_uid}
disable_plaintext_auth = no
auth_mechanisms = plain login
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users}
}}
userdb {{
  driver = static
  args = uid={mail.pw_uid} gid={mail.pw_gid} home={folder}/home/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  chroot =
}}
""",
            encoding="utf-8",
        )
        if os.getuid() == 0:
            mail_user = pwd.getpwnam("dovecot")
            for path in (self.config, users):
                os.chown(path, mail_user.pw_uid, mail_user.pw_gid)

    def start(self) -> Dovecot:
        self._process = subprocess.Popen(  # noqa: S603 - our own binary and config
            [DOVECOT, "-F", "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode() if self._process.stderr else ""
                log = self.log.read_text() if self.log.exists() else ""
                raise RuntimeError(f"dovecot exited: {error}\n{log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(100).startswith(b"* OK"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not answer on port {self.port}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)

    # --- for tests ---------------------------------------------------------------------

    def client(self) -> IMAPClient:
        """A logged-in client over plain IMAP (loopback)."""
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        client.plain_login(USER, PASSWORD)  # AUTHENTICATE PLAIN: UTF-8 (LOGIN is ASCII)
        return client

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def append(self, messages: Iterable[bytes | Path], folder: str = "INBOX") -> None:
        """IMAP APPEND each message (bytes or a .eml file) to ``folder``."""
        with self.client() as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            for message in messages:
                raw = message.read_bytes() if isinstance(message, Path) else message
                client.append(folder, raw)

    def counts(self) -> dict[str, int]:
        """Messages per folder, every folder of the account (none may vanish)."""
        with self.client() as client:
            names = [
                name
                for flags, _sep, name in client.list_folders()
                if b"\\Noselect" not in flags and b"\\NonExistent" not in flags
            ]
            return {n: client.folder_status(n, [b"MESSAGES"])[b"MESSAGES"] for n in names}


@contextmanager
def running_dovecot() -> Iterator[Dovecot]:
    """A Dovecot with an empty INBOX in a temporary folder, stopped and removed after; the
    caller puts the password in ``PASSWORD_ENV``."""
    from graph_server import tls_files  # a self-signed certificate for 127.0.0.1

    # not under pytest's tmp_path: pytest makes its folders 0700, which Dovecot's users
    # (under root) could not enter
    folder = Path(tempfile.mkdtemp(prefix="hytetu-dovecot-"))
    cert, key = tls_files()
    shutil.copy(cert, folder / "cert.pem")
    shutil.copy(key, folder / "key.pem")
    server = Dovecot(folder, folder / "cert.pem", folder / "key.pem").start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def dovecot(monkeypatch: pytest.MonkeyPatch) -> Iterator[Dovecot]:
    """A running Dovecot with an empty INBOX; the password in ``PASSWORD_ENV``."""
    if not Path(DOVECOT).exists():
        pytest.skip("dovecot-imapd is not installed (.ci/debian-packages --test)")
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    with running_dovecot() as server:
        yield server
