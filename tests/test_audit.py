""".ci/audit (pip-audit against OSV) against a fake OSV service on loopback.

The server speaks OSV's wire format as pip-audit uses it (POST /v1/query, and
/v1/querybatch with GET /v1/vulns/ID for clients that batch) and knows one made-up advisory
for a package that is installed here, with or without a fixed release. The script runs
the real pip-audit over this very environment.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
AUDIT = ROOT / ".ci" / "audit"
PACKAGE = "jinja2"  # installed: a dependency of hytetu
ADVISORY = "HYTETU-TEST-2026-0001"


def advisory(fixed: str | None) -> dict[str, Any]:
    events: list[dict[str, str]] = [{"introduced": "0"}]
    if fixed:
        events.append({"fixed": fixed})
    return {
        "schema_version": "1.6.0",
        "id": ADVISORY,
        "aliases": ["CVE-2099-0001"],
        "summary": "a made-up vulnerability for the audit's test",
        "published": "2026-01-01T00:00:00Z",
        "modified": "2026-01-02T00:00:00Z",
        "affected": [
            {
                "package": {"name": PACKAGE, "ecosystem": "PyPI"},
                "ranges": [{"type": "ECOSYSTEM", "events": events}],
            }
        ],
    }


class FakeOsv(BaseHTTPRequestHandler):
    vulns: list[dict[str, Any]] = []
    queries: list[dict[str, Any]] = []

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _answer(self, body: Any, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _matches(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        self.queries.append(query)
        package = query.get("package", {})
        if package.get("ecosystem") != "PyPI" or package.get("name") != PACKAGE:
            return []
        return self.vulns if query.get("version") == version(PACKAGE) else []

    def do_POST(self) -> None:
        query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/v1/query":
            found = self._matches(query)
            self._answer({"vulns": found} if found else {})
        elif self.path == "/v1/querybatch":
            results = []
            for q in query["queries"]:
                found = [{"id": v["id"], "modified": v["modified"]} for v in self._matches(q)]
                results.append({"vulns": found} if found else {})
            self._answer({"results": results})
        else:
            self._answer({"code": 5, "message": "Not Found"}, 404)

    def do_GET(self) -> None:
        for vuln in self.vulns:
            if self.path == f"/v1/vulns/{vuln['id']}":
                self._answer(vuln)
                return
        self._answer({"code": 5, "message": "Not Found"}, 404)


@pytest.fixture
def osv() -> Iterator[Callable[[str | None], str]]:
    """Start the fake service knowing the advisory (fixed in the version given, or with no
    fix); returns the query URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(fixed: str | None) -> str:
        handler = type("Handler", (FakeOsv,), {"vulns": [advisory(fixed)], "queries": []})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/v1/query"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def audit(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(AUDIT), "--python", sys.executable],
        capture_output=True,
        text=True,
        timeout=240,
        env={"PATH": "/usr/bin:/bin", "HYTETU_AUDIT_OSV_URL": url, "HYTETU_AUDIT_TIMEOUT": "10"},
    )


def test_a_vulnerability_with_a_fix_fails_and_names_the_package(
    osv: Callable[[str | None], str],
) -> None:
    done = audit(osv("999.0"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"VULNERABLE:    {PACKAGE} {version(PACKAGE)}: CVE-2099-0001, {ADVISORY}" in done.stdout
    assert "fixed in 999.0" in done.stdout
    assert "dependency audit FAILED" in done.stdout


def test_a_vulnerability_without_a_fix_is_listed_and_passes(
    osv: Callable[[str | None], str],
) -> None:
    done = audit(osv(None))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"known, no fix: {PACKAGE} {version(PACKAGE)}: CVE-2099-0001, {ADVISORY}" in done.stdout
    assert "dependency audit passed" in done.stdout
    assert "1 known vulnerabilities without a fix" in done.stdout


def test_an_unreachable_service_is_skipped_loudly_and_passes() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = audit(f"http://127.0.0.1:{port}/v1/query")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "dependency audit SKIPPED: vulnerability service unreachable" in done.stdout


def test_ci_runs_the_audit_after_installing() -> None:
    run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    install = run.index("pip install")
    assert ".ci/audit" in run[install:]
