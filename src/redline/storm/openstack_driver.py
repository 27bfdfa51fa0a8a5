"""Storm driver `openstack`: the same phases through the Compute API (openstacksdk, clouds.yaml).

One `GET /servers/detail?name=^redline-<run id>-` per poll interval lists every server of
the run; launches are `POST /servers` with the run id in the name and the metadata, deletes
`DELETE /servers/{id}`. Requests go through the openstacksdk compute proxy (a keystoneauth
adapter: token, catalog, retries) with an explicit microversion; the JSON is read here, by
pure functions, so that recorded responses test the mapping.

Ping and SSH are not attempted: redline only ever targets loopback and the network
namespaces it creates, so a cloud's addresses are out of bounds; those phases are skipped
with a note and the storm times create and delete.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redline.errors import UserError
from redline.storm.model import InstanceSpec, StormPlan
from redline.storm.probes import Pinger, SshOutcome

MICROVERSION = "2.79"
PREFIX = "redline-"


def server_state(server: dict[str, Any]) -> str:
    """Map a server's status / task state to the storm's vocabulary."""
    status = str(server.get("status", "")).upper()
    task = server.get("OS-EXT-STS:task_state")
    if status == "ACTIVE" and task in (None, ""):
        return "running"
    if status == "ERROR":
        return "error"
    if status in ("DELETED", "SOFT_DELETED"):
        return "deleted"
    return "building"


def states_from_list(doc: dict[str, Any], run_id: str) -> dict[str, str]:
    """name -> state for the servers of `run_id` in one `GET /servers/detail` response body."""
    prefix = f"{PREFIX}{run_id}-"
    out: dict[str, str] = {}
    for s in doc.get("servers", []):
        name = s.get("name", "")
        meta = s.get("metadata") or {}
        if not name.startswith(prefix) and meta.get("redline_run") != run_id:
            continue
        st = server_state(s)
        if st != "deleted":
            out[name] = st
    return out


def ids_from_list(doc: dict[str, Any], run_id: str) -> dict[str, str]:
    prefix = f"{PREFIX}{run_id}-"
    return {s["name"]: s["id"] for s in doc.get("servers", []) if s.get("name", "").startswith(prefix)}


def create_body(spec: InstanceSpec, image: str, flavor: str, network: str | None) -> dict[str, Any]:
    server: dict[str, Any] = {
        "name": spec.name,
        "imageRef": image,
        "flavorRef": flavor,
        "metadata": {"redline_run": spec.run_id, "redline_index": str(spec.index)},
        "networks": [{"uuid": network}] if network else "auto",
    }
    return {"server": server}


@dataclass
class OpenStackDriver:
    """`conn` is an openstack.connection.Connection (or anything with .compute.get/post/delete)."""

    conn: Any
    run_id: str
    image: str
    flavor: str
    network: str | None = None
    name: str = "openstack"

    def __post_init__(self) -> None:
        self._ids: dict[str, str] = {}

    def prepare(self, specs: list[InstanceSpec]) -> list[str]:
        return [
            "ping and ssh skipped: a cloud's addresses are not targets (redline targets only loopback and its own namespaces)"
        ]

    def _json(self, resp: Any) -> dict[str, Any]:
        if getattr(resp, "status_code", 200) >= 400:
            raise RuntimeError(f"HTTP {resp.status_code}: {getattr(resp, 'text', '')[:200]}")
        doc: dict[str, Any] = resp.json()
        return doc

    def launch(self, spec: InstanceSpec) -> None:
        body = create_body(spec, self.image, self.flavor, self.network)
        doc = self._json(self.conn.compute.post("/servers", json=body, microversion=MICROVERSION))
        self._ids[spec.name] = doc["server"]["id"]

    def _list(self) -> dict[str, Any]:
        params = {"name": f"^{PREFIX}{self.run_id}-"}
        return self._json(self.conn.compute.get("/servers/detail", params=params, microversion=MICROVERSION))

    def poll(self) -> dict[str, str]:
        doc = self._list()  # the one list call of this interval
        self._ids.update(ids_from_list(doc, self.run_id))
        return states_from_list(doc, self.run_id)

    def address(self, spec: InstanceSpec) -> str | None:
        return None

    def pinger(self) -> Pinger | None:
        return None

    def ssh(self, spec: InstanceSpec) -> SshOutcome:
        return SshOutcome(False, "not attempted")

    def delete(self, spec: InstanceSpec) -> None:
        sid = self._ids.get(spec.name)
        if sid is None:
            return
        resp = self.conn.compute.delete(f"/servers/{sid}", microversion=MICROVERSION)
        if getattr(resp, "status_code", 204) not in (204, 404):
            raise RuntimeError(f"delete {spec.name}: HTTP {resp.status_code}")

    def cleanup(self) -> list[str]:
        done = []
        try:
            for name, sid in ids_from_list(self._list(), self.run_id).items():
                self.conn.compute.delete(f"/servers/{sid}", microversion=MICROVERSION)
                done.append(f"removed server {name}")
        except Exception as exc:  # noqa: BLE001 — cleanup never raises
            done.append(f"cleanup failed: {exc}")
        return done


def open_driver(
    run_id: str,
    plan: StormPlan,
    cloud: str | None = None,
    image: str | None = None,
    flavor: str | None = None,
    network: str | None = None,
) -> tuple[OpenStackDriver, list[InstanceSpec], dict[str, Any]]:
    import os

    try:
        import openstack
    except ImportError:
        raise UserError("the openstack driver needs openstacksdk: pip install 'redline[openstack]'") from None
    cloud = cloud or os.environ.get("OS_CLOUD")
    image = image or os.environ.get("REDLINE_IMAGE")
    flavor = flavor or os.environ.get("REDLINE_FLAVOR")
    if not (cloud and image and flavor):
        raise UserError("the openstack driver needs OS_CLOUD (clouds.yaml), REDLINE_IMAGE and REDLINE_FLAVOR")
    try:
        conn = openstack.connect(cloud=cloud)
    except Exception as exc:  # noqa: BLE001 — any failure to configure is the user's to fix
        raise UserError(f"cannot configure cloud {cloud!r}: {exc}") from None
    drv = OpenStackDriver(conn, run_id, image, flavor, network or os.environ.get("REDLINE_NETWORK"))
    specs = [InstanceSpec(i, f"{PREFIX}{run_id}-{i}", run_id) for i in range(plan.count)]
    return drv, specs, {"kind": "openstack", "cloud": cloud, "image": image, "flavor": flavor}
