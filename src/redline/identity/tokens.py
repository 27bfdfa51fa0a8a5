"""Fernet tokens: what a token carries, how it is sealed, and how it is opened.

The payload is a fixed binary layout (Keystone uses msgpack; the idea is the same):
version, method bits, user id, project id (or zeros), expiry, audit id and the parent's
audit id (for tokens made from tokens). Fernet adds the timestamp, AES-CBC and HMAC.
Keystone strips the base64 padding from its tokens; so do we.
"""

from __future__ import annotations

import base64
import os
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

VERSION = 1
METHODS = ("password", "token", "application_credential")
_LAYOUT = struct.Struct(">BB16s16sd16s16s")  # version, methods, user, project, expires, audit, parent audit
_NO_ID = b"\0" * 16


@dataclass(frozen=True)
class TokenPayload:
    user_id: str  # 32 hex characters, like Keystone's ids
    project_id: str | None
    methods: tuple[str, ...]
    expires_at: float  # UNIX time
    audit_id: str  # 22 url-safe base64 characters, like Keystone's
    parent_audit_id: str | None = None

    @property
    def audit_ids(self) -> tuple[str, ...]:
        return (self.audit_id,) + ((self.parent_audit_id,) if self.parent_audit_id else ())


def new_audit_id() -> str:
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


def _audit_bytes(audit: str | None) -> bytes:
    if not audit:
        return _NO_ID
    return base64.urlsafe_b64decode(audit + "==")


def _audit_text(raw: bytes) -> str | None:
    if raw == _NO_ID:
        return None
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class TokenError(Exception):
    """Not a token this service issued (bad format, bad signature)."""


class TokenCodec:
    """Seal and open tokens with the keys of one key repository (the first key signs)."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("a token codec needs at least one key")
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def seal(self, p: TokenPayload) -> str:
        bits = sum(1 << METHODS.index(m) for m in p.methods)
        raw = _LAYOUT.pack(
            VERSION,
            bits,
            uuid.UUID(hex=p.user_id).bytes,
            uuid.UUID(hex=p.project_id).bytes if p.project_id else _NO_ID,
            p.expires_at,
            _audit_bytes(p.audit_id),
            _audit_bytes(p.parent_audit_id),
        )
        return self._fernet.encrypt(raw).rstrip(b"=").decode()

    def open(self, token: str) -> TokenPayload:
        if not token or len(token) > 512:
            raise TokenError("malformed token")
        padded = token + "=" * (-len(token) % 4)
        try:
            raw = self._fernet.decrypt(padded.encode("ascii"))
            version, bits, user, project, expires, audit, parent = _LAYOUT.unpack(raw)
        except (InvalidToken, UnicodeEncodeError, struct.error, ValueError) as exc:
            raise TokenError("malformed token") from exc
        if version != VERSION:
            raise TokenError("unknown token version")
        return TokenPayload(
            user_id=uuid.UUID(bytes=user).hex,
            project_id=None if project == _NO_ID else uuid.UUID(bytes=project).hex,
            methods=tuple(m for i, m in enumerate(METHODS) if bits & (1 << i)),
            expires_at=expires,
            audit_id=_audit_text(audit) or "",
            parent_audit_id=_audit_text(parent),
        )


def load_or_create_keys(key_dir: Path) -> list[bytes]:
    """The key repository: files named 0, 1, ...; the highest number signs (Keystone's order)."""
    key_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(key_dir, 0o700)
    files = sorted((p for p in key_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name), reverse=True)
    if not files:
        # Workers start together: the key is written whole under a private name, then
        # linked into place (link fails if another worker got there first), so no
        # worker ever reads a half-written key.
        path = key_dir / "0"
        tmp = key_dir / f".0.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(Fernet.generate_key())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        files = [path]
    return [p.read_bytes().strip() for p in files]
