"""Storm driver `openstack`: the same phases through the Compute API (openstacksdk, clouds.yaml).

One `GET /servers/detail?name=^redline-<run id>-` per poll interval lists every server of
the run; launches are `POST /servers` with the run id in the name and the metadata, deletes
`DELETE /servers/{id}`. Requests go through the openstacksdk compute proxy (a keystoneauth
adapter: token, catalog, retries) with an explicit microversion and a timeout; the JSON is
read here, by pure functions, so that canned responses (handwritten, not recorded) test the mapping.

That one list body says more than "building": Nova's task state (scheduling,
block_device_mapping, networking, spawning; deleting), which the runner records as
sub-marks (`observed()`), and the status, task state and fault a stuck instance is
reported with.

Reaching the guest: redline only ever targets loopback and the network namespaces it
creates, so a cloud's addresses are out of bounds and ping and SSH are skipped. Given a
guest marker (the OpenStack lab: servers boot with `networks: none`, no data plane), the
"ssh" slot is reached instead when the marker appears on the guest's serial console,
read with `os-getConsoleOutput` — at most one call in flight per instance, only for ACTIVE
instances not yet up; `labels` tells every reader it is a console marker, not a login.

Cleanup deletes every server of the run through the API, waits (bounded) until the list
no longer shows them, then — when the compute host is this machine (the lab's libvirt
URI) — removes any libvirt domain nova-compute left behind for them (nova_domains.py).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from redline.errors import UserError
from redline.storm.model import InstanceSpec, Observed, StormPlan
from redline.storm.nova_domains import NovaServer, remove_nova_domains
from redline.storm.probes import Pinger, SshOutcome

MICROVERSION = "2.79"
PREFIX = "redline-"
# Nova's task states an instance passes (nova/compute/task_states.py), with the storm phase
# each lies in; any other task state (a resize, a snapshot) is not a storm's.
TASK_MARKS = (
    ("scheduling", "create"),
    ("block_device_mapping", "create"),
    ("networking", "create"),
    ("spawning", "create"),
    ("deleting", "delete"),
)
NO_NETWORK = "none"  # Nova's "networks": "none" (2.37+): a server without a port
CONSOLE_LINES = 50

# Removes the libvirt domains left for a run's servers; one line per domain (nova_domains.py).
DomainReaper = Callable[[Sequence[NovaServer]], list[str]]


class ComputeError(RuntimeError):
    """A Compute API call that failed: refused, timed out, or answered with an error."""


def api_error(exc: BaseException) -> str:
    """One short line for a failed request (keystoneauth's messages run to several hundred
    characters of urllib3 retries)."""
    text = str(exc)
    m = re.search(r"Unable to establish connection to (\S+?):? ", text + " ")
    if m:
        why = "connection refused" if "refused" in text.lower() else "no connection"
        return f"{why} ({m.group(1).split('?')[0]})"
    if "timed out" in text.lower():
        return f"timed out: {text[:160]}"
    return f"{type(exc).__name__}: {text[:200]}"


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


def _of_run(server: dict[str, Any], run_id: str) -> bool:
    meta = server.get("metadata") or {}
    return str(server.get("name", "")).startswith(f"{PREFIX}{run_id}-") or meta.get("redline_run") == run_id


def states_from_list(doc: dict[str, Any], run_id: str) -> dict[str, str]:
    """name -> state for the servers of `run_id` in one `GET /servers/detail` response body."""
    out: dict[str, str] = {}
    for s in doc.get("servers", []):
        if not _of_run(s, run_id):
            continue
        st = server_state(s)
        if st != "deleted":
            out[s.get("name", "")] = st
    return out


def observed_from_list(doc: dict[str, Any], run_id: str) -> dict[str, Observed]:
    """name -> status, task state and fault message, for the servers of `run_id`."""
    out: dict[str, Observed] = {}
    for s in doc.get("servers", []):
        if not _of_run(s, run_id) or server_state(s) == "deleted":
            continue
        fault = s.get("fault") or {}
        message = str(fault.get("message", "")) if isinstance(fault, dict) else ""
        task = s.get("OS-EXT-STS:task_state")
        out[s.get("name", "")] = Observed(str(s.get("status", "?")), str(task) if task else None, message[:160])
    return out


def ids_from_list(doc: dict[str, Any], run_id: str) -> dict[str, str]:
    """name -> id of the run's servers that still exist (status DELETED is Nova saying it is gone,
    listed for a moment until its record is soft-deleted: nothing is left to remove)."""
    prefix = f"{PREFIX}{run_id}-"
    return {
        s["name"]: s["id"]
        for s in doc.get("servers", [])
        if s.get("name", "").startswith(prefix) and server_state(s) != "deleted"
    }


def instance_names_from_list(doc: dict[str, Any], run_id: str) -> dict[str, str]:
    """name -> the libvirt domain name Nova gave it (admin only: absent otherwise)."""
    return {
        s["name"]: str(s["OS-EXT-SRV-ATTR:instance_name"])
        for s in doc.get("servers", [])
        if _of_run(s, run_id) and s.get("OS-EXT-SRV-ATTR:instance_name")
    }


def create_body(spec: InstanceSpec, image: str, flavor: str, network: str | None) -> dict[str, Any]:
    """`network`: a network id, or Nova's "none" / "auto"; None means "auto"."""
    networks: Any = (
        "auto" if network in (None, "", "auto") else NO_NETWORK if network == NO_NETWORK else [{"uuid": network}]
    )
    server: dict[str, Any] = {
        "name": spec.name,
        "imageRef": image,
        "flavorRef": flavor,
        "metadata": {"redline_run": spec.run_id, "redline_index": str(spec.index)},
        "networks": networks,
    }
    return {"server": server}


