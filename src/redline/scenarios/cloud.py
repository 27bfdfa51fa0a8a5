"""One authenticated cloud: credentials from openstacksdk's config loader (clouds.yaml merged
with secure.yaml, OS_* variables, the --os-* options), a keystoneauth1 session with the
cloud's TLS settings, and what the scenarios need of it off the hot path (tokens, catalog
endpoints, the body of a token request).

Precedence is openstacksdk's: options override the chosen cloud; the chosen cloud is
--os-cloud (or OS_CLOUD), else the cloud the OS_* variables describe, else the only cloud
in clouds.yaml. The session and every secret stay out of reprs, descriptions and messages.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NoReturn

from keystoneauth1 import exceptions as ksa_exc
from keystoneauth1 import session as ksa_session
from openstack import exceptions as sdk_exc
from openstack.config import loader as sdk_loader

from redline.errors import UserError
from redline.load.request import Target
from redline.scenarios.keystone_client import IssuedToken, fail, first_line

# keystoneauth1 and openstacksdk log their retries ("Failed to discover available identity
# versions …") as warnings; with no handler configured Python prints them on stderr beside
# redline's own one-line error. A NullHandler keeps them out of the terminal and still lets
# an application that configures logging see them.
for _name in ("keystoneauth", "openstack"):
    logging.getLogger(_name).addHandler(logging.NullHandler())

# auth_type → the token-request method keystone.issue sends for it
_METHODS = {
    "password": "password",
    "v3password": "password",
    "v3applicationcredential": "application_credential",
    "token": "token",
    "v3token": "token",
}
# What a missing option is called on the command line, in OS_* and in clouds.yaml
_NAMES = {
    "auth_url": ("--os-auth-url", "OS_AUTH_URL", "auth.auth_url"),
    "username": ("--os-username", "OS_USERNAME", "auth.username"),
    "password": ("--os-password", "OS_PASSWORD", "auth.password"),
    "application_credential_secret": (
        "--os-application-credential-secret",
        "OS_APPLICATION_CREDENTIAL_SECRET",
        "auth.application_credential_secret",
    ),
    "application_credential_id": (
        "--os-application-credential-id",
        "OS_APPLICATION_CREDENTIAL_ID",
        "auth.application_credential_id",
    ),
    "token": ("--os-token", "OS_TOKEN", "auth.token"),
}
# What goes under a cloud's `auth:` (the rest — region, interface, TLS, auth_type — beside it)
_AUTH_KEYS = frozenset(
    {
        "auth_url",
        "username",
        "user_id",
        "password",
        "project_name",
        "project_id",
        "user_domain_name",
        "user_domain_id",
        "project_domain_name",
        "project_domain_id",
        "domain_name",
        "domain_id",
        "application_credential_id",
        "application_credential_name",
        "application_credential_secret",
        "token",
    }
)
_RETRY_PAUSES_S = (0.25, 0.5, 1.0)  # between tries of a call that met a connection failure
_DOMAIN_DEFAULTS = {"user_domain_name": "Default", "project_domain_name": "Default"}
_SECRET_KEYS = ("password", "application_credential_secret", "token", "passcode", "client_secret", "secret")


@dataclass(frozen=True)
class TlsSettings:
    """How to reach a TLS endpoint; the same settings feed the keystoneauth1 session and the
    load Target, so that preflight and the measured requests verify alike."""

    verify: bool = True
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def target(self, url: str) -> Target:
        return Target.from_url(
            url, tls_verify=self.verify, ca_file=self.ca_file, cert_file=self.cert_file, key_file=self.key_file
        )

    def describe(self) -> dict[str, Any]:
        return {"verify": self.verify, "ca_file": self.ca_file, "cert_file": self.cert_file, "key_file": self.key_file}


class _Loader(sdk_loader.OpenStackConfig):
    """openstacksdk's loader reading OS_* from a given mapping instead of os.environ (tests,
    and callers that must not depend on the process environment)."""

    def __init__(self, environ: Mapping[str, str], **kwargs: Any) -> None:
        self._environ = environ
        super().__init__(**kwargs)

    def _get_envvar(self, key: str, default: str | None = None) -> str | None:
        if not self._load_envvars:
            return default
        return self._environ.get(key, default)

    def _get_os_environ(self, envvar_prefix: str | None = None) -> dict[str, Any] | None:
        ret: dict[str, Any] = self._defaults_module.get_defaults()
        keys = [k for k in self._environ if k.startswith("OS_") and not k.startswith(("OS_TEST", "OS_STD", "OS_LOG"))]
        for k in keys:
            ret[k.split("_", 1)[-1].lower()] = self._environ[k]
        selectors = {"OS_CLOUD", "OS_REGION_NAME", "OS_CLIENT_CONFIG_FILE", "OS_CLIENT_SECURE_FILE", "OS_CLOUD_NAME"}
        return ret if set(keys) - selectors else None


class Cloud:
    """One authenticated place. The keystoneauth1 Session is in no repr."""

    def __init__(
        self,
        *,
        name: str | None,
        source: str,
        auth_type: str,
        auth: Mapping[str, Any],
        region: str | None,
        interface: str,
        tls: TlsSettings,
        session: ksa_session.Session,
    ) -> None:
        self.name = name
        self.source = source
        self.auth_type = auth_type
        self._auth = dict(auth)
        self.auth_url = _v3(str(auth.get("auth_url") or ""))
        self.region = region
        self.interface = interface
        self.tls = tls
        self.session = session
        self._issued: list[str] = []  # every token handed out, for secrets()

    def __repr__(self) -> str:
        return f"Cloud(name={self.name!r}, auth_url={self.auth_url!r}, auth_type={self.auth_type!r})"

    # -- tokens ---------------------------------------------------------------------------
    def token(self) -> IssuedToken:
        """The session's token (cached by keystoneauth1, issued again when near expiry)."""
        plugin = self.session.auth
        assert plugin is not None
        access = self._call(lambda: plugin.get_access(self.session))  # type: ignore[attr-defined]
        return self._issued_token(access)

    def issue_tokens(self, n: int, concurrency: int = 4) -> list[IssuedToken]:
        """n distinct fresh tokens: one authentication each (bypassing the session's cache)."""
        plugin = self.session.auth
        assert plugin is not None

        def one(_: int) -> IssuedToken:
            return self._issued_token(self._call(lambda: plugin.get_auth_ref(self.session)))

        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, n))) as ex:
            return list(ex.map(one, range(n)))

    def _issued_token(self, access: Any) -> IssuedToken:
        self._issued.append(access.auth_token)
        return IssuedToken(access.auth_token, access.expires.timestamp())

    # -- catalog --------------------------------------------------------------------------
    def endpoint(self, service_type: str, interface: str | None = None) -> str:
        """The catalog's URL of `service_type` (this cloud's region and interface unless told)."""
        iface = interface or self.interface
        url = self._call(
            lambda: self.session.get_endpoint(service_type=service_type, interface=iface, region_name=self.region)
        )
        if url:
            return str(url)
        plugin = self.session.auth
        access = self._call(lambda: plugin.get_access(self.session))  # type: ignore[union-attr]
        types = sorted(access.service_catalog.get_endpoints()) if access.has_service_catalog() else []
        where = f"interface {iface}" + (f", region {self.region}" if self.region else "")
        raise UserError(
            f"the catalog of {self.auth_url} has no {service_type!r} endpoint ({where});"
            f" it has: {', '.join(types) or 'no services'}"
        )

    # -- the hot path's request -----------------------------------------------------------
    def auth_request_body(self, user: str | None = None, project: str | None = None) -> bytes:
        """The POST /v3/auth/tokens body that issues one token with this cloud's auth;
        `user`/`project` replace the password user and its project (keystone.issue --users)."""
        method = _METHODS.get(self.auth_type)
        a = self._auth
        if method is None:
            raise UserError(
                f"keystone.issue sends its own token requests and knows the auth types"
                f" {', '.join(sorted(_METHODS))}, not {self.auth_type!r}"
            )
        identity: dict[str, Any] = {"methods": [method]}
        scope: dict[str, Any] | None = _scope(a, project)
        if method == "password":
            u: dict[str, Any] = {"password": a.get("password")}
            if user is None and a.get("user_id"):
                u["id"] = a["user_id"]
            else:
                u["name"] = user or a.get("username")
                u["domain"] = _domain(a, "user_domain")
            identity["password"] = {"user": u}
        elif method == "application_credential":
            ac: dict[str, Any] = {"secret": a.get("application_credential_secret")}
            if a.get("application_credential_id"):
                ac["id"] = a["application_credential_id"]
            else:
                ac["name"] = a.get("application_credential_name")
                who: dict[str, Any] = (
                    {"id": a["user_id"]}
                    if a.get("user_id")
                    else {"name": a.get("username"), "domain": _domain(a, "user_domain")}
                )
                ac["user"] = who
            identity["application_credential"] = ac
            scope = None  # an application credential carries its own scope; Keystone refuses another
        else:
            identity["token"] = {"id": a.get("token")}
        auth: dict[str, Any] = {"identity": identity}
        if scope is not None:
            auth["scope"] = scope
        return json.dumps({"auth": auth}).encode()

    # -- description ----------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Where and as whom, without a secret."""
        a = self._auth
        keep = (
            "username",
            "user_id",
            "project_name",
            "project_id",
            "user_domain_name",
            "project_domain_name",
            "application_credential_id",
            "application_credential_name",
        )
        d: dict[str, Any] = {
            "auth_url": self.auth_url,
            "auth_type": self.auth_type,
            "cloud": self.name,
            "region": self.region,
            "interface": self.interface,
            "source": self.source,
            "tls": self.tls.describe(),
        }
        d.update({k: a[k] for k in keep if a.get(k)})
        return d

    def secrets(self) -> list[str]:
        return [str(self._auth[k]) for k in _SECRET_KEYS if self._auth.get(k)] + list(self._issued)

    def _call(self, fn: Any) -> Any:
        # A connection reset right after an overloading probe (uWSGI drops what its listen
        # queue held) is not an unreachable target: tried again after a pause, as between
        # probes redline waits for the backlog to drain anyway. A target that stays down
        # fails after the last pause.
        for pause_s in _RETRY_PAUSES_S:
            try:
                return fn()
            except ksa_exc.ConnectFailure:
                time.sleep(pause_s)
            except ksa_exc.ClientException as exc:
                fail(exc, self.auth_url)
        try:
            return fn()
        except ksa_exc.ClientException as exc:
            fail(exc, self.auth_url)


