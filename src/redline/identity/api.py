"""The Keystone v3 subset, as a pure function of a parsed request and the store.

GET / and GET /v3 (version discovery), POST /v3/auth/tokens (password, token and
application_credential methods, project scope or unscoped), GET/HEAD /v3/auth/tokens (validate), DELETE
/v3/auth/tokens (revoke). Bodies and error documents have Keystone's shapes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redline.identity.store import Project, Store, User, check_password, check_secret
from redline.identity.tokens import TokenCodec, TokenError, TokenPayload, new_audit_id

JSON = "application/json"
_UPDATED = "2024-04-01T00:00:00Z"
_MEDIA = [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ServiceSettings:
    public_url: str  # e.g. http://127.0.0.1:5000 (no trailing slash, no /v3)
    token_ttl_s: float = 3600.0
    region: str = "RegionOne"


_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed"}


def error(status: int, message: str) -> Response:
    body = {"error": {"code": status, "message": message, "title": _TITLES.get(status, "Error")}}
    headers = (("WWW-Authenticate", 'Keystone uri="{}"'.format("/v3")),) if status == 401 else ()
    return Response(status, json.dumps(body).encode(), headers)


_UNAUTHORIZED = "The request you have made requires authentication."


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


class IdentityAPI:
    def __init__(self, store: Store, codec: TokenCodec, settings: ServiceSettings) -> None:
        self.store = store
        self.codec = codec
        self.settings = settings
        base = settings.public_url.rstrip("/")
        self._version = {
            "id": "v3.14",
            "status": "stable",
            "updated": _UPDATED,
            "links": [{"rel": "self", "href": f"{base}/v3/"}],
            "media-types": _MEDIA,
        }
        self._catalog = [
            {
                "endpoints": [
                    {
                        "id": f"{i:032x}",
                        "interface": interface,
                        "region_id": settings.region,
                        "region": settings.region,
                        "url": f"{base}/v3",
                    }
                    for i, interface in enumerate(("public", "internal", "admin"), start=1)
                ],
                "id": "0" * 31 + "1",
                "type": "identity",
                "name": "keystone",
            }
        ]
        self._v3_doc = json.dumps({"version": self._version}).encode()
        self._root_doc = json.dumps({"versions": {"values": [self._version]}}).encode()

    # -- dispatch ---------------------------------------------------------------------

    def handle(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Response:
        path = path.rstrip("/") or "/"
        if path == "/":
            if method in ("GET", "HEAD"):
                return Response(300, self._root_doc)
            return error(405, "Method not allowed.")
        if path == "/v3":
            if method in ("GET", "HEAD"):
                return Response(200, self._v3_doc)
            return error(405, "Method not allowed.")
        if path == "/v3/auth/tokens":
            nocatalog = "nocatalog" in query
            if method == "POST":
                return self.issue(body, nocatalog)
            if method in ("GET", "HEAD"):
                r = self.validate(headers, nocatalog)
                return Response(r.status, b"", r.headers) if method == "HEAD" else r
            if method == "DELETE":
                return self.revoke(headers)
            return error(405, "Method not allowed.")
        return error(404, "The resource could not be found.")

    # -- issue --------------------------------------------------------------------------

    def issue(self, body: bytes, nocatalog: bool) -> Response:
        try:
            doc = json.loads(body)
            auth = doc["auth"]
            identity = auth["identity"]
            methods = identity["methods"]
        except (ValueError, KeyError, TypeError):
            return error(400, "Expecting to find auth.identity.methods in request body.")
        if not isinstance(methods, list) or not methods:
            return error(400, "Expecting to find auth.identity.methods in request body.")
        try:
            if methods == ["password"]:
                user, parent = self._password(identity["password"]["user"]), None
            elif methods == ["token"]:
                user, parent = self._token_auth(identity["token"]["id"])
            elif methods == ["application_credential"]:
                return self._app_credential_issue(identity["application_credential"], auth, nocatalog)
            else:
                return error(401, "Unsupported authentication method.")
        except (KeyError, TypeError, AttributeError):
            return error(400, "Malformed authentication request.")
        if user is None:
            return error(401, _UNAUTHORIZED)
        project = None
        scope = auth.get("scope")
        if scope not in (None, "unscoped"):
            try:
                project = self._project(scope["project"])
            except (KeyError, TypeError, AttributeError):
                return error(400, "Only project scope is supported.")
            if project is None or not self.store.roles(user.id, project.id):
                return error(401, _UNAUTHORIZED)
        now = time.time()
        expires = now + self.settings.token_ttl_s
        if parent is not None:  # a token made from a token expires with its parent
            expires = min(expires, parent.expires_at)
        payload = TokenPayload(
            user_id=user.id,
            project_id=project.id if project else None,
            methods=tuple(methods),
            expires_at=expires,
            audit_id=new_audit_id(),
            parent_audit_id=parent.audit_id if parent else None,
        )
        return self._issued(payload, user, project, now, nocatalog)

    def _issued(
        self, payload: TokenPayload, user: User, project: Project | None, now: float, nocatalog: bool
    ) -> Response:
        token = self.codec.seal(payload)
        body_doc = self._token_doc(payload, user, project, now, nocatalog)
        return Response(201, json.dumps(body_doc).encode(), (("X-Subject-Token", token),))

    def _app_credential_issue(self, ac: dict[str, Any], auth: dict[str, Any], nocatalog: bool) -> Response:
        """An application credential's token: scoped to the credential's project, as Keystone
        does; a scope in the request is refused, as Keystone refuses it."""
        if auth.get("scope") not in (None, "unscoped"):
            return error(401, "Application credentials cannot request a scope.")
        user_id = None
        if "id" not in ac:
            who = ac["user"]
            if "id" in who:
                user_id = who["id"]
            else:
                domain_id = self.store.domain_id(who["domain"].get("id"), who["domain"].get("name"))
                named = self.store.user_by_name(who["name"], domain_id) if domain_id else None
                user_id = named.id if named else None
        cred = self.store.app_credential(ac.get("id"), ac.get("name"), user_id)
        secret = ac.get("secret")
        if cred is None or not isinstance(secret, str) or not check_secret(cred.secret_hash, secret):
            return error(401, _UNAUTHORIZED)
        user = self.store.user_by_id(cred.user_id)
        project = self.store.project_by_id(cred.project_id)
        if user is None or not user.enabled or project is None:
            return error(401, _UNAUTHORIZED)
        now = time.time()
        payload = TokenPayload(
            user_id=user.id,
            project_id=project.id,
            methods=("application_credential",),
            expires_at=now + self.settings.token_ttl_s,
            audit_id=new_audit_id(),
            parent_audit_id=None,
        )
        return self._issued(payload, user, project, now, nocatalog)

    def _password(self, u: dict[str, Any]) -> User | None:
        password = u["password"]
        if "id" in u:
            user = self.store.user_by_id(u["id"])
        else:
            dom = u["domain"]
            domain_id = self.store.domain_id(dom.get("id"), dom.get("name"))
            user = self.store.user_by_name(u["name"], domain_id) if domain_id else None
        if user is None or not user.enabled or not isinstance(password, str):
            return None
        return user if check_password(user, password) else None

    def _token_auth(self, token: str) -> tuple[User | None, TokenPayload | None]:
        payload = self._open(token)
        if payload is None:
            return None, None
        return self.store.user_by_id(payload.user_id), payload

    def _project(self, p: dict[str, Any]) -> Project | None:
        if "id" in p:
            return self.store.project_by_id(p["id"])
        dom = p["domain"]
        domain_id = self.store.domain_id(dom.get("id"), dom.get("name"))
        return self.store.project_by_name(p["name"], domain_id) if domain_id else None

    def _open(self, token: str) -> TokenPayload | None:
        """A valid token's payload: well-formed, not expired, not revoked; else None."""
        try:
            payload = self.codec.open(token)
        except TokenError:
            return None
        if payload.expires_at <= time.time() or self.store.is_revoked(payload.audit_ids):
            return None
        return payload

    def _token_doc(
        self, p: TokenPayload, user: User, project: Project | None, issued: float, nocatalog: bool
    ) -> dict[str, Any]:
        token: dict[str, Any] = {
            "methods": list(p.methods),
            "user": {
                "domain": {"id": user.domain.id, "name": user.domain.name},
                "id": user.id,
                "name": user.name,
                "password_expires_at": None,
            },
            "audit_ids": list(p.audit_ids),
            "expires_at": _iso(p.expires_at),
            "issued_at": _iso(issued),
        }
        if project is not None:
            token["project"] = {
                "domain": {"id": project.domain.id, "name": project.domain.name},
                "id": project.id,
                "name": project.name,
            }
            token["is_domain"] = False
            token["roles"] = [{"id": r.id, "name": r.name} for r in self.store.roles(user.id, project.id)]
            if not nocatalog:
                token["catalog"] = self._catalog
        return {"token": token}

    # -- validate and revoke ------------------------------------------------------------

    def _caller_and_subject(self, headers: dict[str, str]) -> tuple[Response | None, TokenPayload | None]:
        caller = self._open(headers.get("x-auth-token", ""))
        if caller is None:
            return error(401, _UNAUTHORIZED), None
        subject_token = headers.get("x-subject-token")
        if not subject_token:
            return error(404, "Could not find token: (none given)."), None
        subject = self._open(subject_token)
        if subject is None:
            return error(404, "Could not find token."), None
        if caller.user_id != subject.user_id and not self._is_admin(caller):
            return error(403, "You are not authorized to perform the requested action: identity:validate_token."), None
        return None, subject

    def _is_admin(self, p: TokenPayload) -> bool:
        return p.project_id is not None and any(r.name == "admin" for r in self.store.roles(p.user_id, p.project_id))

    def validate(self, headers: dict[str, str], nocatalog: bool) -> Response:
        failure, subject = self._caller_and_subject(headers)
        if failure is not None or subject is None:
            return failure or error(404, "Could not find token.")
        user = self.store.user_by_id(subject.user_id)
        if user is None or not user.enabled:
            return error(404, "Could not find token.")
        project = self.store.project_by_id(subject.project_id) if subject.project_id else None
        issued = subject.expires_at - self.settings.token_ttl_s
        doc = self._token_doc(subject, user, project, issued, nocatalog)
        return Response(200, json.dumps(doc).encode(), (("X-Subject-Token", headers["x-subject-token"]),))

    def revoke(self, headers: dict[str, str]) -> Response:
        failure, subject = self._caller_and_subject(headers)
        if failure is not None or subject is None:
            return failure or error(404, "Could not find token.")
        self.store.revoke(subject.audit_id, subject.expires_at)
        return Response(204)
