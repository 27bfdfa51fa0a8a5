"""Helpers for tests that talk to identity services (reference or real Keystone)."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit


def call(url: str, method: str, path: str, body: dict | None = None, headers: dict | None = None):
    """One request; returns (status, headers dict (lower-case), decoded JSON or None)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, parts.path.rstrip("/") + path, body=data, headers=hdrs)
        r = conn.getresponse()
        raw = r.read()
        doc = json.loads(raw) if raw and r.getheader("Content-Type", "").startswith("application/json") else None
        return r.status, {k.lower(): v for k, v in r.getheaders()}, doc
    finally:
        conn.close()


def password_body(user: str, password: str, project: str | None) -> dict:
    auth: dict = {
        "identity": {
            "methods": ["password"],
            "password": {"user": {"name": user, "domain": {"name": "Default"}, "password": password}},
        }
    }
    if project:
        auth["scope"] = {"project": {"name": project, "domain": {"name": "Default"}}}
    return {"auth": auth}


def issue(url: str, user: str, password: str, project: str | None = "admin") -> str:
    status, headers, _ = call(url, "POST", "/auth/tokens", password_body(user, password, project))
    assert status == 201, status
    return headers["x-subject-token"]
