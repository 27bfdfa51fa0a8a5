"""`redline lab openstack`: a real compute control plane on this machine, every socket on
127.0.0.1 — MariaDB, RabbitMQ, memcached, Keystone, Placement, Glance, the Neutron API
server, nova-api, nova-conductor, nova-scheduler and nova-compute on libvirt + QEMU — from
one cached PyPI virtualenv and Debian's packages. Facts behind the recipe: LAB-NOTES.md.

Layout of the state directory:

    etc/<service>/…    the real configuration files (an audit root: `redline audit --root`)
    log/               every service's log
    db/, rabbitmq/     MariaDB's datadir and socket, RabbitMQ's mnesia
    keystone/ glance/ nova/ neutron/   keys, images, instances, locks
    image/             the micro-VM (built once, kept across `up`s)
    clouds.yaml        the admin's credentials for openstacksdk (0600)
    services.json      every process started so far (written as they start)
    lab.json           what others read (openstack_state); written once everything is up
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from redline import interrupts, procs
from redline.errors import UserError
from redline.lab import keystone_db, lab_venv
from redline.lab.image import build_image
from redline.lab.libvirtd import URI, LibvirtDaemons
from redline.lab.openstack_api import Api, admin_token, create_flavor, register_services, upload_guest
from redline.lab.openstack_conf import (
    ML2_CONF,
    SERVICE_PROJECT,
    SERVICE_USERS,
    WSGI_APPS,
    Ports,
    Secrets,
    clouds_yaml,
    glance_conf,
    gunicorn_conf,
    keystone_conf,
    keystone_url,
    neutron_conf,
    nova_api_conf,
    nova_conf,
    placement_conf,
    wsgi_workers,
    wsgi_wrapper,
)
from redline.lab.openstack_knobs import OpenStackKnobs
from redline.lab.openstack_procs import (
    Started,
    daemon,
    free_port,
    gunicorn,
    last_line,
    manage,
    memcached,
    rabbitmq,
    wait_port,
    wsgi_module,
)
from redline.lab.openstack_state import (
    CLOUD,
    GUEST_MARKER,
    STATE_FILE,
    OpenStackLabState,
    OpenStackService,
    default_state_dir,
    load_state,
)
from redline.libvirt_bindings import load_libvirt

# Pinned: the releases LAB-NOTES measured together; one venv holds them all without conflicts.
PACKAGES = ("keystone==30.0.0", "openstack-placement==16.0.0", "glance==33.0.0", "nova==34.0.0", "neutron==29.0.0",
            "PyMySQL", "gunicorn", "pymemcache", "python-memcached", "libvirt-python")  # fmt: skip
DATABASES = ("keystone", "placement", "glance", "neutron", "nova_api", "nova", "nova_cell0")
HOST = "redline-compute"
FLAVOR = "redline.tiny"
FLAVOR_RAM_MIB = 128
SECRETS_FILE = "secrets.json"
KEPT = ("image", "id_ed25519", "id_ed25519.pub")  # survive a new `up`: the image takes a minute to build
_START_TIMEOUT_S = 180.0


def _fresh_state_dir(d: Path) -> None:
    try:
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
        for child in d.iterdir():
            if child.name in KEPT:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
        for sub in ("log", "keystone", "glance/images", "glance/staging", "glance/tasks", "nova/instances", "nova/lock",
                    "neutron/lock", "glance/lock"):  # fmt: skip
            (d / sub).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot prepare {d}: {exc.strerror or exc}") from None


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    os.chmod(path, 0o600)  # they hold passwords


def _check_system() -> None:
    if os.geteuid() != 0:
        raise UserError("the OpenStack lab needs root (libvirtd, nova-compute's privsep, the database's service user)")
    missing = [exe for exe in ("mariadbd", "memcached", "qemu-img", "libvirtd", "qemu-system-x86_64")
               if shutil.which(exe) is None and not os.access(f"/usr/sbin/{exe}", os.X_OK)]  # fmt: skip
    if not os.access("/usr/lib/rabbitmq/bin/rabbitmq-server", os.X_OK):
        missing.append("rabbitmq-server")
    if missing:
        raise UserError(
            f"missing programs: {', '.join(missing)} (apt-get install mariadb-server memcached qemu-utils "
            "libvirt-daemon-driver-qemu qemu-system-x86 rabbitmq-server; `./dev setup` installs them)"
        )


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM during `up` stops what was started, as Ctrl-C does."""

    def handler(signum: int, frame: FrameType | None) -> None:
        interrupts.record(signum)
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def up(
    knobs: OpenStackKnobs | None = None,
    state_dir: Path | None = None,
    on_step: Callable[[str], None] = lambda s: None,
) -> OpenStackLabState:
    knobs = knobs or OpenStackKnobs()
    d = state_dir or default_state_dir()
    if _running(d):
        raise UserError(f"the OpenStack lab is already up (state in {d}); stop it with `redline lab openstack down`")
    _check_system()
    t0 = time.monotonic()
    on_step("checking the OpenStack virtualenv")
    venv = lab_venv.ensure("openstack", PACKAGES, on_line=lambda l: on_step(f"pip: {l[:100]}"))
    _leftovers(d)
    _fresh_state_dir(d)
    started = Started(d)
    daemons = LibvirtDaemons(d / "libvirt", knobs=knobs.libvirt)
    if daemons.answering() and knobs.libvirt != OpenStackKnobs().libvirt:
        raise UserError(
            "a libvirtd that this lab did not start is running (the hypervisor lab's?): its limits cannot be set "
            "here; stop it (`redline lab hypervisor down`) or use no libvirtd knobs"
        )
    with _sigterm_interrupts():
        try:
            state = _bring_up(knobs, d, venv, started, daemons, on_step)
        except BaseException:
            on_step("stopping what was started")
            started.stop_all()
            keystone_db.stop(d)
            daemons.stop()
            raise
    on_step(f"up in {time.monotonic() - t0:.0f} s")
    return state


