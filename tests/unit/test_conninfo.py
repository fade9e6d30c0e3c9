"""node-postgres's URL parameters and libpq's PG* variables: how they become asyncpg's
arguments (tests/integration/test_conninfo.py: real connections with them;
tests/acceptance/test_conninfo.py: which commands start the embedded server, and say so)."""

from __future__ import annotations

import ssl

import pytest

from graphile_worker_cli import conninfo
from graphile_worker_cli.errors import BadInputError
from tests.helpers.paths import FIXTURES

URL = "postgres://app:secret@db.example:5433/app"


def test_ssl_1_and_true_mean_tls_checked_against_the_system_authorities() -> None:
    for value in ("1", "true"):
        arguments = conninfo.connect_arguments(f"{URL}?ssl={value}&application_name=x", {})
        assert arguments == conninfo.ConnectArguments(f"{URL}?application_name=x", True)


def test_ssl_0_means_no_tls() -> None:
    assert conninfo.connect_arguments(f"{URL}?ssl=0", {}) == conninfo.ConnectArguments(URL, False)


@pytest.mark.parametrize("query", ["ssl=no-verify", "sslmode=no-verify", "ssl=1&sslmode=no-verify"])
def test_no_verify_is_tls_without_checking_the_certificate(query: str) -> None:
    arguments = conninfo.connect_arguments(f"{URL}?{query}", {})
    assert arguments.dsn == URL
    context = arguments.ssl
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname


def test_certificate_files_with_ssl_1_make_a_checking_context() -> None:
    ca = FIXTURES / "tls" / "ca.crt"
    arguments = conninfo.connect_arguments(f"{URL}?ssl=true&sslrootcert={ca}&x=1", {})
    assert arguments.dsn == f"{URL}?x=1"
    context = arguments.ssl
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    subjects = [cert["subject"] for cert in context.get_ca_certs()]
    assert subjects == [((("commonName", "gw test CA"),),)]


@pytest.mark.parametrize(
    ("query", "dsn_query"),
    [
        ("sslmode=require", "sslmode=require"),
        ("ssl=1&sslmode=disable", "sslmode=disable"),  # sslmode wins, as in node-postgres
        ("sslmode=verify-full&sslrootcert=/ca.pem&uselibpqcompat=true",
         "sslmode=verify-full&sslrootcert=%2Fca.pem"),
    ],
)
def test_sslmode_is_left_to_asyncpg_which_reads_it_as_libpq(query: str, dsn_query: str) -> None:
    assert conninfo.connect_arguments(f"{URL}?{query}", {}) == conninfo.ConnectArguments(
        f"{URL}?{dsn_query}", None
    )


def test_pgsslmode_no_verify_is_understood_too() -> None:
    arguments = conninfo.connect_arguments(URL, {"PGSSLMODE": "no-verify"})
    assert arguments.dsn == URL and isinstance(arguments.ssl, ssl.SSLContext)
    assert conninfo.connect_arguments(URL, {"PGSSLMODE": "require"}).ssl is None


@pytest.mark.parametrize("value", ["false", "yes", ""])
def test_other_ssl_values_are_refused_in_one_line(value: str) -> None:
    with pytest.raises(BadInputError) as raised:
        conninfo.connect_arguments(f"{URL}?ssl={value}", {})
    assert raised.value.message == (
        f"invalid connection string 'postgres://app:***@db.example:5433/app?ssl={value}': "
        f"ssl={value} is not one of node-postgres's values (to it, anything but ssl=0 turns "
        "TLS on); expected ssl=1, ssl=true, ssl=0 or ssl=no-verify, or "
        "sslmode=disable|prefer|require|verify-ca|verify-full|no-verify"
    )


def test_the_environment_names_the_server_when_there_is_no_url() -> None:
    assert conninfo.url_from_environment({}) is None
    assert conninfo.url_from_environment({"PGHOST": ""}) is None
    environ = {"PGHOST": "db", "PGPASSWORD": "hunter2", "HOME": "/root"}
    assert conninfo.url_from_environment(environ) == conninfo.FROM_ENVIRONMENT
    assert conninfo.describe(conninfo.FROM_ENVIRONMENT, environ) == (
        "the server of the PG* environment variables (PGHOST=db PGPASSWORD=***)"
    )
