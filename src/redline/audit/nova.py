"""nova.conf settings that limit parallel boots (seed 000) or guest performance (seed 002)."""

from __future__ import annotations

from redline.audit.facts import cpu_count, get, ini, is_true
from redline.audit.parse import format_cpuset, parse_cpuset, wsgi_processes
from redline.audit.registry import AuditParams, CheckOutcome, bad, check, ev, ok, skip
from redline.audit.snapshot import Snapshot
from redline.model.finding import Change, Severity

NOVA = "/etc/nova/nova.conf"
SEED000 = "seed 000 (parallel boot)"
SEED002 = "seed 002 (Nova/KVM tuning)"
NOVA_DOCS = "nova configuration reference"


def _conf(s: Snapshot) -> dict[str, dict[str, str]] | None:
    return ini(s, NOVA)


def _is_compute(conf: dict[str, dict[str, str]]) -> bool:
    return "libvirt" in conf or "compute_driver" in conf.get("DEFAULT", {})


def _workers(s: Snapshot, section: str, label: str, why: str) -> CheckOutcome:
    conf = _conf(s)
    if conf is None:
        return skip("no /etc/nova/nova.conf")
    cpus = cpu_count(s)
    raw = get(conf, section, "workers")
    if raw is None:
        return ok(why + f" Unset, nova starts one worker per CPU ({cpus}).", ev(NOVA, f"[{section}] workers not set"))
    try:
        n = int(raw)
    except ValueError:
        n = 0
    evidence = (ev(NOVA, f"[{section}] workers = {raw}"), ev("/sys/devices/system/cpu/online", f"{cpus} CPUs"))
    if n >= cpus:
        return ok(why, *evidence)
    return bad(
        Severity.MEDIUM,
        why,
        f"Set [{section}] workers = {cpus} (one per CPU) or remove it to get that default.",
        *evidence,
        changes=(Change("conf", NOVA, str(cpus), key="workers", section=section),),
    )


@check("nova.conductor_workers", "nova-conductor workers", SEED000 + " (N conductor workers)")
def conductor_workers(s: Snapshot, p: AuditParams) -> CheckOutcome:
    return _workers(
        s,
        "conductor",
        "conductor",
        "Every database access of nova-compute goes through nova-conductor; a blocking DB "
        "driver stalls all green threads of one process, so concurrency needs processes.",
    )


@check("nova.scheduler_workers", "nova-scheduler workers", SEED000 + "; " + NOVA_DOCS)
def scheduler_workers(s: Snapshot, p: AuditParams) -> CheckOutcome:
    return _workers(
        s,
        "scheduler",
        "scheduler",
        "Scheduling a burst of boots is CPU-bound placement and DB work; one worker "
        "handles the requests of the burst one after another.",
    )


def _api_processes(s: Snapshot) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for path in s.glob("/etc/nova/*uwsgi*.ini") + s.glob("/etc/uwsgi/apps-enabled/*.ini"):
        name = path.rsplit("/", 1)[-1]
        if "nova" in name and "metadata" not in name:
            n = wsgi_processes(s.text(path) or "", "uwsgi")
            if n is not None:
                found.append((path, n))
    for path in s.glob("/etc/nova/gunicorn*.py"):
        if "metadata" not in path.rsplit("/", 1)[-1]:
            n = wsgi_processes(s.text(path) or "", "gunicorn")
            if n is not None:
                found.append((path, n))
    for path in s.glob("/etc/apache2/sites-enabled/*.conf") + s.glob("/etc/httpd/conf.d/*.conf"):
        text = s.text(path) or ""
        if "nova-api" in text or "nova-osapi" in text or "nova.wsgi" in text:
            n = wsgi_processes(text, "apache")
            if n is not None:
                found.append((path, n))
    conf = _conf(s)
    if conf and not found and get(conf, "DEFAULT", "osapi_compute_workers"):
        raw = get(conf, "DEFAULT", "osapi_compute_workers") or "0"
        found.append((f"{NOVA} [DEFAULT] osapi_compute_workers", int(raw) if raw.isdigit() else 0))
    return found