@dataclass(frozen=True)
class ConfigTree:
    """Where write_config_tree put each service's files (under <state>/etc, an audit root)."""

    root: Path
    keystone: Path
    placement: Path
    glance: Path
    neutron: Path
    ml2: Path
    nova: Path

    def gunicorn(self, name: str) -> Path:
        return self.root / "etc" / _ETC_OF[name] / f"gunicorn-{name}.conf.py"


_ETC_OF = {name: etc for name, etc, _ in WSGI_APPS}


def write_config_tree(knobs: OpenStackKnobs, d: Path, ports: Ports, sec: Secrets, venv: Path,
                      virt_type: str) -> ConfigTree:  # fmt: skip
    """Every configuration file of the lab, laid out as on a controller (`<d>/etc/<service>/`),
    with links to the host's CPU list and the lab's libvirtd.conf so that `redline audit
    --root <d>` reads the tree as it would read `/` on a cloud's host."""
    etc = d / "etc"
    for sub in ("keystone", "placement", "glance", "neutron/plugins/ml2", "nova", "libvirt"):
        (etc / sub).mkdir(parents=True, exist_ok=True)
    t = ConfigTree(d, etc / "keystone" / "keystone.conf", etc / "placement" / "placement.conf",
                   etc / "glance" / "glance-api.conf", etc / "neutron" / "neutron.conf",
                   etc / "neutron" / "plugins" / "ml2" / "ml2_conf.ini", etc / "nova" / "nova.conf")  # fmt: skip
    _write(t.keystone, keystone_conf(knobs, d, ports, sec))
    _write(t.placement, placement_conf(d, ports, sec))
    _write(t.glance, glance_conf(d, ports, sec))
    _write(t.neutron, neutron_conf(knobs, d, ports, sec))
    _write(t.ml2, ML2_CONF)
    _write(t.nova, nova_conf(knobs, d, ports, sec, venv, virt_type, HOST))
    _write(etc / "nova" / "nova-api.conf", nova_api_conf(d))
    for src, dst in (("glance/glance-api-paste.ini", "glance/glance-api-paste.ini"),
                     ("neutron/api-paste.ini", "neutron/api-paste.ini"), ("nova/api-paste.ini", "nova/api-paste.ini")):  # fmt: skip
        shutil.copy(venv / "etc" / src, etc / dst)
    wsgi = d / "wsgi"
    wsgi.mkdir(exist_ok=True)
    for name, _, module in WSGI_APPS:
        (wsgi / f"{wsgi_module(name)}.py").write_text(wsgi_wrapper(module))
        port = getattr(ports, name.replace("-", "_"))
        _write(t.gunicorn(name), gunicorn_conf(name, port, wsgi_workers(knobs, name), wsgi))
    # The host's kernel view and packages: the lab runs on this host, its host checks are this host's.
    host = [(rel, Path("/") / rel) for rel in ("proc", "sys", "dev", "usr/sbin/libvirtd", "var/lib/dpkg/status")]
    for rel, target in (*host, ("etc/libvirt/libvirtd.conf", d / "libvirt" / "libvirtd.conf"),
                        ("etc/libvirt/qemu.conf", Path("/etc/libvirt/qemu.conf"))):  # fmt: skip
        link = d / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    return t