def _v3(auth_url: str) -> str:
    base = auth_url.rstrip("/")
    return base if base.endswith("/v3") else base + "/v3"


def _domain(a: Mapping[str, Any], prefix: str) -> dict[str, str]:
    if a.get(f"{prefix}_id"):
        return {"id": str(a[f"{prefix}_id"])}
    if a.get(f"{prefix}_name"):
        return {"name": str(a[f"{prefix}_name"])}
    if a.get("default_domain_id"):
        return {"id": str(a["default_domain_id"])}
    return {"name": str(a.get("default_domain_name") or "Default")}


def _scope(a: Mapping[str, Any], project: str | None) -> dict[str, Any] | None:
    if project is None and a.get("project_id"):
        return {"project": {"id": a["project_id"]}}
    if project or a.get("project_name"):
        return {"project": {"name": project or a["project_name"], "domain": _domain(a, "project_domain")}}
    if a.get("domain_id"):
        return {"domain": {"id": a["domain_id"]}}
    if a.get("domain_name"):
        return {"domain": {"name": a["domain_name"]}}
    return None


def _missing(exc: ksa_exc.MissingRequiredOptions, auth_type: str) -> NoReturn:
    names = []
    for opt in exc.options:
        key = opt.dest or opt.name.replace("-", "_")
        flag, env, yml = _NAMES.get(key, (f"--os-{key.replace('_', '-')}", f"OS_{key.upper()}", f"auth.{key}"))
        names.append(f"{flag} ({env}, clouds.yaml {yml})")
    raise UserError(f"missing credentials for auth type {auth_type}: {'; '.join(names)} — or --os-cloud NAME") from None