def console_marker_line(output: str, marker: str) -> str | None:
    """The console line that carries the marker (None: not printed yet)."""
    for line in output.splitlines():
        if marker in line:
            return line.strip()[-200:]
    return None


@dataclass
class OpenStackDriver:
    """`conn` is an openstack.connection.Connection (or anything with .compute.get/post/delete)."""

    conn: Any
    run_id: str
    image: str
    flavor: str
    network: str | None = None  # a network id, or "none" / "auto" (None: "auto")
    guest_marker: str | None = None  # "guest up" = this on the serial console; None: no guest check
    domains: DomainReaper | None = None  # leftover libvirt domains, when the compute host is this one
    cleanup_wait_s: float = 60.0  # how long cleanup waits for deleted servers to leave the list
    cleanup_poll_s: float = 1.0
    console_lines: int = CONSOLE_LINES
    name: str = "openstack"
    task_marks: ClassVar[tuple[tuple[str, str], ...]] = TASK_MARKS
    _ids: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _instance_names: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _observed: dict[str, Observed] = field(default_factory=dict, init=False, repr=False)
    _calls: Counter[str] = field(default_factory=Counter, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def labels(self) -> dict[str, str]:
        out = {"running": "running (ACTIVE)"}
        if self.guest_marker:
            out["ssh"] = f"guest up (console marker {self.guest_marker})"
        return out

    def prepare(self, specs: list[InstanceSpec]) -> list[str]:
        if not self.guest_marker:
            return [
                "ping and ssh skipped: a cloud's addresses are not targets (redline targets only loopback and its own namespaces)"
            ]
        why = (
            "lab servers boot with networks none (no data plane without Neutron agents)"
            if self.network == NO_NETWORK
            else "a cloud's addresses are not targets (redline targets only loopback and its own namespaces)"
        )
        return [
            f"ping and ssh replaced by the guest's console marker: {why}",
            f"guest up = {self.guest_marker!r} in the last {self.console_lines} lines of the serial console "
            "(os-getConsoleOutput), at most one call in flight per instance, only for ACTIVE ones",
        ]

    # -- the Compute API, every call counted --

    def _call(self, kind: str, method: str, url: str, **kw: Any) -> Any:
        with self._lock:
            self._calls[kind] += 1
        try:
            return getattr(self.conn.compute, method)(url, microversion=MICROVERSION, **kw)
        except Exception as exc:  # noqa: BLE001 — keystoneauth raises many kinds; one short line for all
            raise ComputeError(api_error(exc)) from None

    def api_calls(self) -> dict[str, int]:
        with self._lock:
            return {"list": 0, **self._calls}

    @staticmethod
    def _json(resp: Any) -> dict[str, Any]:
        if getattr(resp, "status_code", 200) >= 400:
            raise ComputeError(f"HTTP {resp.status_code}: {getattr(resp, 'text', '')[:200]}")
        doc: dict[str, Any] = resp.json()
        return doc

    def _list(self, kind: str) -> dict[str, Any]:
        params = {"name": f"^{PREFIX}{self.run_id}-"}
        doc = self._json(self._call(kind, "get", "/servers/detail", params=params))
        self._ids.update(ids_from_list(doc, self.run_id))
        self._instance_names.update(instance_names_from_list(doc, self.run_id))
        self._observed = observed_from_list(doc, self.run_id)
        return doc

    # -- the storm --

    def launch(self, spec: InstanceSpec) -> None:
        body = create_body(spec, self.image, self.flavor, self.network)
        doc = self._json(self._call("create", "post", "/servers", json=body))
        self._ids[spec.name] = doc["server"]["id"]

    def poll(self) -> dict[str, str]:
        return states_from_list(self._list("list"), self.run_id)  # the one list call of this interval

    def observed(self) -> dict[str, Observed]:
        return self._observed

    def address(self, spec: InstanceSpec) -> str | None:
        # With a marker the guest is checked through the API, not reached: any token will do.
        return spec.name if self.guest_marker else None

    def pinger(self) -> Pinger | None:
        return None

    def ssh(self, spec: InstanceSpec) -> SshOutcome:
        """One look at the guest's console for the marker (the runner keeps one in flight)."""
        sid = self._ids.get(spec.name)
        if not self.guest_marker or sid is None:
            return SshOutcome(False, "not attempted")
        body = {"os-getConsoleOutput": {"length": self.console_lines}}
        try:
            doc = self._json(self._call("console", "post", f"/servers/{sid}/action", json=body))
        except ComputeError as exc:
            return SshOutcome(False, str(exc))
        line = console_marker_line(str(doc.get("output") or ""), self.guest_marker)
        return SshOutcome(line is not None, line or "marker not on the console yet")

    def delete(self, spec: InstanceSpec) -> None:
        sid = self._ids.get(spec.name)
        if sid is None:
            return
        resp = self._call("delete", "delete", f"/servers/{sid}")
        if getattr(resp, "status_code", 204) not in (204, 404):
            raise ComputeError(f"delete {spec.name}: HTTP {resp.status_code}")

    # -- cleanup --

    def cleanup(self) -> list[str]:
        done: list[str] = []
        try:
            targets = ids_from_list(self._list("cleanup_list"), self.run_id)
            listing = True
        except ComputeError as exc:
            # The API may be gone: delete what the storm knows of, by id.
            targets, listing = dict(self._ids), False
            done.append(f"could not list the run's servers for cleanup: {exc}")
        before = dict(self._observed)
        asked: list[str] = []
        for name, sid in sorted(targets.items()):
            try:
                resp = self._call("cleanup_delete", "delete", f"/servers/{sid}")
                if getattr(resp, "status_code", 204) in (204, 404, 409):  # 409: already being deleted
                    asked.append(name)
                else:
                    done.append(f"could not delete server {name}: HTTP {resp.status_code}")
            except ComputeError as exc:
                done.append(f"could not delete server {name}: {exc}")
                if "connection refused" in str(exc):
                    break  # the API is down: the others would only fail the same way
        left = set(asked)
        waited = 0.0
        t0 = time.monotonic()
        while left and listing and waited < self.cleanup_wait_s:
            time.sleep(self.cleanup_poll_s)
            waited = time.monotonic() - t0
            try:
                left &= set(states_from_list(self._list("cleanup_list"), self.run_id))
            except ComputeError as exc:
                done.append(f"stopped waiting for the deleted servers to go: {exc}")
                break
        for name in asked:
            was = before.get(name)
            if name not in left:
                done.append(f"deleted server {name}" + (f" (was {was.text})" if was else ""))
            else:
                now = self._observed.get(name, was)
                done.append(
                    f"server {name} still listed {waited:.0f} s after its delete"
                    + (f" ({now.text})" if now else "")
                    + f": left to Nova (id {targets[name]})"
                )
        if self.domains is not None:
            servers = [NovaServer(n, sid, self._instance_names.get(n)) for n, sid in sorted(self._ids.items())]
            done += self.domains(servers)
        return done


@dataclass(frozen=True)
class OpenStackStormConfig:
    """Where and what to boot: a clouds.yaml entry, an image and a flavor, and what the
    OpenStack lab adds (its own clouds.yaml, no network, the guest marker, its libvirtd)."""

    cloud: str
    image: str
    flavor: str
    clouds_yaml: Path | None = None  # read this file only; None: openstacksdk's search ($OS_CLIENT_CONFIG_FILE, …)
    network: str | None = None  # a network id, or "none" / "auto"; None: "auto"
    guest_marker: str | None = None
    libvirt_uri: str | None = None  # the compute host's libvirtd, when it is this machine
    api_timeout_s: float = 60.0  # per request: a hung API must not outlast --timeout

    def describe(self) -> dict[str, Any]:
        return {"kind": "openstack", "cloud": self.cloud, "image": self.image, "flavor": self.flavor,
                "network": self.network}  # fmt: skip


def _quiet_sdk_logs() -> None:
    """keystoneauth and openstacksdk log warnings (version discovery, retries) that Python
    would print on stderr: a user error must stay one line. A handler on their loggers keeps
    them off the last-resort handler; an application's own logging still receives them."""
    for name in ("keystoneauth", "openstack"):
        log = logging.getLogger(name)
        if not log.handlers:
            log.addHandler(logging.NullHandler())


def connect(config: OpenStackStormConfig) -> Any:
    """A connection to the cloud, checked with one request; every failure is one UserError."""
    try:
        import openstack
        import openstack.config
        from openstack import connection
    except ImportError:
        # openstacksdk is a dependency of redline: only a broken environment lacks it.
        raise UserError(
            "the openstack driver needs openstacksdk, a dependency of redline: pip install redline"
        ) from None
    _quiet_sdk_logs()
    try:
        if config.clouds_yaml is not None:
            # This file only (not ~/.config/openstack nor $OS_CLIENT_CONFIG_FILE), and no OS_*
            # variable either: the lab's entry exactly as the lab wrote it.
            secure = config.clouds_yaml.with_name("secure.yaml")
            loader = openstack.config.OpenStackConfig(
                config_files=[str(config.clouds_yaml)],
                secure_files=[str(secure)] if secure.is_file() else [],
                vendor_files=[],
                load_envvars=False,
            )
            region = loader.get_one(cloud=config.cloud, api_timeout=config.api_timeout_s)
            conn = connection.Connection(config=region)
        else:
            conn = openstack.connect(cloud=config.cloud, api_timeout=config.api_timeout_s)
    except Exception as exc:  # noqa: BLE001 — any failure to configure is the user's to fix
        raise UserError(f"cannot configure cloud {config.cloud!r}: {exc}") from None
    try:
        # Authenticates and finds the Compute endpoint: a Keystone or nova-api that is down is
        # one line here, before any server is requested.
        resp = conn.compute.get("/", microversion=MICROVERSION)
        if resp.status_code >= 400:
            raise ComputeError(f"HTTP {resp.status_code}")
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"cannot reach the Compute API of cloud {config.cloud!r}: {api_error(exc)}") from None
    return conn


def open_driver(
    run_id: str, plan: StormPlan, config: OpenStackStormConfig
) -> tuple[OpenStackDriver, list[InstanceSpec]]:
    conn = connect(config)
    reaper = partial(remove_nova_domains, config.libvirt_uri) if config.libvirt_uri else None
    drv = OpenStackDriver(conn, run_id, config.image, config.flavor, config.network, config.guest_marker, reaper)
    return drv, storm_specs(run_id, plan.count)


def storm_specs(run_id: str, count: int) -> list[InstanceSpec]:
    return [InstanceSpec(i, f"{PREFIX}{run_id}-{i}", run_id) for i in range(count)]