def _bring_up(knobs: OpenStackKnobs, d: Path, venv: Path, started: Started, daemons: LibvirtDaemons,
              on_step: Callable[[str], None]) -> OpenStackLabState:  # fmt: skip
    ports = Ports(*(free_port() for _ in range(7)))
    # The guest image (Debian packages fetched and unpacked: a minute on a fresh machine) is
    # built while the services start; it is needed only at the end.
    builder = ThreadPoolExecutor(1, thread_name_prefix="guest-image")
    image_built = builder.submit(build_image, d)
    builder.shutdown(wait=False)
    on_step(f"starting memcached on 127.0.0.1:{ports.memcached}")
    memcached(started, d, ports.memcached)
    db = keystone_db.start("mariadb", d, on_step=on_step, names=DATABASES)
    started.add(OpenStackService("mariadb", db.pid or 0, None, str(d / "mariadb.log"), "mariadb"))
    on_step(f"starting RabbitMQ on 127.0.0.1:{ports.rabbitmq}")
    rabbitmq(started, d, ports.rabbitmq)
    sec = Secrets(secrets.token_hex(12), secrets.token_hex(12), {n: db.url(n) for n in DATABASES},
                  f"rabbit://guest:guest@127.0.0.1:{ports.rabbitmq}/")  # fmt: skip
    _write(d / SECRETS_FILE, json.dumps({"admin_password": sec.admin_password}) + "\n")
    virt_type = "kvm" if knobs.libvirt.virt == "kvm" else "qemu"  # KVM guests hang here: TCG unless asked
    daemons.prepare()  # libvirtd.conf exists before the tree links to it
    tree = write_config_tree(knobs, d, ports, sec, venv, virt_type)
    bin_ = venv / "bin"

    # Keystone
    kenv = dict(os.environ, OS_KEYSTONE_CONFIG_FILES=str(tree.keystone))
    km = [str(bin_ / "keystone-manage"), "--config-file", str(tree.keystone)]
    on_step("keystone-manage db_sync")
    manage([*km, "db_sync"], "keystone-manage db_sync", kenv)
    for step in ("fernet_setup", "credential_setup"):
        manage([*km, step, "--keystone-user", "root", "--keystone-group", "root"], f"keystone-manage {step}", kenv)
    url = keystone_url(ports)
    on_step("keystone-manage bootstrap")
    manage([*km, "bootstrap", "--bootstrap-admin-url", url, "--bootstrap-public-url", url, "--bootstrap-internal-url",
            url, "--bootstrap-region-id", "RegionOne"], "keystone-manage bootstrap",
           dict(kenv, OS_BOOTSTRAP_PASSWORD=sec.admin_password))  # fmt: skip
    on_step(
        f"starting Keystone ({knobs.keystone_processes} processes, cache {knobs.keystone_cache}) on :{ports.keystone}"
    )
    proc, svc = gunicorn(started, venv, d, "keystone", tree.gunicorn("keystone"), ports.keystone, kenv)
    wait_port(ports.keystone, proc, svc, _START_TIMEOUT_S)
    token = _await(lambda: _try_token(url, sec.admin_password), [(proc, svc)], "Keystone issuing a token")
    ks = Api(url, token, "Keystone")
    compute_url = f"http://127.0.0.1:{ports.nova_api}/v2.1"
    on_step("creating the service users and the catalog")
    register_services(ks, sec.service_password, SERVICE_USERS, SERVICE_PROJECT, {
        "placement": ("placement", f"http://127.0.0.1:{ports.placement}"),
        "image": ("glance", f"http://127.0.0.1:{ports.glance}"),
        "network": ("neutron", f"http://127.0.0.1:{ports.neutron}"),
        "compute": ("nova", compute_url),
    })  # fmt: skip

    # Placement, Glance, Neutron: schema first, then the API server.
    penv = dict(os.environ, OS_PLACEMENT_CONFIG_DIR=str(tree.placement.parent))
    genv = dict(os.environ, OS_GLANCE_CONFIG_DIR=str(tree.glance.parent))
    nenv = dict(os.environ, OS_NEUTRON_CONFIG_DIR=str(tree.neutron.parent),
                OS_NEUTRON_CONFIG_FILES="neutron.conf;plugins/ml2/ml2_conf.ini")  # fmt: skip
    on_step("placement-manage db sync, glance-manage db_sync, neutron-db-manage upgrade heads")
    syncs = [
        ([str(bin_ / "placement-manage"), "--config-file", str(tree.placement), "db", "sync"], "placement-manage db sync", penv),
        ([str(bin_ / "glance-manage"), "--config-file", str(tree.glance), "db_sync"], "glance-manage db_sync", genv),
        ([str(bin_ / "neutron-db-manage"), "--config-file", str(tree.neutron), "--config-file", str(tree.ml2), "upgrade",
          "heads"], "neutron-db-manage upgrade heads", nenv),
    ]  # fmt: skip
    with ThreadPoolExecutor(len(syncs)) as pool:  # three schemas, independent of each other
        for done in [pool.submit(manage, *args) for args in syncs]:
            done.result()
    apis = [gunicorn(started, venv, d, name, tree.gunicorn(name), getattr(ports, name), env)
            for name, env in (("placement", penv), ("glance", genv), ("neutron", nenv))]  # fmt: skip

    # Nova: the cells v2 databases, then its four services.
    nm = [str(bin_ / "nova-manage"), "--config-file", str(tree.nova)]
    on_step("nova-manage api_db sync, cell_v2 map_cell0 / create_cell, db sync")
    manage([*nm, "api_db", "sync"], "nova-manage api_db sync")
    manage([*nm, "cell_v2", "map_cell0", "--database_connection", sec.databases["nova_cell0"]], "nova-manage map_cell0")
    manage([*nm, "cell_v2", "create_cell", "--name", "cell1"], "nova-manage cell_v2 create_cell")
    manage([*nm, "db", "sync"], "nova-manage db sync")
    on_step("starting libvirtd")
    daemons.start()
    vapi_env = dict(os.environ, OS_NOVA_CONFIG_DIR=str(tree.nova.parent),
                    OS_NOVA_CONFIG_FILES="api-paste.ini;nova.conf;nova-api.conf")  # fmt: skip
    apis.append(gunicorn(started, venv, d, "nova-api", tree.gunicorn("nova-api"), ports.nova_api, vapi_env))
    nova_daemons = [
        daemon(started, venv, d, name, [tree.nova]) for name in ("nova-conductor", "nova-scheduler", "nova-compute")
    ]
    for proc, svc in apis:
        on_step(f"waiting for {svc.name} on :{svc.port}")
        assert svc.port is not None
        wait_port(svc.port, proc, svc, _START_TIMEOUT_S)
    neutron = Api(f"http://127.0.0.1:{ports.neutron}", token, "Neutron")
    # Neutron 29: a fresh worker's first port query fails until another query has run (LAB-NOTES).
    for _ in range(knobs.neutron_api_workers * 2):
        neutron.call("GET", "/v2.0/networks")
    nova = Api(compute_url, token, "nova-api")
    on_step("waiting for nova-compute to report, then mapping it to cell1")
    _await(lambda: _compute_up(nova), nova_daemons + apis, "nova-compute reporting as up")
    _await(lambda: _discover(nm), nova_daemons, "the compute host mapped to cell1", timeout=120)
    on_step("uploading the guest image (aki, ari, ami) and creating the flavor")
    image = image_built.result()
    disk = d / "image" / "disk.raw"
    if not disk.exists():
        with open(disk, "wb") as fh:
            fh.truncate(1 << 20)  # the ami: an empty root disk; the guest lives in its initramfs
    glance = Api(f"http://127.0.0.1:{ports.glance}", token, "Glance")
    image_id = upload_guest(glance, image.kernel, image.initrd, disk, image.cmdline)
    flavor_id = create_flavor(nova, FLAVOR, FLAVOR_RAM_MIB)
    clouds = d / "clouds.yaml"
    _write(clouds, clouds_yaml(CLOUD, ports, sec))
    state = OpenStackLabState(
        state_dir=d, cloud=CLOUD, clouds_yaml=clouds, auth_url=url, image_id=image_id, flavor_id=flavor_id,
        guest_marker=GUEST_MARKER, virt_type=virt_type, libvirt_uri=URI, services=tuple(started.services),
        knobs=knobs.to_dict(), versions=_versions(venv), config_root=d, started_at=time.time(),
    )  # fmt: skip
    state = _with_libvirt(state, daemons.started_pids, d)
    state.save()
    return state