def open_cloud(
    options: Mapping[str, str | None],
    cloud: str | None,
    tls: TlsSettings | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    files: bool = True,
) -> Cloud:
    """The cloud the options, clouds.yaml (+ secure.yaml) and OS_* describe, loaded by
    openstacksdk; `tls` (--ca-file, --insecure) overrides the cloud's verify/cacert/cert/key
    where set. `files=False`: no clouds.yaml (redline's own services, whose credentials it
    holds). Nothing is sent: preflight is the scenario's."""
    env = os.environ if environ is None else environ
    given = {k: v for k, v in options.items() if v}
    try:
        loader = _Loader(env, app_name="redline", load_yaml_config=files)
        chosen = cloud or loader.default_cloud
        if chosen is None and not loader.config_filename:
            chosen = "defaults"  # the loader's cloud for options alone: neither clouds.yaml nor OS_*
        # Auth values go in as `auth` so that they beat the cloud's (openstacksdk moves a
        # top-level username under auth only where the cloud has none).
        kwargs: dict[str, Any] = {k: v for k, v in given.items() if k not in _AUTH_KEYS}
        auth_given = {k: v for k, v in given.items() if k in _AUTH_KEYS}
        if auth_given:
            kwargs["auth"] = auth_given
        if tls is not None:
            if not tls.verify:
                kwargs["verify"] = False
                kwargs["insecure"] = True
            if tls.ca_file:
                kwargs["cacert"] = tls.ca_file
            if tls.cert_file:
                kwargs["cert"] = tls.cert_file
            if tls.key_file:
                kwargs["key"] = tls.key_file
        if not kwargs.get("auth_type") and not _has_auth_type(loader, chosen, env):
            kwargs["auth_type"] = _guess_auth_type(given, loader, chosen)
        entry = _cloud_of(loader, chosen)
        auth_type = str(kwargs.get("auth_type") or entry.get("auth_type") or "password")
        if _from_defaults(loader, chosen):
            auth_type = str(kwargs.get("auth_type") or env.get("OS_AUTH_TYPE") or "password")
            kwargs.setdefault("auth_type", auth_type)
        if cloud and cloud not in (loader.cloud_config.get("clouds") or {}):
            raise UserError(_cloud_message("", cloud, loader))
        if _METHODS.get(auth_type) == "password":
            # Keystone's own default domain, as DevStack's clouds.yaml spells out: a bare
            # username/project otherwise fails to authenticate. Other plugins take no user domain.
            loader.defaults.update(_DOMAIN_DEFAULTS)
        _check_required(auth_type, {**entry, **(entry.get("auth") or {}), **given})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a cacert with --insecure: described, not warned about
            region = loader.get_one(chosen, **kwargs)
            verify, cert = region.get_requests_verify_args()
            session = region.get_session()
    except ksa_exc.MissingRequiredOptions as exc:
        _missing(exc, auth_type)
    except ksa_exc.OptionError as exc:
        raise UserError(f"credentials: {first_line(exc)}") from None
    except ksa_exc.NoMatchingPlugin as exc:
        raise UserError(f"--os-auth-type: no keystoneauth1 plugin named {exc.name!r}") from None
    except sdk_exc.ConfigException as exc:
        raise UserError(_cloud_message(str(exc), cloud, loader if "loader" in locals() else None)) from None
    config = region.config
    auth = dict(config.get("auth") or {})
    auth_type = str(config.get("auth_type") or auth_type)
    settings = TlsSettings(
        verify=bool(verify),
        ca_file=verify if isinstance(verify, str) else None,
        cert_file=cert[0] if isinstance(cert, tuple) else cert,
        key_file=cert[1] if isinstance(cert, tuple) else None,
    )
    return Cloud(
        name=chosen if chosen not in (None, "defaults", loader.envvar_key) else None,
        source=_source(loader, chosen, given),
        auth_type=auth_type,
        auth=auth,
        region=region.region_name or None,
        interface=str(region.get_interface() or "public"),
        tls=settings,
        session=session,
    )


