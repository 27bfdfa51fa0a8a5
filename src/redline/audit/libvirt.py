"""libvirt daemon and QEMU driver settings that serialise parallel guest creation (seed 000)."""

from __future__ import annotations

from redline.audit.parse import parse_libvirt_conf, parse_version
from redline.audit.registry import AuditParams, CheckOutcome, bad, check, ev, ok, skip
from redline.audit.snapshot import Snapshot
from redline.model.finding import Change, Evidence, Severity

LIBVIRTD_CONF = "/etc/libvirt/libvirtd.conf"
VIRTQEMUD_CONF = "/etc/libvirt/virtqemud.conf"
QEMU_CONF = "/etc/libvirt/qemu.conf"

# Built-in defaults of libvirt 9.x / 10.x (src/rpc/virnetserver and daemon config).
DEFAULTS = {"max_workers": 20, "max_client_requests": 5, "max_clients": 5000}
SEED000 = "seed 000 (parallel boot: raise libvirtd limits, default 20)"
LIBVIRT_DOCS = "libvirtd.conf(5) / libvirt.org daemon docs"


def installed(s: Snapshot) -> bool:
    return any(
        s.exists(p) for p in ("/usr/sbin/libvirtd", "/usr/sbin/virtqemud", LIBVIRTD_CONF, VIRTQEMUD_CONF, QEMU_CONF)
    ) or any(name.startswith("libvirt-daemon") for name in s.packages)


def daemon_configs(s: Snapshot) -> list[str]:
    """Config files of the daemons that serve qemu:///system on this host (present or not).

    With the modular daemons (virtqemud) nova talks to virtqemud, so its file counts; the
    monolithic libvirtd's file counts whenever libvirtd is installed or configured."""
    paths = []
    if s.exists("/usr/sbin/libvirtd") or s.exists(LIBVIRTD_CONF):
        paths.append(LIBVIRTD_CONF)
    if s.exists("/usr/sbin/virtqemud") or s.exists(VIRTQEMUD_CONF):
        paths.append(VIRTQEMUD_CONF)
    return paths or [LIBVIRTD_CONF]


def _limit(s: Snapshot, p: AuditParams, key: str, why: str) -> CheckOutcome:
    if not installed(s):
        return skip("libvirt is not installed")
    need = p.parallel
    evidence: list[Evidence] = []
    low: list[str] = []
    for path in daemon_configs(s):
        text = s.text(path)
        conf = parse_libvirt_conf(text) if text is not None else {}
        raw = conf.get(key)
        if raw is None:
            value = DEFAULTS[key]
            shown = f"{key} not set (built-in default {value})" + ("" if text is not None else "; file absent")
        else:
            try:
                value = int(raw)
            except ValueError:
                value, shown = 0, f"{key} = {raw!r} (not an integer)"
            else:
                shown = f"{key} = {value}"
        evidence.append(ev(path, shown))
        if value < need:
            low.append(path)
    if not low:
        return ok(why, *evidence)
    return bad(
        Severity.MEDIUM,
        why,
        f"Set `{key} = {need}` (at least the number of guests started at once) in "
        + " and ".join(low)
        + ", then restart the daemon.",
        *evidence,
        changes=tuple(Change("conf", path, str(need), key=key) for path in low),
    )


@check("libvirt.max_workers", "libvirt worker threads", SEED000)
def max_workers(s: Snapshot, p: AuditParams) -> CheckOutcome:
    return _limit(
        s,
        p,
        "max_workers",
        "Each API call nova makes occupies one libvirt worker thread; with fewer workers than "
        "guests booting at once, calls queue and creation serialises.",
    )


@check("libvirt.max_client_requests", "libvirt concurrent requests per client", SEED000)
def max_client_requests(s: Snapshot, p: AuditParams) -> CheckOutcome:
    return _limit(
        s,
        p,
        "max_client_requests",
        "nova-compute uses one libvirt connection for all its guests, so this per-connection "
        "limit (default 5) caps how many of its calls run at once.",
    )


@check("libvirt.max_clients", "libvirt concurrent client connections", SEED000 + "; " + LIBVIRT_DOCS)
def max_clients(s: Snapshot, p: AuditParams) -> CheckOutcome:
    return _limit(
        s,
        p,
        "max_clients",
        "Connections beyond max_clients wait in the accept queue. The seed's default was 20; "
        "libvirt's default is 5000 today, so only an explicit low value hurts.",
    )


@check("libvirt.max_requests", "obsolete max_requests setting", SEED000 + "; " + LIBVIRT_DOCS)
def max_requests(s: Snapshot, p: AuditParams) -> CheckOutcome:
    if not installed(s):
        return skip("libvirt is not installed")
    setters = []
    for path in daemon_configs(s):
        conf = parse_libvirt_conf(s.text(path) or "")
        if "max_requests" in conf:
            setters.append(ev(path, f"max_requests = {conf['max_requests']}"))
    why = (
        "Seed 000 raised max_requests; current libvirt still parses it for compatibility but no "
        "longer enforces it, so it changes nothing: max_workers and max_client_requests do."
    )
    if not setters:
        return ok(why, *(ev(p_, "max_requests not set") for p_ in daemon_configs(s)))
    return bad(
        Severity.INFO,
        why,
        "Remove max_requests and raise max_workers / max_client_requests instead, so the file "
        "does not suggest a limit that is not there.",
        *setters,
    )


