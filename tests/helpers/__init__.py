"""Helpers shared by the test tiers; test modules import them from here, never from each other.

- ``database``: throwaway databases on the test server, and small queries tests share
- ``paths``: the repository root and the ``gw`` executable
- ``waiting``: polling a condition with a deadline
- ``worker``: an in-process worker's options and jobs added with plain SQL
- ``context``: ``Job`` and ``WorkerContext`` values built without a database, a task run on them
- ``task_programs``: executable task files (shell scripts) written for a test
- ``gw_process``: ``gw`` as a subprocess (commands, environment, task files, output)
- ``metrics``: free ports and Prometheus text
- ``asgi_server``: an ASGI app served by uvicorn in the test's event loop
- ``recovery``: worker registry rows and locked jobs made by hand
- ``faults``: ``gw run`` processes that record every run, killed and stopped on demand
- ``catalog``: a schema's catalog as comparable values
- ``migrations``: a schema name that needs quoting, migration files written by hand
- ``connection_kinds``: each kind of caller connection (asyncpg, psycopg, SQLAlchemy...)
- ``django_project``: the test Django project run as ``manage.py`` processes
- ``doc_recipes``: the code blocks of the docs that the tests run or compare
- ``outside_world``: the unit tier's guard against connections and processes
- ``reference``: the Node.js reference worker (graphile-worker 0.18.0) pinned in tests/interop
- ``side_by_side``: gw and the reference on two schemas of one database, their job rows
- ``tls_cluster``: a throwaway PostgreSQL cluster that requires TLS, and gw's connections to it
"""
