"""The lab's set-up calls through the real APIs (Keystone, Glance, Nova), as an operator
would make them: service users and the catalog, the guest image, the flavor. Not on any
measured path; plain http.client with a token.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from redline.errors import UserError
from redline.scenarios.keystone_client import KeystoneClient, password_auth_body


@dataclass
class Api:
    """One service endpoint called with the admin token."""

    url: str
    token: str = field(repr=False)
    what: str

    def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201, 202, 204),
             raw: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 120) -> Any:  # fmt: skip
        parts = urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
        hdrs = {"X-Auth-Token": self.token, "Accept": "application/json", **(headers or {})}
        data = raw
        if body is not None:
            data, hdrs["Content-Type"] = json.dumps(body).encode(), "application/json"
        try:
            conn.request(method, parts.path.rstrip("/") + path, body=data, headers=hdrs)
            r = conn.getresponse()
            text = r.read()
        except (OSError, http.client.HTTPException) as exc:
            raise UserError(f"{self.what} at {self.url} did not answer {method} {path}: {exc}") from None
        finally:
            conn.close()
        if r.status not in ok:
            raise UserError(
                f"{self.what} answered {r.status} to {method} {path}: {text[:200].decode(errors='replace')}"
            )
        return json.loads(text) if text.strip() else {}


def admin_token(keystone_v3: str, password: str) -> str:
    client = KeystoneClient(keystone_v3)
    return client.issue(password_auth_body("admin", password, "Default", "admin", "Default"), "user 'admin'").token


def register_services(ks: Api, service_password: str, users: tuple[str, ...], project: str,
                      endpoints: dict[str, tuple[str, str]]) -> None:  # fmt: skip
    """Project `project`, one user per service with roles admin and service in it, and the
    catalog: `endpoints` maps service type -> (name, URL), public and internal."""
    pid = ks.call("POST", "/projects", {"project": {"name": project, "domain_id": "default"}})["project"]["id"]
    roles = {r["name"]: r["id"] for r in ks.call("GET", "/roles")["roles"]}
    if "service" not in roles:  # the role service tokens must carry (service_token_roles)
        roles["service"] = ks.call("POST", "/roles", {"role": {"name": "service"}})["role"]["id"]
    for name in users:
        body = {"user": {"name": name, "domain_id": "default", "password": service_password}}
        uid = ks.call("POST", "/users", body)["user"]["id"]
        for role in ("admin", "service"):
            ks.call("PUT", f"/projects/{pid}/users/{uid}/roles/{roles[role]}")
    for stype, (name, url) in endpoints.items():
        sid = ks.call("POST", "/services", {"service": {"type": stype, "name": name}})["service"]["id"]
        for interface in ("public", "internal"):
            ks.call("POST", "/endpoints", {"endpoint": {"service_id": sid, "interface": interface, "url": url,
                                                        "region_id": "RegionOne"}})  # fmt: skip


def upload_guest(glance: Api, kernel: Path, initrd: Path, disk: Path, cmdline: str) -> str:
    """The micro-VM as a UEC image triple (aki, ari, ami); the id of the ami to boot."""

    def image(name: str, fmt: str, data: Path, extra: dict[str, str]) -> str:
        body = {"name": name, "disk_format": fmt, "container_format": fmt, "visibility": "public", **extra}
        iid: str = glance.call("POST", "/v2/images", body)["id"]
        glance.call("PUT", f"/v2/images/{iid}/file", raw=data.read_bytes(),
                    headers={"Content-Type": "application/octet-stream"})  # fmt: skip
        return iid

    kid = image("redline-guest-kernel", "aki", kernel, {})
    rid = image("redline-guest-initrd", "ari", initrd, {})
    return image("redline-guest", "ami", disk, {"kernel_id": kid, "ramdisk_id": rid, "os_command_line": cmdline})


def create_flavor(nova: Api, name: str, ram_mib: int, vcpus: int = 1, disk_gb: int = 1) -> str:
    body = {"flavor": {"name": name, "ram": ram_mib, "vcpus": vcpus, "disk": disk_gb}}
    fid: str = nova.call("POST", "/flavors", body)["flavor"]["id"]
    return fid
