"""SQL of the test helpers (``testing.databases``): throwaway databases and schemas.

``create database`` takes no parameters and names a database, not a schema, so the two
database statements return the text to run, quoted by the server (``format('%I')``)."""

from __future__ import annotations

from graphile_worker_cli.queries import Query

# $1 database name, $2 template database (null: the server's default). Returns the
# ``create database`` statement to execute.
CREATE_DATABASE_STATEMENT = Query(
    "select format('create database %I', $1::text)"
    " || case when $2::text is null then '' else format(' template %I', $2::text) end",
    "CREATE_DATABASE_STATEMENT",
)

# $1 database name. Returns the ``drop database`` statement to execute.
DROP_DATABASE_STATEMENT = Query(
    "select format('drop database if exists %I with (force)', $1::text)",
    "DROP_DATABASE_STATEMENT",
)

DROP_SCHEMA = Query("drop schema if exists {s} cascade", "DROP_SCHEMA")
