"""keystone.conf settings behind token issue and validation cost (seed 000, LAB-NOTES, seed 003)."""

from __future__ import annotations

from redline.audit.facts import cpu_count, get, ini, is_true
from redline.audit.parse import wsgi_processes
from redline.audit.registry import AuditParams, CheckOutcome, bad, check, ev, ok, skip
from redline.audit.snapshot import Snapshot
from redline.model.finding import Change, Severity

KEYSTONE = "/etc/keystone/keystone.conf"
LAB = "redline lab measurement (LAB-NOTES: validate ~2.5 req/s uncached vs ~190-320 cached)"
SEED000 = "seed 000 (Keystone tokens in memcached; N keystone processes)"
SHARED_BACKENDS = (
    "dogpile.cache.memcached",
    "dogpile.cache.pymemcache",
    "dogpile.cache.pylibmc",
    "oslo_cache.memcache_pool",
    "dogpile.cache.bmemcached",
    "dogpile.cache.redis",
    "oslo_cache.etcd3gw",
)
LOCAL_BACKENDS = ("oslo_cache.dict", "dogpile.cache.memory", "dogpile.cache.memory_pickle")


@check("keystone.cache_enabled", "Keystone caching enabled", LAB + "; " + SEED000)
def cache_enabled(s: Snapshot, p: AuditParams) -> CheckOutcome:
    conf = ini(s, KEYSTONE)
    if conf is None:
        return skip("no /etc/keystone/keystone.conf")
    raw = get(conf, "cache", "enabled")
    shown = f"[cache] enabled = {raw}" if raw else "[cache] enabled not set (False)"
    why = (
        "With caching off one token validation ran ~450 SQL queries: token validation was ~100x "
        "slower in our lab (2.5 vs 190-320 req/s), and every OpenStack API call validates a token."
    )
    if is_true(raw):
        return ok(why, ev(KEYSTONE, shown))
    return bad(
        Severity.HIGH,
        why,
        "Set [cache] enabled = true with backend = dogpile.cache.pymemcache and memcache_servers.",
        ev(KEYSTONE, shown),
        changes=(Change("conf", KEYSTONE, "true", key="enabled", section="cache"),),
    )


@check("keystone.cache_backend", "Keystone cache backend", LAB + "; oslo.cache docs")
def cache_backend(s: Snapshot, p: AuditParams) -> CheckOutcome:
    conf = ini(s, KEYSTONE)
    if conf is None:
        return skip("no /etc/keystone/keystone.conf")
    if not is_true(get(conf, "cache", "enabled")):
        return skip("caching is disabled (see keystone.cache_enabled)")
    backend = get(conf, "cache", "backend") or "dogpile.cache.null"
    servers = get(conf, "cache", "memcache_servers")
    evidence = [ev(KEYSTONE, f"[cache] backend = {backend}")] + (
        [ev(KEYSTONE, f"[cache] memcache_servers = {servers}")] if servers else []
    )
    why = (
        "A shared cache (memcached) serves every Keystone process and sees revocations; "
        "dogpile.cache.null caches nothing; an in-process dict is fast (~320 req/s in our lab) but "
        "each worker warms its own copy and misses invalidations made by the others."
    )
    if backend in SHARED_BACKENDS:
        return ok(why, *evidence)
    if backend in LOCAL_BACKENDS:
        return bad(
            Severity.LOW,
            why,
            "Use dogpile.cache.pymemcache (or oslo_cache.memcache_pool) with memcache_servers.",
            *evidence,
        )
    return bad(
        Severity.HIGH,
        why,
        "Set [cache] backend = dogpile.cache.pymemcache and memcache_servers = HOST:11211.",
        *evidence,
        changes=(Change("conf", KEYSTONE, "dogpile.cache.pymemcache", key="backend", section="cache"),),
    )