def _check_required(auth_type: str, auth: Mapping[str, Any]) -> None:
    """What keystoneauth1 would only find missing when it authenticates (or prompt for)."""
    need: list[str] = ["auth_url"]
    method = _METHODS.get(auth_type)
    if method == "password":
        need += [k for k in ("username", "password") if not (k == "username" and auth.get("user_id"))]
    elif method == "application_credential":
        need.append("application_credential_secret")
        if not auth.get("application_credential_name"):
            need.append("application_credential_id")
    elif method == "token":
        need.append("token")
    missing = [k for k in need if not auth.get(k)]
    if missing:
        names = "; ".join("{} ({}, clouds.yaml {})".format(*_NAMES[k]) for k in missing)
        raise UserError(f"missing credentials for auth type {auth_type}: {names} — or --os-cloud NAME")


def _cloud_of(loader: sdk_loader.OpenStackConfig, chosen: str | None) -> dict[str, Any]:
    """The chosen cloud's entry as loaded (clouds.yaml + secure.yaml, or OS_*), before options."""
    return dict((loader.cloud_config.get("clouds") or {}).get(chosen or "", {}) or {})


def _from_defaults(loader: sdk_loader.OpenStackConfig, chosen: str | None) -> bool:
    """The OS_* cloud and the options-only cloud start from openstacksdk's defaults, whose
    auth_type is password: theirs is only what OS_AUTH_TYPE says."""
    return chosen == loader.envvar_key or (chosen == "defaults" and not loader.config_filename)


