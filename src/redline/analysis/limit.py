"""What limits N: one paragraph from the decisive probes' findings, the hot code and the audit.

Pure: the probes with their findings (analysis.diagnosis) and profiles, and the failing audit
checks of the target's configuration, in; a `Limit` out. Replayable from a run folder.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from redline.model.capacity import ProbeResult
from redline.model.diagnosis import AuditLink, Limit
from redline.model.finding import Finding, Status
from redline.model.profile import ProfileSummary

# Which finding is the limit when the decisive probes disagree: the same order as the
# findings themselves (analysis.diagnosis sorts them so), the first one wins.
_KIND = {
    "generator.bound": "generator",
    "host.memory_pressure": "memory",
    "bottleneck.single_thread": "single_thread",
    "target.cpu_saturated": "target_cpu",
    "target.database_hot": "database",
    "target.cache_hot": "cache",
    "host.cpu_shared": "host_cpu",
    "host.io_wait": "io",
    "target.errors": "errors",
    "target.latency_bound": "latency_bound",
    "target.headroom": "headroom",
}
_ORDER = list(_KIND)
T = TypeVar("T")
P = TypeVar("P", bound=ProbeResult)

# Audit checks that bear on a kind of limit, and on hot code (by package prefix).
_AUDIT_BY_KIND = {
    "single_thread": ("keystone.wsgi_processes", "nova.api_workers", "nova.conductor_workers"),
    "target_cpu": ("keystone.wsgi_processes", "keystone.cache_enabled", "keystone.password_hash_rounds"),
    "database": ("keystone.cache_enabled", "keystone.cache_backend"),
    "latency_bound": ("keystone.wsgi_processes",),
}


@dataclass(frozen=True)
class HotCodeAdvice:
    """What to do when a package is where the target's CPU goes."""

    prefixes: tuple[str, ...]
    advice: str
    audit: tuple[str, ...] = ()
    measured: str = ""  # the effect as measured in redline's lab, when it has been


HOT_CODE: tuple[HotCodeAdvice, ...] = (
    HotCodeAdvice(
        ("bcrypt", "passlib"),
        "Password hashing dominates: every token issue checks a bcrypt hash, ~290 ms of CPU at cost 12 and "
        "~1.2 ms at cost 4. The cost is a trade-off: a lower [identity] password_hash_rounds makes each "
        "issue cheaper and stored passwords cheaper to crack offline; clients that reuse tokens (or "
        "application credentials) issue fewer of them.",
        ("keystone.password_hash_rounds",),
        "measured in redline's lab: issue ~6.4 req/s at cost 12 vs ~80–90 req/s at cost 4 (memcached, 2 workers)",
    ),
    HotCodeAdvice(
        ("sqlalchemy", "keystone.assignment", "pymysql", "psycopg2", "oslo_db", "sqlite3", "keystone.resource"),
        "SQL per request dominates (role assignments, projects, catalog): with Keystone's cache off one "
        "validation runs ~450 queries. Enable [cache] with memcached so they are asked once.",
        ("keystone.cache_enabled", "keystone.cache_backend"),
        "measured in redline's lab: validate ~2.5 req/s without cache vs ~190–250 req/s with memcached (2 workers)",
    ),
    HotCodeAdvice(
        ("cryptography", "keystone.token"),
        "Token cryptography (fernet) is where the time goes: it is cheap per call, so the rate itself is high; "
        "more worker processes per CPU do not help, more CPUs do.",
        ("keystone.token_provider",),
    ),
)


# Python functions whose time is a native library's: py-spy (non-blocking, without --native)
# charges a C extension's time to the Python frame that called it.
NATIVE_CALL_SITES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    # keystone.common.password_hashing: check_password → Bcrypt.verify → bcrypt.checkpw
    (
        "keystone/common/password_hashing.py",
        re.compile(r"^(check_password|hash_password|Bcrypt\w*\.(verify|hash))$"),
        "bcrypt",
    ),
    ("keystone/common/password_hashers/bcrypt.py", re.compile(r"^Bcrypt\w*\.(verify|hash)$"), "bcrypt"),
    ("redline/identity/store.py", re.compile(r"^(check_password|hash_password)$"), "bcrypt"),
)


