"""Connection settings shared with Node services: node-postgres's URL parameters and
libpq's ``PG*`` environment variables, turned into what asyncpg takes.

URL parameters, as the reference's driver (node-postgres 8) reads them:

- ``ssl=1`` / ``ssl=true``: TLS, the server's certificate checked against the system's
  certificate authorities (or ``sslrootcert``) and its host name (asyncpg ``ssl=True``, or a
  context when ``sslrootcert``, ``sslcert`` or ``sslkey`` are given);
- ``ssl=0``: no TLS; ``ssl=no-verify`` or ``sslmode=no-verify``: TLS without checking the
  certificate;
- ``sslmode`` wins over ``ssl`` when both are given (as in node-postgres), and means what it
  means to libpq and psql (asyncpg reads it so): ``disable``, ``allow``, ``prefer``,
  ``require``, ``verify-ca``, ``verify-full``, with ``sslrootcert``, ``sslcert``,
  ``sslkey``. node-postgres treats ``prefer``, ``require`` and ``verify-ca`` as
  ``verify-full``: gw accepts every server the Node service accepts with such a URL;
- ``uselibpqcompat`` is dropped (gw reads ``sslmode`` as libpq does anyway).

Without a URL, libpq's variables name the server (``PGHOST``, ``PGPORT``, ``PGDATABASE``,
``PGUSER``, ``PGPASSWORD``, ``PGSSLMODE``...): the URL is then ``FROM_ENVIRONMENT``, an empty
``postgresql://`` that asyncpg completes from them, as libpq does.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import (
    SplitResult,
    parse_qsl,
    quote,
    unquote,
    urlencode,
    urlsplit,
    urlunsplit,
)

from graphile_worker_cli.errors import BadInputError

LIBPQ_VARIABLES = ("PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSSLMODE")
"""Any of these set (and no URL) means: connect where they say, not to the embedded server."""
FROM_ENVIRONMENT = "postgresql://"
"""The URL that means "everything from the PG* variables and libpq's defaults"."""

_CERTIFICATE_FILES = ("sslrootcert", "sslcert", "sslkey")
_NODE_ONLY = ("ssl", "uselibpqcompat")

SSLArgument = bool | ssl.SSLContext | None


@dataclass(frozen=True)
class ConnectArguments:
    """What to pass to asyncpg for a URL: the DSN, and its ``ssl`` argument (None: let
    asyncpg read ``sslmode`` from the DSN or ``PGSSLMODE``)."""

    dsn: str
    ssl: SSLArgument = None


def libpq_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``LIBPQ_VARIABLES`` that are set (and not empty)."""
    environ = os.environ if environ is None else environ
    return {name: environ[name] for name in LIBPQ_VARIABLES if environ.get(name)}


def url_from_environment(environ: Mapping[str, str] | None = None) -> str | None:
    """``FROM_ENVIRONMENT`` when a PG* variable is set, else None."""
    return FROM_ENVIRONMENT if libpq_environment(environ) else None


def describe(url: str, environ: Mapping[str, str] | None = None) -> str:
    """How to name the server of ``FROM_ENVIRONMENT`` in messages (the password hidden)."""
    if url != FROM_ENVIRONMENT:
        return url
    shown = [
        f"{name}={'***' if name == 'PGPASSWORD' else value}"
        for name, value in libpq_environment(environ).items()
    ]
    return "the server of the PG* environment variables (" + " ".join(shown) + ")"


_LIBPQ_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def connect_arguments(url: str, environ: Mapping[str, str] | None = None) -> ConnectArguments:
    """The DSN and ``ssl`` argument for ``url``, node-postgres's parameters understood."""
    environ = os.environ if environ is None else environ
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    params = dict(query)  # the last value of a repeated name wins, as in node-postgres
    sslmode = params.get("sslmode")
    if sslmode is None and "ssl" not in params:
        # PGSSLMODE then decides; asyncpg reads it, except node-postgres's no-verify.
        no_verify = environ.get("PGSSLMODE") == "no-verify"
        argument: SSLArgument = _context(params, verify=False) if no_verify else None
        return _arguments(url, parts, query, drop=_NODE_ONLY, ssl_argument=argument)
    if sslmode is not None and sslmode != "no-verify":
        if sslmode not in _LIBPQ_SSLMODES:
            raise BadInputError(
                f"invalid connection string {redact_url(url)!r}: sslmode={sslmode} is not one "
                f"of {'|'.join(_LIBPQ_SSLMODES)}|no-verify"
            )
        return _arguments(url, parts, query, drop=_NODE_ONLY, ssl_argument=None)
    if sslmode == "no-verify":
        argument = _context(params, verify=False)
    else:
        argument = _from_ssl_parameter(url, params)
    dropped = (*_NODE_ONLY, "sslmode", *_CERTIFICATE_FILES)  # all in the argument now
    return _arguments(url, parts, query, drop=dropped, ssl_argument=argument)


