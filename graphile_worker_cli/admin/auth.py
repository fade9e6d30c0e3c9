"""Who may use the dashboard, and which writes are genuine.

- No auth configured: only loopback clients, addressing the server by a loopback name, are
  served (the Host check stops DNS-rebinding pages from reading the API).
- Auth configured (a bearer token and/or HTTP basic credentials): every request must carry
  them. A browser can log in with the token once via ``/?token=...``, which sets a cookie.
- Writes: refused in read-only mode; otherwise they need the CSRF token (a cookie set by
  the page, echoed in the ``X-CSRF-Token`` header) and must not come from another origin.
  Requests that carry the bearer token in their ``Authorization`` header are exempt from
  the CSRF check: browsers never attach that header on their own.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from graphile_worker_cli.errors import BadInputError

TOKEN_COOKIE = "gw_admin_token"
CSRF_COOKIE = "gw_admin_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost."})
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True, slots=True)
class AdminAuth:
    """Credentials the dashboard asks for; neither set means loopback-only access."""

    token: str | None = None
    basic_user: str | None = None
    basic_password: str | None = None

    def __post_init__(self) -> None:
        if self.token is not None and len(self.token) < MIN_TOKEN_LENGTH:
            raise BadInputError(
                f"admin token too short ({len(self.token)} characters): expected at least "
                f"{MIN_TOKEN_LENGTH}, such as the output of "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        if (self.basic_user is None) != (self.basic_password is None):
            raise BadInputError("basic auth needs both a user and a password")

    @classmethod
    def from_options(cls, token: str | None, basic: str | None) -> AdminAuth:
        """From ``--token`` and ``--basic-auth user:pass`` (BadInputError when malformed)."""
        if basic is None:
            return cls(token=token or None)
        user, sep, password = basic.partition(":")
        if not sep or not user or not password:
            raise BadInputError(
                "invalid --basic-auth value: expected user:password with both parts non-empty"
            )
        return cls(token=token or None, basic_user=user, basic_password=password)

    @property
    def configured(self) -> bool:
        return self.token is not None or self.basic_user is not None

    def describe(self) -> str:
        kinds = [name for name, on in (("token", self.token), ("basic", self.basic_user)) if on]
        return " and ".join(kinds) if kinds else "none (loopback only)"


def is_loopback_host(host: str | None) -> bool:
    """Whether an address or host name is this machine's loopback."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


def relative_path(scope: Scope) -> str:
    """The request path below where the app is mounted."""
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    return path or "/"


def cookie_path(scope: Scope) -> str:
    root: str = scope.get("root_path", "")
    return root + "/" if root else "/"


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


class AdminGuard:
    """ASGI middleware in front of the dashboard: authentication, read-only, CSRF."""

    def __init__(self, app: ASGIApp, *, auth: AdminAuth, read_only: bool) -> None:
        self.app = app
        self.auth = auth
        self.read_only = read_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        response = self.check(request)
        if response is not None:
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def check(self, request: Request) -> Response | None:
        """A refusal, or None when the request may go on."""
        path = relative_path(request.scope)
        api = path.startswith("/api")
        bearer = False
        if self.auth.configured:
            login = self._token_login(request, path)
            if login is not None:
                return login
            method = self._authenticated(request)
            if method is None:
                return self._unauthorized(api)
            bearer = method == "bearer"
        else:
            client = request.client.host if request.client else None
            if not is_loopback_host(client) or not is_loopback_host(request.url.hostname):
                return _refuse(
                    403,
                    "authentication required: without --token or --basic-auth the dashboard "
                    "only serves loopback clients at a loopback address",
                    api,
                )
        if request.method in SAFE_METHODS:
            return None
        if self.read_only:
            return _refuse(403, "the dashboard is read-only: writes are disabled", api)
        if bearer:
            return None
        return self._csrf(request, api)

    def _authenticated(self, request: Request) -> str | None:
        """How the request proved who it is ("bearer", "basic", "cookie"), or None."""
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and _same(value.strip(), self.auth.token):
            return "bearer"
        if scheme == "basic" and self.auth.basic_user is not None:
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            user, _, password = decoded.partition(":")
            # both compared, so the time taken does not tell whether the user was right
            user_ok = _same(user, self.auth.basic_user)
            password_ok = _same(password, self.auth.basic_password)
            if user_ok and password_ok:
                return "basic"
        if _same(request.cookies.get(TOKEN_COOKIE), self.auth.token):
            return "cookie"
        return None

    def _token_login(self, request: Request, path: str) -> Response | None:
        """``GET /?token=...``: remember a good token in a cookie, then drop it from the URL."""
        offered = request.query_params.get("token")
        if offered is None or request.method != "GET" or path.startswith("/api"):
            return None
        if not _same(offered, self.auth.token):
            return _refuse(401, "wrong token", api=False)
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        response = RedirectResponse(str(request.url.replace(query=urlencode(rest))), 303)
        response.set_cookie(
            TOKEN_COOKIE, offered, httponly=True, samesite="strict",
            path=cookie_path(request.scope), secure=request.url.scheme == "https",
        )
        return response

    def _unauthorized(self, api: bool) -> Response:
        response = _refuse(401, "authentication required", api)
        if self.auth.basic_user is not None:
            response.headers["WWW-Authenticate"] = 'Basic realm="gw admin", charset="UTF-8"'
        else:
            response.headers["WWW-Authenticate"] = 'Bearer realm="gw admin"'
        return response

    def _csrf(self, request: Request, api: bool) -> Response | None:
        origin = request.headers.get("origin")
        if origin is not None and not _same_origin(origin, request):
            return _refuse(403, f"cross-origin write refused (Origin {origin})", api)
        fetch_site = request.headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site not in ("same-origin", "none"):
            return _refuse(403, f"cross-site write refused (Sec-Fetch-Site {fetch_site})", api)
        if not _same(request.headers.get(CSRF_HEADER), request.cookies.get(CSRF_COOKIE)):
            return _refuse(
                403,
                "missing or wrong CSRF token: GET /api/session, then send its csrf_token in "
                "the X-CSRF-Token header with the cookie it sets",
                api,
            )
        return None


def _same_origin(origin: str, request: Request) -> bool:
    parts = urlsplit(origin)
    return (parts.scheme, parts.netloc.lower()) == (
        request.url.scheme,
        request.url.netloc.lower(),
    )


def _refuse(status: int, message: str, api: bool) -> Response:
    if api:
        return JSONResponse({"error": message}, status_code=status)
    return PlainTextResponse(message + "\n", status_code=status)