def native_share(profile: ProfileSummary) -> dict[str, float]:
    """Self share per native library, from the functions known to call into one."""
    out: dict[str, float] = {}
    for fn in profile.top_self:
        for suffix, name, lib in NATIVE_CALL_SITES:
            if fn.file.endswith(suffix) and name.match(fn.function):
                out[lib] = out.get(lib, 0.0) + fn.self_share
    return out


def decisive_probes(probes: Sequence[P], n: float | None) -> tuple[P | None, P | None]:
    """The stable probe at N (the full-length one first) and the first degraded probe above N
    (the full-length one first, else the lowest rate): the two that decide N."""
    at_n = [p for p in probes if n is not None and p.rate == n and p.state == "stable"]
    at_n.sort(key=lambda p: (not p.full, -p.index))
    above = [p for p in probes if p.state == "degraded" and (n is None or p.rate > n)]
    above.sort(key=lambda p: (p.rate, not p.full, -p.index))
    if above:
        lowest = above[0].rate
        full = [p for p in above if p.full and p.rate <= lowest * 1.05]
        above = full or above
    return (at_n[0] if at_n else None), (above[0] if above else None)


def limit_of_search(
    probes: Sequence[ProbeResult], n: float | None, audit: Sequence[Finding] = (), unit: str = "request"
) -> Limit | None:
    """What limits N, from the probe at N and the first degraded one above it."""
    at_n, over = decisive_probes(probes, n)
    decisive = [p for p in (at_n, over) if p is not None]
    if not decisive:
        # No N and nothing degraded (a starved generator, an interrupted search): the last
        # probes judged say what stopped the search.
        decisive = [p for p in probes if p.state == "inconclusive"][-1:]
    if not decisive:
        return None
    chosen, probe = _choose([(f, p) for p in decisive for f in p.findings])
    if chosen is None or probe is None:
        return None
    at_n_cost = _cost(at_n) if at_n is not None else None
    profile = next((p.profile for p in decisive if p.profile and not p.profile.error), None)
    over_rate = probe.rate if at_n is None or probe.index != at_n.index else None
    limit = _compose(chosen, probe.index, profile, audit, at_n, n, at_n_cost, unit, over_rate)
    if limit.kind == "latency_bound" and at_n is not None:
        return _with_concurrency(limit, at_n, probes, n)
    return limit


def _with_concurrency(limit: Limit, at_n: ProbeResult, probes: Sequence[ProbeResult], n: float | None) -> Limit:
    """How many requests the target serves at once: N × the latency of one request alone —
    the search's single requests after an overload drained (settle), else the lowest p50 of a
    stable probe. Little's law at N would count the queue too."""
    alone = [p.settle_before["last_ms"] for p in probes if p.settle_before and p.settle_before.get("last_ms")]
    stable = [p.summary.latency_ms["p50"] for p in probes if p.state == "stable" and p.summary.latency_ms.get("p50")]
    base = min(alone or stable, default=None)
    if base is None or n is None:
        return limit
    k = at_n.summary.achieved_rps * base / 1000.0
    sentence = (
        f"At N the target served {at_n.summary.achieved_rps:,.4g}/s, and one request alone takes {base:.3g} ms: about {k:.1f} "
        f"requests at once — the size of whatever pool it waits in (workers, connections, a lock's holders)."
    )
    return dataclasses.replace(
        limit,
        headline=f"latency-bound: ~{k:.0f} requests served at once at N, nothing saturates",
        paragraph=limit.paragraph.replace(" What to change:", f" {sentence} What to change:", 1),
        figures=limit.figures | {"concurrency_at_n": round(k, 2), "unloaded_p50_ms": base},
    )