def _with_libvirt(state: OpenStackLabState, pids: dict[str, int], d: Path) -> OpenStackLabState:
    """libvirtd and virtlogd as services of the lab when it started them (a libvirtd that was
    already answering is someone else's: used, not stopped, not charged to the lab)."""
    logs = {"libvirtd": d / "libvirt" / "libvirtd.log", "virtlogd": d / "libvirt" / "virtlogd.log"}
    more = tuple(OpenStackService(n, p, None, str(logs[n]), "libvirtd") for n, p in pids.items())
    return dataclasses.replace(state, services=state.services + more)


def _try_token(url: str, password: str) -> str | None:
    try:
        return admin_token(url, password)
    except UserError:
        return None


Watch = list[tuple["subprocess.Popen[bytes]", OpenStackService]]


def _await(check: Callable[[], Any], watch: Watch, what: str, timeout: float = _START_TIMEOUT_S) -> Any:
    """`check()`'s first truthy value; a watched process that exits first is named with its log."""

    def ready() -> Any:
        dead = next((s for p, s in watch if p.poll() is not None), None)
        if dead is not None:
            raise UserError(f"{dead.name} exited at start: {last_line(Path(dead.log))} (log: {dead.log})")
        return check()

    got = procs.wait_until(ready, timeout, 1.0)
    if not got:
        raise UserError(f"timed out after {timeout:g} s waiting for {what}")
    return got


