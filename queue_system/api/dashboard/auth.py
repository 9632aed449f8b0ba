"""Dashboard sign-in: an API key becomes a session in Redis; a signed, HTTP-only cookie names it.

    Keys.session(id)   hash   role, csrf, created_at; expires SESSION_TTL_S after its last use
                              (storage/sessions.py; this module knows it as service/access.py's
                              `SessionStore`, given at the app's start)

The cookie is `{id}.{signature}`: the id is 32 random bytes, the signature an HMAC over it with a
secret derived from the configured keys (so every API process agrees, and changing the keys signs
every session out). The role lives server-side only. Every form carries a CSRF token: the session's
own, or, before sign-in and with authentication off, a double-submit cookie. SameSite=Lax keeps the
cookies off cross-site POSTs as well.

Sign-in shares the API's lockout (`ApiGuard`, api/auth.py): a wrong key counts against the client
address like a wrong API key, and a locked address is refused (429) before its key is checked.
Failed sign-ins are logged with the address, never the key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.datastructures import Cookie
from litestar.exceptions import PermissionDeniedException
from loguru import logger

from queue_system.api.auth import ApiGuard
from queue_system.api.keys import KeyRing, Role
from queue_system.service.access import SessionStore

SESSION_COOKIE = "qs_dashboard"
CSRF_COOKIE = "qs_dashboard_csrf"
CSRF_FIELD = "csrf"
SESSION_TTL_S = 8 * 3600
COOKIE_PATH = "/dashboard"


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who looks at a page: their role, the CSRF token their forms carry, whether auth is on."""

    role: Role
    csrf: str
    auth_enabled: bool
    session_id: str | None = None

    @property
    def can_write(self) -> bool:
        return self.role is Role.WRITE


class Sessions:
    """Sign-in, the viewer of a request, sign-out. `store` is set by the app's lifespan (`start`:
    it needs Redis)."""

    def __init__(self, keyring: KeyRing | None, guard: ApiGuard | None = None) -> None:
        self.keyring = keyring if keyring is not None and keyring.enabled else None
        self.guard = guard  # the lockout of addresses presenting wrong keys; None: none
        self._store: SessionStore | None = None
        material = b"".join(digest for digest, _ in self.keyring.entries) if self.keyring else b""
        self._secret = hashlib.sha256(b"queue_system dashboard session\0" + material).digest()

    @property
    def enabled(self) -> bool:
        return self.keyring is not None

    def start(self, store: SessionStore) -> None:
        self._store = store

    @property
    def store(self) -> SessionStore:
        if self._store is None:
            raise RuntimeError("Sessions.start was not called (the app's lifespan calls it)")
        return self._store

    def _sign(self, session_id: str) -> str:
        return hmac.new(self._secret, session_id.encode(), hashlib.sha256).hexdigest()

    def _session_id(self, cookie: str | None) -> str | None:
        if not cookie or cookie.count(".") != 1:
            return None
        session_id, signature = cookie.split(".")
        return session_id if hmac.compare_digest(signature, self._sign(session_id)) else None

    async def sign_in(self, presented: str, *, secure: bool = False) -> tuple[Role, Cookie] | None:
        """-> (role, session cookie) for a known key; None otherwise. `secure`: the page came over
        HTTPS (the cookie is then never sent over plain HTTP)."""
        if self.keyring is None:
            return None
        role = self.keyring.authorize(presented.strip())
        if role is None:
            return None
        session_id = secrets.token_urlsafe(32)
        now_ms = int(time.time() * 1000)
        await self.store.open(
            session_id, role.value, secrets.token_urlsafe(32), now_ms=now_ms, ttl_s=SESSION_TTL_S
        )
        return role, session_cookie(f"{session_id}.{self._sign(session_id)}", SESSION_TTL_S, secure)

    async def throttled_sign_in(
        self, request: Request[Any, Any, Any], presented: str
    ) -> tuple[Role, Cookie] | None:
        """`sign_in` behind the lockout: AccessRefused (429) for a locked address, whatever its
        key; a wrong key is logged (without it) and counted."""
        guard = self.guard
        if guard is None or self.keyring is None:
            return await self.sign_in(presented, secure=over_https(request))
        address = guard.address(request.scope)
        await guard.check_lock(address, "dashboard sign-in")
        signed = await self.sign_in(presented, secure=over_https(request))
        if signed is None:
            logger.warning("dashboard sign-in failed from {}", address)
            await guard.failed(address, "dashboard sign-in")
        return signed

    async def viewer(self, request: Request[Any, Any, Any]) -> Viewer | None:
        """The signed-in viewer (sliding expiry), or None: sign-in needed."""
        if self.keyring is None:
            return Viewer(Role.WRITE, request.cookies.get(CSRF_COOKIE, ""), auth_enabled=False)
        session_id = self._session_id(request.cookies.get(SESSION_COOKIE))
        if session_id is None:
            return None
        found = await self.store.touch(session_id, SESSION_TTL_S)
        if found is None:
            return None
        role, csrf = found
        return Viewer(Role(role), csrf, auth_enabled=True, session_id=session_id)

    async def sign_out(self, viewer: Viewer) -> None:
        if viewer.session_id is not None:
            await self.store.close(viewer.session_id)


def session_cookie(value: str, max_age: int, secure: bool = False) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value=value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=secure,
    )


def over_https(request: Request[Any, Any, Any]) -> bool:
    """HTTPS at the client: directly, or at a TLS-terminating proxy that says so."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def csrf_cookie(value: str) -> Cookie:
    return Cookie(key=CSRF_COOKIE, value=value, path=COOKIE_PATH, httponly=True, samesite="lax")


def new_csrf() -> str:
    return secrets.token_urlsafe(32)


def check_csrf(expected: str, presented: str | None) -> None:
    """A POST without the right token is refused (403), whatever else it carries."""
    if not expected or not presented or not hmac.compare_digest(expected, presented):
        raise PermissionDeniedException("missing or wrong CSRF token: reload the page and try again")


def require_write(viewer: Viewer) -> None:
    if not viewer.can_write:
        raise PermissionDeniedException("this key is read-only")