def limit_of_run(
    findings: Sequence[Finding], profile: ProfileSummary | None, audit: Sequence[Finding] = ()
) -> Limit | None:
    chosen, _ = _choose([(f, None) for f in findings])
    if chosen is None:
        return None
    return _compose(
        chosen, None, profile if profile and not profile.error else None, audit, None, None, None, "request"
    )


def _choose(pairs: list[tuple[Finding, T]]) -> tuple[Finding | None, T | None]:
    ranked = [(f, p) for f, p in pairs if f.id in _KIND]
    if not ranked:
        return None, None
    ranked.sort(key=lambda fp: _ORDER.index(fp[0].id))
    return ranked[0]


def _cost(p: ProbeResult) -> dict[str, float] | None:
    for f in p.findings:
        if "cpu_ms_per_request" in f.figures and "ceiling_rps" in f.figures:
            return {k: v for k, v in f.figures.items() if isinstance(v, int | float)}
    return None


def _compose(
    f: Finding,
    probe: int | None,
    profile: ProfileSummary | None,
    audit: Sequence[Finding],
    at_n: ProbeResult | None,
    n: float | None,
    at_n_cost: dict[str, float] | None,
    unit: str,
    over_rate: float | None = None,
) -> Limit:
    kind = _KIND[f.id]
    figures = dict(f.figures)
    k_at_n = _in_flight(at_n) if kind == "latency_bound" else None
    if k_at_n is not None:
        figures["in_flight_at_n"] = round(k_at_n, 2)
    lead = _lead(kind, f, n, at_n_cost, unit, at_n, over_rate)
    advice: list[str] = [f.fix] if f.fix else []
    audit_ids = list(_AUDIT_BY_KIND.get(kind, ()))
    measured: list[str] = []
    hot = None
    if profile is not None and profile.samples > 0:
        native = native_share(profile)
        hot = ", ".join(f"{lib} {share:.0%} (native code, called from Python)" for lib, share in native.items())
        hot = "; ".join(x for x in (hot, profile.headline()) if x)
        top = [fn for fn in profile.top_self[:3] if fn.self_share >= 0.05]
        if top:
            hot += "; top functions " + ", ".join(f"{fn.function} ({fn.package}) {fn.self_share:.0%}" for fn in top)
        for rule in _hot_rules(profile):
            advice.append(rule.advice)
            audit_ids = [*rule.audit, *audit_ids]
            if rule.measured:
                measured.append(rule.measured)
    links = _links(audit, audit_ids)
    parts = [lead]
    if hot:
        parts.append(f"Where the target's CPU went (profile): {hot}.")
    parts.append("What to change: " + " ".join(dict.fromkeys(advice)))
    if links:
        parts.append(
            "The target's configuration fails "
            + "; ".join(f"{a.id} ({', '.join(a.evidence) or a.title})" for a in links)
            + " — see `redline audit`."
        )
    parts.extend(f"{m[0].upper()}{m[1:]}." for m in measured)
    return Limit(
        kind=kind,
        headline=(
            f"latency-bound: ~{k_at_n:.0f} requests in flight at N, nothing saturates"
            if k_at_n is not None
            else _headline(kind, f, at_n_cost, unit)
        ),
        paragraph=" ".join(parts),
        evidence=tuple(e.text for e in f.evidence),
        advice=tuple(dict.fromkeys(advice)),
        hot_code=hot,
        audit=links,
        finding=f.id,
        probe=probe,
        figures=figures | ({"at_n": at_n_cost} if at_n_cost else {}),
    )


def _hot_rules(profile: ProfileSummary) -> list[HotCodeAdvice]:
    """The advice for the packages that hold at least a fifth of the CPU samples (self or total)."""
    out: list[HotCodeAdvice] = []
    shares = [(pkg.package, max(pkg.self_share, pkg.total_share if pkg.package != "python" else 0.0))
              for pkg in profile.packages] + list(native_share(profile).items())  # fmt: skip
    for package, share in shares:
        if share < 0.2:
            continue
        for rule in HOT_CODE:
            if rule not in out and any(package == p or package.startswith(p + ".") for p in rule.prefixes):
                out.append(rule)
    return out