@check(
    "libvirt.security_driver", "QEMU security driver", "seed 000 (global security driver lock); libvirt qemu.conf docs"
)
def security_driver(s: Snapshot, p: AuditParams) -> CheckOutcome:
    if not installed(s):
        return skip("libvirt is not installed")
    text = s.text(QEMU_CONF)
    conf = parse_libvirt_conf(text) if text is not None else {}
    value = conf.get("security_driver")
    shown = f"security_driver = {value}" if value else "security_driver not set (libvirt probes SELinux/AppArmor)"
    if text is None:
        shown += "; file absent"
    tradeoff = (
        "Trade-off: the SELinux/AppArmor driver confines each QEMU process, so a guest that "
        "escapes QEMU gains little; but libvirt runs the driver's hooks (e.g. loading an "
        "AppArmor profile, seconds each) under one global lock, which serialises parallel guest "
        "starts. 'none' is faster to start guests and removes that confinement: a security risk."
    )
    if value == "none":
        return ok(
            "security_driver is 'none': guest starts do not serialise on the security "
            "driver lock, at the cost of no sVirt confinement. " + tradeoff,
            ev(QEMU_CONF, shown),
        )
    return bad(
        Severity.LOW,
        tradeoff,
        "Only where guests and images are trusted and boot throughput matters more than "
        'confinement: set `security_driver = "none"` in /etc/libvirt/qemu.conf and restart. '
        "Otherwise keep it and accept slower parallel starts.",
        ev(QEMU_CONF, shown),
        changes=(Change("conf", QEMU_CONF, '"none"', key="security_driver"),),
    )


@check(
    "libvirt.cgroups",
    "cgroup hierarchy used for guests",
    "seed 000 (cgroup membership ~10 s per VM at 20 in parallel); libvirt cgroups docs",
)
def cgroups(s: Snapshot, p: AuditParams) -> CheckOutcome:
    if not installed(s):
        return skip("libvirt is not installed")
    mounts = s.text("/proc/mounts")
    if mounts is None:
        return skip("/proc/mounts not readable")
    v1: list[str] = []
    unified_at_root = False
    for line in mounts.splitlines():
        f = line.split()
        if len(f) < 4:
            continue
        if f[2] == "cgroup2" and f[1] == "/sys/fs/cgroup":
            unified_at_root = True
        elif f[2] == "cgroup":
            opts = [o for o in f[3].split(",") if o not in {"rw", "ro", "relatime", "nosuid", "nodev", "noexec"}]
            v1.extend(o for o in opts if not o.startswith("name="))
    qemu = parse_libvirt_conf(s.text(QEMU_CONF) or "")
    controllers = qemu.get("cgroup_controllers")
    evidence = [
        ev(
            "/proc/mounts",
            "cgroup v2 unified at /sys/fs/cgroup"
            if unified_at_root
            else f"cgroup v1 controllers: {','.join(v1) or 'none'}",
        ),
        ev(
            QEMU_CONF,
            f"cgroup_controllers = {controllers}"
            if controllers is not None
            else "cgroup_controllers not set (all available)",
        ),
    ]
    why = (
        "libvirt moves every QEMU thread into cgroups at start; moving tasks between cgroups "
        "serialises in the kernel, and with cgroup v1 it happens once per mounted controller "
        "hierarchy. The seed's fix (unmount cgroups) is no longer an option: nova relies on "
        "cgroups for CPU shares/quota and pinning."
    )
    if unified_at_root or not v1 or controllers is not None:
        return ok(why, *evidence)
    return bad(
        Severity.LOW,
        why,
        "Boot with the unified hierarchy (systemd.unified_cgroup_hierarchy=1), or limit "
        'qemu.conf cgroup_controllers to what nova uses: [ "cpu", "cpuacct", "cpuset", "memory" ].',
        *evidence,
    )


@check("libvirt.version", "libvirt version", "seed 000 (libvirt < 1.0.3 has one big lock)")
def version(s: Snapshot, p: AuditParams) -> CheckOutcome:
    if not installed(s):
        return skip("libvirt is not installed")
    for name in ("libvirt-daemon", "libvirt0", "libvirt-daemon-driver-qemu"):
        if name in s.packages:
            found, raw = name, s.packages[name]
            break
    else:
        return skip("no package database entry for libvirt (not a dpkg host, or not installed by package)")
    v = parse_version(raw)
    evidence = ev("/var/lib/dpkg/status", f"{found} {raw}")
    if v and v < (1, 0, 3):
        return bad(
            Severity.HIGH,
            "Before 1.0.3 libvirtd served every request under one lock, so parallel boots ran one "
            "libvirt call at a time.",
            "Upgrade libvirt (any maintained release).",
            evidence,
        )
    return ok("libvirt has fine-grained locking (>= 1.0.3).", evidence)