@check("nova.api_workers", "nova-api WSGI processes", SEED000 + " (N nova-api workers)")
def api_workers(s: Snapshot, p: AuditParams) -> CheckOutcome:
    found = _api_processes(s)
    if not found:
        return skip(
            "no nova-api WSGI configuration (uWSGI ini, gunicorn config, Apache vhost, osapi_compute_workers) on this host"
        )
    cpus = cpu_count(s)
    why = (
        "nova-api answers each request in a process whose DB calls block; N processes serve N "
        "clients at once, one serves them in turn."
    )
    evidence = [ev(path, f"processes = {n}") for path, n in found] + [
        ev("/sys/devices/system/cpu/online", f"{cpus} CPUs")
    ]
    low = [path for path, n in found if n < cpus]
    if not low:
        return ok(why, *evidence)
    return bad(
        Severity.MEDIUM,
        why,
        f"Run {cpus} processes (uWSGI `processes = {cpus}`, gunicorn `workers = {cpus}`, mod_wsgi `processes={cpus}`).",
        *evidence,
    )


@check(
    "nova.cpu_sets",
    "cpu_dedicated_set / cpu_shared_set",
    SEED002 + " (keep guests off CPU0 and IRQ CPUs); " + NOVA_DOCS,
)
def cpu_sets(s: Snapshot, p: AuditParams) -> CheckOutcome:
    conf = _conf(s)
    if conf is None or not _is_compute(conf):
        return skip("not a nova compute host (no nova.conf with [libvirt] or compute_driver)")
    ded = get(conf, "compute", "cpu_dedicated_set")
    shared = get(conf, "compute", "cpu_shared_set") or get(conf, "DEFAULT", "vcpu_pin_set")
    evidence = [
        ev(NOVA, f"[compute] cpu_dedicated_set = {ded}" if ded else "[compute] cpu_dedicated_set not set"),
        ev(NOVA, f"[compute] cpu_shared_set = {shared}" if shared else "[compute] cpu_shared_set not set"),
    ]
    why = (
        "Without these sets guests float over every host CPU, including CPU0 and the CPUs that "
        "serve NIC interrupts, and pinned guests cannot be placed per core/socket/node."
    )
    if not ded and not shared:
        return bad(
            Severity.LOW,
            why,
            "Set [compute] cpu_shared_set (floating guests) and/or cpu_dedicated_set (pinned guests), both without CPU0 and the IRQ CPUs.",
            *evidence,
        )
    d = parse_cpuset(ded) if ded else frozenset()
    sh = parse_cpuset(shared) if shared else frozenset()
    if d & sh:
        return bad(
            Severity.MEDIUM,
            why + " The two sets overlap: a dedicated CPU would also run floating guests.",
            "Make cpu_dedicated_set and cpu_shared_set disjoint.",
            *evidence,
            ev(NOVA, f"overlap {format_cpuset(d & sh)}"),
        )
    if 0 in d | sh:
        return bad(
            Severity.LOW,
            why + " CPU0 is in a guest set.",
            "Remove CPU0 from cpu_dedicated_set / cpu_shared_set.",
            *evidence,
        )
    return ok(why, *evidence)


@check("nova.reserved_host_memory", "reserved_host_memory_mb", NOVA_DOCS + "; " + SEED002)
def reserved_host_memory(s: Snapshot, p: AuditParams) -> CheckOutcome:
    conf = _conf(s)
    if conf is None or not _is_compute(conf):
        return skip("not a nova compute host")
    raw = get(conf, "DEFAULT", "reserved_host_memory_mb")
    value = int(raw) if raw and raw.isdigit() else 512
    shown = f"reserved_host_memory_mb = {raw}" if raw else "reserved_host_memory_mb not set (default 512)"
    why = (
        "The host OS, libvirtd and each QEMU process's own overhead (tens to hundreds of MiB per "
        "guest) need memory the scheduler must not hand to guests; 512 MiB is swapped or OOM-killed "
        "once a host is full."
    )
    if value >= 1024:
        return ok(why, ev(NOVA, shown))
    return bad(
        Severity.LOW,
        why,
        "Set [DEFAULT] reserved_host_memory_mb to at least 1024 plus ~100 MiB per expected guest.",
        ev(NOVA, shown),
        changes=(Change("conf", NOVA, "2048", key="reserved_host_memory_mb", section="DEFAULT"),),
    )