@check(
    "keystone.token_provider",
    "Keystone token provider",
    SEED000 + " (SQL token table filtered in Python); keystone docs",
)
def token_provider(s: Snapshot, p: AuditParams) -> CheckOutcome:
    conf = ini(s, KEYSTONE)
    if conf is None:
        return skip("no /etc/keystone/keystone.conf")
    raw = get(conf, "token", "provider")
    provider = (raw or "fernet").rsplit(".", 1)[-1].lower()
    why = (
        "Persistent token providers (uuid, pki) store every token in SQL; the table grows and, as "
        "seed 000 saw, validation slows with it. fernet/jws tokens are not stored."
    )
    shown = f"[token] provider = {raw}" if raw else "[token] provider not set (fernet)"
    if provider in ("fernet", "jws"):
        return ok(why, ev(KEYSTONE, shown))
    return bad(
        Severity.MEDIUM, why, "Set [token] provider = fernet and run keystone-manage fernet_setup.", ev(KEYSTONE, shown)
    )


@check(
    "keystone.password_hash_rounds",
    "password hash cost",
    "redline lab measurement (bcrypt cost 12 ~290 ms, cost 4 ~1.2 ms per check)",
)
def password_hash_rounds(s: Snapshot, p: AuditParams) -> CheckOutcome:
    conf = ini(s, KEYSTONE)
    if conf is None:
        return skip("no /etc/keystone/keystone.conf")
    algo = get(conf, "identity", "password_hash_algorithm") or "bcrypt"
    raw = get(conf, "identity", "password_hash_rounds")
    rounds = int(raw) if raw and raw.isdigit() else None
    shown = f"[identity] password_hash_algorithm = {algo}, password_hash_rounds = {raw or 'default'}"
    why = (
        "Every password token issue runs one hash check. At bcrypt cost 12 (the default) that is "
        "~290 ms of CPU, ~93% of an issue in our lab, so one CPU issues ~3.5 tokens/s. Lower cost is "
        "a security trade-off (faster offline guessing); the cost is fixed when a password is set."
    )
    if algo == "bcrypt" and (rounds is None or rounds >= 12):
        return bad(
            Severity.INFO,
            why,
            "If issue throughput matters more than brute-force resistance, set [identity] "
            "password_hash_rounds lower (e.g. 10) and re-set service passwords; otherwise size "
            "Keystone CPUs for ~0.3 s per issue.",
            ev(KEYSTONE, shown),
        )
    return ok(why, ev(KEYSTONE, shown))


def _wsgi(s: Snapshot) -> list[tuple[str, int]]:
    found = []
    for path in s.glob("/etc/keystone/*uwsgi*.ini") + s.glob("/etc/uwsgi/apps-enabled/*keystone*.ini"):
        n = wsgi_processes(s.text(path) or "", "uwsgi")
        if n is not None:
            found.append((path, n))
    for path in s.glob("/etc/keystone/gunicorn*.py") + s.glob("/etc/keystone/gunicorn*.conf"):
        n = wsgi_processes(s.text(path) or "", "gunicorn")
        if n is not None:
            found.append((path, n))
    for path in s.glob("/etc/apache2/sites-enabled/*.conf") + s.glob("/etc/httpd/conf.d/*.conf"):
        text = s.text(path) or ""
        if "keystone" in text and "WSGIDaemonProcess" in text:
            n = wsgi_processes(text, "apache")
            if n is not None:
                found.append((path, n))
    return found


@check("keystone.wsgi_processes", "Keystone WSGI processes", SEED000 + "; seed 003 (uWSGI / Apache)")
def wsgi_processes_check(s: Snapshot, p: AuditParams) -> CheckOutcome:
    found = _wsgi(s)
    if not found:
        return skip("no Keystone uWSGI / gunicorn / Apache WSGI configuration on this host")
    cpus = cpu_count(s)
    why = (
        "Keystone is CPU-bound (hashing, token crypto, SQL): it uses as many CPUs as it has "
        "processes, and one process serialises every request."
    )
    evidence = [ev(path, f"processes = {n}") for path, n in found] + [
        ev("/sys/devices/system/cpu/online", f"{cpus} CPUs")
    ]
    if all(n >= cpus for _, n in found):
        return ok(why, *evidence)
    return bad(Severity.MEDIUM, why, f"Run at least {cpus} processes (one per CPU).", *evidence)