def _compute_up(nova: Api) -> bool:
    try:
        services = nova.call("GET", "/os-services?binary=nova-compute")["services"]
    except UserError:
        return False
    return any(s.get("state") == "up" for s in services)


def _discover(nm: list[str]) -> bool:
    manage([*nm, "cell_v2", "discover_hosts"], "nova-manage cell_v2 discover_hosts")
    return HOST in manage([*nm, "cell_v2", "list_hosts"], "nova-manage cell_v2 list_hosts")


def _versions(venv: Path) -> dict[str, str]:
    names = ("keystone", "openstack-placement", "glance", "nova", "neutron")
    code = "import importlib.metadata as m, sys; print(' '.join(m.version(n) for n in sys.argv[1:]))"
    r = subprocess.run([str(venv / "bin" / "python"), "-c", code, *names], capture_output=True, text=True)
    return dict(zip(names, r.stdout.split())) if r.returncode == 0 else {}


def _running(d: Path) -> bool:
    return any(procs.alive(s.pid) for s in Started.load(d).services)


def _leftovers(d: Path) -> None:
    """What a crashed `up` or a killed lab left (processes, a database server): stopped first."""
    Started.load(d).stop_all()
    keystone_db.stop(d)


def down(state_dir: Path | None = None, on_step: Callable[[str], None] = lambda s: None) -> list[str]:
    """Stop everything `up` started and remove the lab's guests; what was done (empty: nothing was up)."""
    d = state_dir or default_state_dir()
    state = load_state(d)
    started = Started.load(d)
    if state is None and not started.services:
        return []
    done = _destroy_guests(state.libvirt_uri if state else URI)
    if state is not None and not started.services:
        started.services = list(state.services)
    done += started.stop_all(on_step)
    if keystone_db.stop(d) is not None:
        done.append("stopped mariadb")
    if state is not None:
        libvirtd = [s for s in state.services if s.group == "libvirtd"]
        for s in libvirtd:
            if procs.alive(s.pid):
                procs.stop(s.pid, timeout_s=15)
                done.append(f"stopped {s.name} (pid {s.pid})")
        if libvirtd and LibvirtDaemons(d / "libvirt").restore_qemu_conf():
            done.append("restored /etc/libvirt/qemu.conf")
    (d / STATE_FILE).unlink(missing_ok=True)
    return done


def _destroy_guests(uri: str) -> list[str]:
    """Nova's domains (instance-…) on the lab's libvirtd: a dead nova-compute leaves them running."""
    try:
        libvirt = load_libvirt("removing the lab's Nova domains")
    except UserError as exc:
        return [f"note: domains not checked: {exc}"]
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError:
        return []
    done = []
    try:
        for dom in conn.listAllDomains():
            if dom.name().startswith("instance-"):
                try:
                    if dom.isActive():
                        dom.destroy()
                    dom.undefine()
                    done.append(f"removed domain {dom.name()}")
                except libvirt.libvirtError:
                    pass
    finally:
        conn.close()
    return done


def status(state_dir: Path | None = None) -> dict[str, Any]:
    d = state_dir or default_state_dir()
    state = load_state(d)
    started = Started.load(d)
    services = state.services if state is not None else tuple(started.services)
    rows = [{**s.to_dict(), "alive": procs.alive(s.pid)} for s in services]
    out: dict[str, Any] = {"state_dir": str(d), "up": state is not None and all(r["alive"] for r in rows),
                           "services": rows}  # fmt: skip
    if state is not None:
        out.update(cloud=state.cloud, clouds_yaml=str(state.clouds_yaml), auth_url=state.auth_url,
                   image=state.image_id, flavor=state.flavor_id, virt_type=state.virt_type, knobs=state.knobs,
                   versions=state.versions, config_root=str(state.config_root))  # fmt: skip
    return out