def _from_ssl_parameter(url: str, params: dict[str, str]) -> SSLArgument:
    value = params["ssl"]
    if value in ("1", "true"):
        if any(params.get(name) for name in _CERTIFICATE_FILES):
            return _context(params, verify=True)
        return True
    if value == "0":
        return False
    if value == "no-verify":
        return _context(params, verify=False)
    raise BadInputError(
        f"invalid connection string {redact_url(url)!r}: ssl={value} is not one of "
        "node-postgres's values (to it, anything but ssl=0 turns TLS on); expected ssl=1, "
        "ssl=true, ssl=0 or ssl=no-verify, or sslmode=disable|prefer|require|verify-ca|"
        "verify-full|no-verify"
    )


def _context(params: dict[str, str], *, verify: bool) -> ssl.SSLContext:
    """A TLS context: verifying the server (its certificate authority from ``sslrootcert``,
    else the system's, and its host name), or not; with a client certificate if given."""
    context = ssl.create_default_context(cafile=params.get("sslrootcert") or None)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if params.get("sslcert"):
        context.load_cert_chain(params["sslcert"], params.get("sslkey") or None)
    return context


def _arguments(
    url: str, parts: SplitResult, query: list[tuple[str, str]], *, drop: tuple[str, ...],
    ssl_argument: SSLArgument,
) -> ConnectArguments:
    kept = [(name, value) for name, value in query if name not in drop]
    if len(kept) == len(query):
        return ConnectArguments(url, ssl_argument)
    text = urlencode(kept, quote_via=quote)
    return ConnectArguments(urlunsplit(parts._replace(query=text)), ssl_argument)


# --- passwords kept out of messages and logs ------------------------------------------


_PASSWORD_PARAM = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^&\s]*)", re.IGNORECASE)
_URL_DELIMITERS = re.compile(r"[/?#@:]")


def password_span(url: str) -> tuple[int, int] | None:
    """Where the password in ``url`` is: from the first ``:`` after ``scheme://`` to the
    last ``@``. Read this loosely (not as a URL parser, which ends the user info at the
    first ``/``, ``?`` or ``#``), a password with those characters un-encoded is still
    found whole; a URL that also has an ``@`` further on loses more than its password."""
    scheme_end = url.find("://")
    start = scheme_end + 3 if scheme_end != -1 else 0
    end = url.rfind("@")
    if end < start:
        return None
    colon = url.find(":", start, end)
    return None if colon == -1 else (colon + 1, end)


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``, safe to print or log (a malformed
    URL, such as one with an un-encoded ``#`` in its password, included)."""
    span = password_span(url)
    if span is not None:
        url = url[: span[0]] + "***" + url[span[1]:]
    return _PASSWORD_PARAM.sub(r"\1***", url)


def scrub_password(text: str, url: str) -> str:
    """``text`` (an error message about ``url``) without the URL's password: a malformed
    URL's password may have been read as a host, port or database name, which messages
    quote, so each piece of it between URL delimiters is replaced by ``***`` too."""
    span = password_span(url)
    if span is None or span[0] == span[1]:
        return text
    hidden = url[span[0]:span[1]]
    whole = {hidden, unquote(hidden)}
    pieces = {piece for word in whole for piece in _URL_DELIMITERS.split(word) if piece}
    for secret in sorted(whole, key=len, reverse=True):
        text = text.replace(secret, "***")
    if not pieces:
        return text
    alternatives = "|".join(re.escape(piece) for piece in sorted(pieces, key=len, reverse=True))
    return re.sub(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])", "***", text)
