"""``db``: connection strings are redacted (malformed ones too) wherever they are shown."""

from __future__ import annotations

import pytest

from graphile_worker_cli import db
from graphile_worker_cli.errors import BadInputError
from tests.helpers.database import SECRETS


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgres://app:Sup3r@db:5432/jobs", "postgres://app:***@db:5432/jobs"),
        # un-encoded characters that end a URL's user info early: the password is hidden whole
        ("postgres://app:Sup3r#Secr3t@db:5432/jobs", "postgres://app:***@db:5432/jobs"),
        ("postgres://app:Sup3r?Secr3t@db:5432/jobs", "postgres://app:***@db:5432/jobs"),
        ("postgres://app:Sup3r/Secr3t@db:5432/jobs", "postgres://app:***@db:5432/jobs"),
        ("postgres://app:Sup3r@Secr3t#x@db/jobs", "postgres://app:***@db/jobs"),
        ("postgresql://app:Sup3r:Secr3t@db/jobs", "postgresql://app:***@db/jobs"),
        ("postgres://app:Sup3r@[::1/jobs", "postgres://app:***@[::1/jobs"),  # bad IPv6
        ("app:Sup3r@db/jobs", "app:***@db/jobs"),  # no scheme
        ("postgres://app:@db/jobs", "postgres://app:***@db/jobs"),
        # a password given as a parameter, in a URL or a key=value string
        ("postgres://db/jobs?password=Secr3t&sslmode=require",
         "postgres://db/jobs?password=***&sslmode=require"),
        ("host=db password='Sup3r Secr3t' dbname=jobs", "host=db password=*** dbname=jobs"),
        # nothing to hide: left as it is
        ("postgres://app@db:5432/jobs", "postgres://app@db:5432/jobs"),
        ("postgres://db/jobs?application_name=ops@host",
         "postgres://db/jobs?application_name=ops@host"),
    ],
)
def test_redact_url_hides_the_password_of_well_formed_and_malformed_urls(
    url: str, shown: str
) -> None:
    assert db.redact_url(url) == shown


def test_scrub_password_removes_pieces_of_a_misread_password_from_a_message() -> None:
    url = "postgres://app:Sup3r#Secr3t@db:5432/jobs"
    message = "Port could not be cast to integer value as 'Sup3r'"
    assert db.scrub_password(message, url) == "Port could not be cast to integer value as '***'"
    encoded = "postgres://app:Sup3r%40Secr3t@db/jobs"  # the driver quotes the decoded form
    assert db.scrub_password('user "x" has password Sup3r@Secr3t', encoded) == (
        'user "x" has password ***'
    )
    # pieces are matched as whole words only: "Sup3r" does not eat into "Sup3rb"
    assert db.scrub_password("Sup3rb", url) == "Sup3rb"
    assert db.scrub_password("no secret here", "postgres://app@db/jobs") == "no secret here"
    assert db.scrub_password("a / b", "postgres://app:/@db/jobs") == "a *** b"


@pytest.mark.parametrize("password", ["Sup3r#Secr3t", "Sup3r?Secr3t", "Sup3r/Secr3t"])
async def test_a_malformed_url_is_refused_without_showing_its_password(password: str) -> None:
    with pytest.raises(BadInputError) as caught:
        await db.connect(f"postgres://app:{password}@127.0.0.1:5432/jobs")
    message = caught.value.message
    assert message.startswith("invalid connection string 'postgres://app:***@127.0.0.1:5432/jobs'")
    assert "percent-encode" in message
    for secret in SECRETS:
        assert secret not in message
