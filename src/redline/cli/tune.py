"""`redline tune domain` (tuned libvirt domain XML) and `redline tune host` (audit fixes)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Optional

import typer

from redline.cli.app import app
from redline.errors import UserError

tune_app = typer.Typer(
    help="Tuned libvirt domain XML, and the host changes the audit recommends.", no_args_is_help=True
)
app.add_typer(tune_app, name="tune")

UNITS_KIB = {
    "": 1024,
    "k": 1,
    "kb": 1,
    "kib": 1,
    "m": 1024,
    "mb": 1024,
    "mib": 1024,
    "g": 1 << 20,
    "gb": 1 << 20,
    "gib": 1 << 20,
}


def size_kib(text: str, what: str, default_unit: str = "m") -> int:
    """'2048' (MiB), '2G', '512MiB', '2M', '1G', '2048K' -> KiB."""
    m = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", text)
    unit = (m.group(2).lower() if m else "") or default_unit
    if not m or unit not in UNITS_KIB:
        raise UserError(f"{what} {text!r} is not a size like 2048, 2048M, 4G")
    return int(m.group(1)) * UNITS_KIB[unit]


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror}") from exc


@tune_app.command("domain")
def domain_command(
    vcpus: Optional[int] = typer.Option(None, "--vcpus", min=1, help="Guest vCPUs (default: from --in)."),
    memory: Optional[str] = typer.Option(
        None, "--memory", help="Guest memory: 2048 (MiB), 2G, 512M (default: from --in)."
    ),
    hugepages: Optional[str] = typer.Option(
        None, "--hugepages", help="Back memory with huge pages of this size: 2M or 1G."
    ),
    multiqueue: bool = typer.Option(False, "--multiqueue", help="One virtio-net queue per vCPU."),
    thread_policy: str = typer.Option(
        "prefer", "--thread-policy", help="prefer | isolate | require (as nova's hw:cpu_thread_policy)."
    ),
    topology: str = typer.Option(
        "auto", "--topology", help="'auto' (sysfs), or a file: `virsh capabilities` XML or JSON/YAML."
    ),
    existing: list[Path] = typer.Option(
        [], "--existing", help="Domain XML of a guest already placed (repeatable): its CPUs are not reused."
    ),
    in_file: Optional[Path] = typer.Option(
        None, "--in", help="Retune this domain XML instead of generating a new one."
    ),
    name: str = typer.Option("redline-guest", "--name", help="Guest name for a generated domain."),
    domain_type: str = typer.Option("kvm", "--type", help="kvm, or qemu for TCG where KVM is unusable."),
    numa_mode: str = typer.Option(
        "preferred", "--numa-mode", help="preferred (default, seed 002) or strict; strict is forced with huge pages."
    ),
    reserve: Optional[str] = typer.Option(
        None, "--reserve", help="CPUs to keep free instead of CPU0 + detected IRQ CPUs, e.g. 0-1."
    ),
    root: Path = typer.Option(Path("/"), "--root", help="Read sysfs/procfs under DIR for --topology auto."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the XML here instead of stdout."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the topology, placement, validation and the XML (unless --out) as JSON."
    ),
) -> None:
    """Place a guest on one core / socket / NUMA node and write tuned libvirt domain XML."""
    from redline.tune import domain_xml as dx
    from redline.tune.cpulist import format_cpuset, parse_cpuset
    from redline.tune.placement import Request, ThreadPolicy, place
    from redline.tune.topology import load
    from redline.tune.validate import validate

    try:
        policy = ThreadPolicy(thread_policy)
    except ValueError:
        raise UserError("--thread-policy must be prefer, isolate or require") from None
    if domain_type not in ("kvm", "qemu"):
        raise UserError("--type must be kvm or qemu")
    if numa_mode not in ("preferred", "strict"):
        raise UserError("--numa-mode must be preferred or strict")
    base = dx.parse_domain(_read(in_file, "--in file"), str(in_file)) if in_file else None
    if base is not None:
        vcpu_el, mem_el = base.find("vcpu"), base.find("memory")
        if vcpus is None and vcpu_el is not None and (vcpu_el.text or "").strip().isdigit():
            vcpus = int(vcpu_el.text)
        if memory is None and mem_el is not None and (mem_el.text or "").strip().isdigit():
            memory = f"{mem_el.text.strip()}{mem_el.get('unit', 'KiB')}"
        name = base.findtext("name") or name
        domain_type = base.get("type", domain_type)
    if vcpus is None or memory is None:
        raise UserError("--vcpus and --memory are required (or give --in with a domain that has them)")
    mem_kib = size_kib(memory, "--memory")
    page_kib = size_kib(hugepages, "--hugepages", default_unit="k") if hugepages else None
    if page_kib is not None and page_kib not in (2048, 1048576):
        raise UserError("--hugepages must be 2M or 1G")
    if not root.is_dir():
        raise UserError(f"--root {root} is not a directory")
    topo = load(topology, str(root))

    used: set[int] = set()
    pages_used: dict[int, int] = {}
    for path in existing:
        g = dx.existing_guest(dx.parse_domain(_read(path, "--existing file"), str(path)), str(path))
        used |= g.cpus
        if g.node is not None and g.hugepages and g.hugepages[0] == page_kib:
            pages_used[g.node] = pages_used.get(g.node, 0) + g.hugepages[1]
    try:
        reserved = parse_cpuset(reserve) if reserve is not None else None
    except ValueError:
        raise UserError(f"--reserve {reserve!r} is not a CPU list like 0-1,4") from None

    spec = dx.GuestSpec(name, vcpus, mem_kib, page_kib, multiqueue, numa_mode, domain_type)
    placement = place(
        topo, Request(vcpus, dx.rounded_memory_kib(spec), page_kib, policy), frozenset(used), reserved, pages_used
    )
    dom = dx.build(spec, placement, base)
    problems = validate(dom, topo, others=frozenset(used), reserved=placement.reserved)
    xml = dx.to_string(dom)
    print(f"topology: {topo.describe()} ({topo.source})", file=sys.stderr)
    print(
        f"placement: vCPUs -> {list(placement.pins)} within one {placement.level} on node {placement.node}; "
        f"kept free: {format_cpuset(placement.reserved) or 'none'}; other guests: {format_cpuset(used) or 'none'}",
        file=sys.stderr,
    )
    if as_json:
        doc = {
            "topology": topo.describe(),
            "topology_source": topo.source,
            "placement": {
                "pins": list(placement.pins),  # host CPU of vCPU i
                "node": placement.node,
                "level": placement.level,
                "threads": placement.threads,
                "held": sorted(placement.held),
                "reserved": sorted(placement.reserved),
            },
            "other_guests": sorted(used),
            "problems": [{"kind": p.kind, "message": p.message} for p in problems],
            "out": str(out) if out is not None else None,
            "xml": xml if out is None else None,
        }
    if problems:
        for p in problems:
            print(f"invalid ({p.kind}): {p.message}", file=sys.stderr)
        if as_json:
            print(json.dumps(doc, indent=2))
        raise UserError(f"the generated domain XML failed validation ({len(problems)} problems)", exit_code=1)
    print("validation: libvirt RelaxNG schema and semantic checks passed", file=sys.stderr)
    if out is not None:
        try:
            out.write_text(xml)
        except OSError as exc:
            raise UserError(f"cannot write {out}: {exc.strerror}") from exc
    if as_json:
        print(json.dumps(doc, indent=2))
    elif out is None:
        sys.stdout.write(xml)


@tune_app.command("host")
def host_command(
    root: Path = typer.Option(
        Path("/"), "--root", help="Operate on a copy of a host under DIR (for tests and dry runs)."
    ),
    apply_changes: bool = typer.Option(
        False, "--apply", help="Make the changes (backups under ROOT/var/backups/redline/)."
    ),
    parallel: int = typer.Option(40, "--parallel", min=1, help="Guests booted at once the host should handle."),
    as_json: bool = typer.Option(False, "--json", help="Print the changes (and what --apply did) as JSON."),
) -> None:
    """Print the host changes the audit recommends; apply them only with --apply."""
    from redline.audit import AuditParams, audit
    from redline.tune.host_changes import apply, plan

    if not root.is_dir():
        raise UserError(f"--root {root} is not a directory")
    report = audit(root, AuditParams(parallel=parallel))
    changes = plan(report.findings)
    if as_json:
        doc: dict[str, object] = {
            "changes": [{"finding": c.finding_id, "change": c.describe()} for c in changes],
            "applied": None,
            "backup_dir": None,
        }
        if apply_changes and changes:
            backup_dir, done = apply(changes, root)
            doc["applied"] = [{"change": a.description, "path": a.path, "backup": a.backup} for a in done]
            doc["backup_dir"] = str(backup_dir)
        print(json.dumps(doc, indent=2))
        return
    if not changes:
        print("no host changes to make: the audit found nothing this command can change")
        return
    for c in changes:
        print(f"{c.finding_id}: {c.describe()}")
    if not apply_changes:
        print(
            f"\n{len(changes)} changes; nothing changed. Re-run with --apply to make them (daemons need a restart to read config files)."
        )
        return
    backup_dir, done = apply(changes, root)
    print(f"\napplied {len(done)} changes; originals saved in {backup_dir} (manifest.json lists them)")
