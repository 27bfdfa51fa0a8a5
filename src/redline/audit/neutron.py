"""neutron-server and agent settings (seed 000: N server processes, rootwrap cost)."""

from __future__ import annotations

from redline.audit.facts import cpu_count, get, ini
from redline.audit.parse import wsgi_processes
from redline.audit.registry import AuditParams, CheckOutcome, bad, check, ev, ok, skip
from redline.audit.snapshot import Snapshot
from redline.model.finding import Change, Severity

NEUTRON = "/etc/neutron/neutron.conf"
ML2 = "/etc/neutron/plugins/ml2/ml2_conf.ini"
SEED000 = "seed 000 (N network-server processes; rootwrap ~6x per command)"


def _agentless(s: Snapshot) -> bool:
    """An API-only Neutron: ML2 with no mechanism driver has no agent to talk to."""
    ml2 = ini(s, ML2)
    drivers = get(ml2, "ml2", "mechanism_drivers") if ml2 else None
    return drivers is not None and not drivers.strip() and not s.glob("/etc/neutron/*_agent.ini")


@check("neutron.rpc_workers", "neutron RPC workers", SEED000 + "; neutron configuration reference")
def rpc_workers(s: Snapshot, p: AuditParams) -> CheckOutcome:
    conf = ini(s, NEUTRON)
    if conf is None:
        return skip("no /etc/neutron/neutron.conf")
    raw = get(conf, "DEFAULT", "rpc_workers")
    cpus = cpu_count(s)
    need = max(1, cpus // 2)
    why = (
        "Agents report port and security-group changes to neutron-server over RPC; during a boot "
        "storm every port is an RPC round trip, and too few RPC worker processes queue them."
    )
    if _agentless(s):
        return ok(why + " Here no agent reports: ML2 has no mechanism drivers.",
                  ev(ML2, "[ml2] mechanism_drivers is empty"))  # fmt: skip
    if raw is None:
        return ok(why + " Unset: neutron picks a count from CPUs.", ev(NEUTRON, "[DEFAULT] rpc_workers not set"))
    n = int(raw) if raw.strip().isdigit() else 0
    evidence = (ev(NEUTRON, f"[DEFAULT] rpc_workers = {raw}"), ev("/sys/devices/system/cpu/online", f"{cpus} CPUs"))
    if n >= need:
        return ok(why, *evidence)
    return bad(
        Severity.MEDIUM,
        why,
        f"Set [DEFAULT] rpc_workers = {need} or more (0 runs RPC inside the API process).",
        *evidence,
        changes=(Change("conf", NEUTRON, str(need), key="rpc_workers", section="DEFAULT"),),
    )


@check("neutron.api_workers", "neutron API workers", SEED000)
def api_workers(s: Snapshot, p: AuditParams) -> CheckOutcome:
    conf = ini(s, NEUTRON)
    if conf is None:
        return skip("no /etc/neutron/neutron.conf")
    raw = get(conf, "DEFAULT", "api_workers")
    cpus = cpu_count(s)
    why = "neutron-server's DB calls block its green threads; N API processes serve N requests at once."
    wsgi = [(path, n) for path in s.glob("/etc/neutron/gunicorn*.py") + s.glob("/etc/neutron/*uwsgi*.ini")
            if (n := wsgi_processes(s.text(path) or "", "gunicorn" if path.endswith(".py") else "uwsgi")) is not None]  # fmt: skip
    if wsgi:
        # Under a WSGI server its process count is what serves requests; api_workers is not read.
        served = [ev(path, f"processes = {n}") for path, n in wsgi] + [
            ev("/sys/devices/system/cpu/online", f"{cpus} CPUs")
        ]
        if all(n >= cpus for _, n in wsgi):
            return ok(why, *served)
        return bad(Severity.MEDIUM, why, f"Run {cpus} WSGI processes (gunicorn `workers = {cpus}`, uWSGI `processes = {cpus}`).",
                   *served)  # fmt: skip
    if raw is None:
        return ok(why + " Unset: one per CPU.", ev(NEUTRON, "[DEFAULT] api_workers not set"))
    n = int(raw) if raw.strip().isdigit() else 0
    evidence = (ev(NEUTRON, f"[DEFAULT] api_workers = {raw}"), ev("/sys/devices/system/cpu/online", f"{cpus} CPUs"))
    if n >= cpus:
        return ok(why, *evidence)
    return bad(
        Severity.MEDIUM,
        why,
        f"Set [DEFAULT] api_workers = {cpus}.",
        *evidence,
        changes=(Change("conf", NEUTRON, str(cpus), key="api_workers", section="DEFAULT"),),
    )


@check("neutron.root_helper_daemon", "neutron rootwrap daemon", SEED000)
def root_helper_daemon(s: Snapshot, p: AuditParams) -> CheckOutcome:
    paths = [NEUTRON, *s.glob("/etc/neutron/*_agent.ini"), *s.glob("/etc/neutron/plugins/ml2/*.ini")]
    confs = {path: c for path in paths if (c := ini(s, path)) is not None}
    if NEUTRON not in confs:
        return skip("no /etc/neutron/neutron.conf")
    if _agentless(s):
        return skip("no Neutron agents here (ML2 has no mechanism drivers): nothing runs rootwrap")
    why = (
        "Agents run ip, iptables and ovs-vsctl as root many times per port. Without the rootwrap "
        "daemon each call forks a fresh rootwrap interpreter (~6x the command's cost in seed 000) "
        "while agent locks are held."
    )
    setters = [
        (path, get(c, "agent", "root_helper_daemon"))
        for path, c in confs.items()
        if get(c, "agent", "root_helper_daemon")
    ]
    if setters:
        return ok(why, *(ev(path, f"[agent] root_helper_daemon = {v}") for path, v in setters))
    return bad(
        Severity.MEDIUM,
        why,
        "Set [agent] root_helper_daemon = sudo neutron-rootwrap-daemon /etc/neutron/rootwrap.conf in neutron.conf.",
        *(ev(path, "[agent] root_helper_daemon not set") for path in confs),
        changes=(
            Change(
                "conf",
                NEUTRON,
                "sudo neutron-rootwrap-daemon /etc/neutron/rootwrap.conf",
                key="root_helper_daemon",
                section="agent",
            ),
        ),
    )