def _links(audit: Sequence[Finding], ids: Sequence[str]) -> tuple[AuditLink, ...]:
    failing = {a.id: a for a in audit if a.status == Status.FAIL}
    return tuple(
        AuditLink(a.id, a.title, a.fix, tuple(e.text for e in a.evidence))
        for a in (failing[i] for i in dict.fromkeys(ids) if i in failing)
    )


def _share_of_ceiling(c: dict[str, float], n: float | None) -> float:
    """N over the CPU ceiling (the window's achieved rate over it when there is no N)."""
    return n / c["ceiling_rps"] if n is not None and c.get("ceiling_rps") else c["share_of_ceiling"]


def _rate(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def _lead(
    kind: str,
    f: Finding,
    n: float | None,
    cost: dict[str, float] | None,
    unit: str,
    at_n: ProbeResult | None,
    over_rate: float | None = None,
) -> str:
    subject = f"N = {n:,.6g}/s" if n is not None else "This run"
    fig = f.figures
    if kind == "target_cpu":
        c = cost or fig
        # Judged saturated on the degraded probe while N's own probe was below the threshold:
        # both figures, so the sentence never calls a 69 % busy CPU saturated on its own.
        above = (
            f" and {fig['busy_share']:.0%} at {over_rate:,.4g}/s, where it degraded"
            if cost and over_rate is not None and fig.get("busy_share", 0) > c["busy_share"] + 0.02
            else ""
        )
        return (
            f"{subject} is limited by the target's CPU: its {c['cpus']:g} CPU{'s' if c['cpus'] != 1 else ''} "
            f"{'were' if c['cpus'] != 1 else 'was'} {c['busy_share']:.0%} busy"
            + (" at N" if cost else "")
            + above
            + f", at {c['cpu_ms_per_request']:.3g} ms of CPU per {unit} — a ceiling near {_rate(c['ceiling_rps'])}/s, "
            f"so {'N' if cost else 'the rate'} is {_share_of_ceiling(c, n):.0%} of what its CPU allows."
        )
    if kind == "single_thread":
        return (
            f"{subject} is limited by one process: {fig.get('name')} (pid {fig.get('pid')}) kept one core "
            f"{fig.get('median_pct', 0):.0f} % busy while {fig.get('median_idle_cores', 0):.1f} of the CPUs it could "
            "use idled — its work is serialised on one thread (single-threaded, seed 000's Keystone)."
        )
    if kind == "generator":
        return f"{subject} says more about the load generator than the target: {f.evidence[0].text if f.evidence else f.title}."
    if kind == "latency_bound":
        k = _in_flight(at_n) or fig.get("in_flight")
        return (
            f"{subject} is latency-bound: nothing saturated (CPU, disk, memory, the generator) yet latency grew; "
            + (f"~{k:.1f} requests were in flight at N (Little's law, queue included)" if k else "the target waits")
            + " (a pool of workers or connections, locks, sleeps or remote calls)."
        )
    if kind == "headroom":
        return f"Nothing saturated: {f.evidence[0].text if f.evidence else f.title}."
    return f"{subject} — {f.title}: {'; '.join(e.text for e in f.evidence[:2])}."


def _headline(kind: str, f: Finding, cost: dict[str, float] | None, unit: str) -> str:
    c = cost or f.figures
    if kind == "target_cpu" and c.get("ceiling_rps"):
        return (
            f"target CPU: {c['busy_share']:.0%} of its {c['cpus']:g} CPU, {c['cpu_ms_per_request']:.3g} ms per {unit},"
            f" ceiling ~{_rate(c['ceiling_rps'])}/s"
        )
    return f.title


def _in_flight(p: ProbeResult | None) -> float | None:
    if p is None:
        return None
    for f in p.findings:
        v = f.figures.get("in_flight")
        if isinstance(v, int | float):
            return float(v)
    lat = p.summary.latency_ms.get("mean")
    return p.summary.achieved_rps * lat / 1000.0 if lat else None