@check(
    "nova.disk_cachemodes",
    "disk cache modes",
    SEED002 + " (writeback > none > writethrough for speed; reverse for safety)",
)
def disk_cachemodes(s: Snapshot, p: AuditParams) -> CheckOutcome:
    conf = _conf(s)
    if conf is None or not _is_compute(conf):
        return skip("not a nova compute host")
    raw = get(conf, "libvirt", "disk_cachemodes")
    why = (
        "cache=none (O_DIRECT) is nova's default and seed 002's choice: no double caching in host "
        "RAM and safe on power loss; writeback/unsafe risk data, writethrough/directsync are slow."
    )
    if not raw:
        return ok(why, ev(NOVA, "[libvirt] disk_cachemodes not set (nova uses none where O_DIRECT works)"))
    modes = [item.split("=", 1)[-1].strip() for item in raw.split(",") if item.strip()]
    if all(m == "none" for m in modes):
        return ok(why, ev(NOVA, f"[libvirt] disk_cachemodes = {raw}"))
    return bad(
        Severity.LOW,
        why,
        "Remove [libvirt] disk_cachemodes or set every type to none.",
        ev(NOVA, f"[libvirt] disk_cachemodes = {raw}"),
    )


@check(
    "nova.firewall_driver",
    "nova firewall driver",
    SEED000 + " (security groups in the network service, not nova-compute)",
)
def firewall_driver(s: Snapshot, p: AuditParams) -> CheckOutcome:
    conf = _conf(s)
    if conf is None:
        return skip("no /etc/nova/nova.conf")
    raw = get(conf, "DEFAULT", "firewall_driver")
    why = (
        "With a nova firewall driver nova-compute writes iptables rules for each boot serially "
        "with the rest of the boot; the network service does it in parallel."
    )
    if not raw or raw.endswith("NoopFirewallDriver"):
        return ok(why, ev(NOVA, f"firewall_driver = {raw}" if raw else "firewall_driver not set (noop)"))
    return bad(
        Severity.MEDIUM,
        why,
        "Set firewall_driver = nova.virt.firewall.NoopFirewallDriver and use neutron security groups.",
        ev(NOVA, f"firewall_driver = {raw}"),
        changes=(
            Change("conf", NOVA, "nova.virt.firewall.NoopFirewallDriver", key="firewall_driver", section="DEFAULT"),
        ),
    )


@check("nova.rootwrap", "rootwrap vs privsep / sudo", SEED000 + " (rootwrap costs ~6x per command)")
def rootwrap(s: Snapshot, p: AuditParams) -> CheckOutcome:
    conf = _conf(s)
    if conf is None:
        return skip("no /etc/nova/nova.conf")
    disable = get(conf, "workarounds", "disable_rootwrap")
    helper = get(conf, "DEFAULT", "root_helper")
    why = (
        "Each rootwrap call starts a Python interpreter to parse filters (~6x the command's own "
        "time, seed 000) while locks are held. Nova runs most privileged work through the "
        "oslo.privsep daemon (one long-lived process); what is left goes through rootwrap unless "
        "[workarounds] disable_rootwrap uses sudo."
    )
    evidence = [
        ev(
            NOVA,
            f"[workarounds] disable_rootwrap = {disable}"
            if disable
            else "[workarounds] disable_rootwrap not set (False)",
        )
    ]
    if helper:
        evidence.append(ev(NOVA, f"root_helper = {helper}"))
    if is_true(disable) or (helper and "rootwrap" not in helper):
        return ok(why, *evidence)
    return bad(
        Severity.INFO,
        why,
        "Set [workarounds] disable_rootwrap = True with a sudoers entry for nova, or accept the per-call cost.",
        *evidence,
        changes=(Change("conf", NOVA, "True", key="disable_rootwrap", section="workarounds"),),
    )


@check("nova.cpu_mode", "guest CPU mode", SEED002 + " (host-passthrough caused host kernel panics in production)")
def cpu_mode(s: Snapshot, p: AuditParams) -> CheckOutcome:
    conf = _conf(s)
    if conf is None or not _is_compute(conf):
        return skip("not a nova compute host")
    raw = get(conf, "libvirt", "cpu_mode")
    why = (
        "host-passthrough exposes every host CPU feature and blocks live migration between "
        "different CPUs; seed 002 reports host kernel panics within days of enabling it."
    )
    if raw == "host-passthrough":
        return bad(
            Severity.LOW,
            why,
            "Use [libvirt] cpu_mode = host-model (or custom with cpu_models).",
            ev(NOVA, f"[libvirt] cpu_mode = {raw}"),
        )
    return ok(
        why, ev(NOVA, f"[libvirt] cpu_mode = {raw}" if raw else "[libvirt] cpu_mode not set (host-model for kvm)")
    )