def _has_auth_type(loader: sdk_loader.OpenStackConfig, chosen: str | None, environ: Mapping[str, str]) -> bool:
    if _from_defaults(loader, chosen):
        return bool(environ.get("OS_AUTH_TYPE"))
    c = _cloud_of(loader, chosen)
    return bool(c.get("auth_type") or c.get("auth_plugin"))


def _guess_auth_type(given: Mapping[str, str], loader: sdk_loader.OpenStackConfig, chosen: str | None) -> str:
    """What keystoneauth1's clients pick without an auth_type: an application credential or a
    token when that is what was given, else password."""
    c = _cloud_of(loader, chosen)
    keys = set(given) | set(c) | set(c.get("auth") or {})
    if keys & {"application_credential_id", "application_credential_secret", "application_credential_name"}:
        return "v3applicationcredential"
    if "token" in keys and "password" not in keys:
        return "token"
    return "password"


def _source(loader: sdk_loader.OpenStackConfig, chosen: str | None, given: Mapping[str, str]) -> str:
    parts = []
    if chosen == "defaults" and not loader.config_filename:
        pass
    elif chosen and chosen == loader.envvar_key:
        parts.append("OS_* environment")
    elif chosen:
        where = loader.config_filename or "clouds.yaml"
        if loader.secure_config_filename:
            where += f" + {loader.secure_config_filename}"
        parts.append(f"cloud {chosen!r} in {where}")
    if given:
        parts.append("options")
    return " + ".join(parts) or "defaults"


def _cloud_message(text: str, cloud: str | None, loader: sdk_loader.OpenStackConfig | None) -> str:
    if loader is not None and cloud:
        names = [n for n in (loader.cloud_config.get("clouds") or {}) if n != loader.envvar_key]
        if not loader.config_filename:
            return (
                f"--os-cloud {cloud}: no clouds.yaml found (OS_CLIENT_CONFIG_FILE, ./, ~/.config/openstack/,"
                " /etc/openstack/)"
            )
        return f"--os-cloud {cloud}: no such cloud in {loader.config_filename} (it has: {', '.join(names) or 'none'})"
    return f"clouds.yaml: {text.splitlines()[0] if text else 'unreadable'}"
