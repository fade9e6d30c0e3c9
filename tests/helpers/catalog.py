"""Dump a schema's catalog into plain Python values that compare with ``==``.

Used to prove that gw's migrations leave exactly the schema the reference leaves. The
schema's own name is replaced by ``<schema>`` everywhere, so two schemas with different
names (``graphile_worker`` and ``odd "name"``) compare equal when they hold the same
objects. Objects whose name starts with ``_gw_`` belong to gw alone and are left out unless
``include_gw`` is set. Function bodies are not compared (gw writes its own), everything
else about a function is.
"""

from __future__ import annotations

from typing import Any

import asyncpg

SCHEMA_TOKEN = "<schema>"

_RELATIONS = """
select c.relname, c.relkind::text, c.relrowsecurity, c.relforcerowsecurity,
       c.relpersistence::text
from pg_class c
where c.relnamespace = $1::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
order by c.relname
"""

_COLUMNS = """
select c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) as type,
       a.attnotnull, a.attidentity::text, a.attgenerated::text,
       pg_get_expr(d.adbin, d.adrelid) as default_expr,
       coalesce(coll.collname, '') as collation
from pg_attribute a
join pg_class c on c.oid = a.attrelid
left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
left join pg_collation coll on coll.oid = a.attcollation and a.attcollation <> 100
where c.relnamespace = $1::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'c', 'f')
  and a.attnum > 0 and not a.attisdropped
order by c.relname, a.attnum
"""

_CONSTRAINTS = """
select c.relname, con.conname, con.contype::text, pg_get_constraintdef(con.oid) as def,
       con.condeferrable, con.condeferred
from pg_constraint con
join pg_class c on c.oid = con.conrelid
where c.relnamespace = $1::regnamespace
order by c.relname, con.conname
"""

_INDEXES = """
select t.relname as table_name, i.relname as index_name, pg_get_indexdef(i.oid) as def
from pg_index x
join pg_class i on i.oid = x.indexrelid
join pg_class t on t.oid = x.indrelid
where t.relnamespace = $1::regnamespace
order by t.relname, i.relname
"""

_TRIGGERS = """
select c.relname, t.tgname, pg_get_triggerdef(t.oid) as def
from pg_trigger t join pg_class c on c.oid = t.tgrelid
where c.relnamespace = $1::regnamespace and not t.tgisinternal
order by c.relname, t.tgname
"""

_POLICIES = """
select tablename, policyname, cmd, qual, with_check
from pg_policies where schemaname = $1
order by tablename, policyname
"""

_SEQUENCES = """
select c.relname, format_type(s.seqtypid, null) as type, s.seqstart, s.seqincrement,
       s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
       (select t.relname || '.' || a.attname || ':' || d.deptype::text
          from pg_depend d
          join pg_class t on t.oid = d.refobjid
          join pg_attribute a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid
         where d.classid = 'pg_class'::regclass and d.objid = c.oid
           and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i')) as owned_by
from pg_sequence s join pg_class c on c.oid = s.seqrelid
where c.relnamespace = $1::regnamespace
order by c.relname
"""

_VIEWS = """
select c.relname, pg_get_viewdef(c.oid, true) as def
from pg_class c
where c.relnamespace = $1::regnamespace and c.relkind in ('v', 'm')
order by c.relname
"""

_TYPES = """
select t.typname, t.typtype::text
from pg_type t
where t.typnamespace = $1::regnamespace and t.typcategory <> 'A'
order by t.typname
"""

_FUNCTIONS = """
select p.proname, pg_get_function_identity_arguments(p.oid) as identity_args,
       pg_get_function_arguments(p.oid) as args, pg_get_function_result(p.oid) as result,
       l.lanname, p.prokind::text, p.proisstrict, p.provolatile::text, p.prosecdef,
       p.proleakproof, p.proparallel::text, p.procost::float8, p.prorows::float8,
       p.proretset, coalesce(p.proconfig, '{}'::text[]) as config
from pg_proc p join pg_language l on l.oid = p.prolang
where p.pronamespace = $1::regnamespace
order by p.proname, identity_args
"""


def _is_gw(name: str) -> bool:
    return name.startswith("_gw_")


class _Normalizer:
    def __init__(self, schema: str, quoted: str) -> None:
        self.schema = schema
        self.quoted = quoted

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(self.quoted + ".", SCHEMA_TOKEN + ".")
        if isinstance(value, list | tuple):
            return type(value)(self(item) for item in value)
        return value


async def dump_catalog(
    conn: asyncpg.Connection, schema: str, *, include_gw: bool = False
) -> dict[str, Any]:
    """Everything about ``schema`` that a client could observe, as comparable values."""
    quoted = await conn.fetchval("select quote_ident($1)", schema)
    exists = await conn.fetchval(
        "select exists(select 1 from pg_namespace where nspname = $1)", schema
    )
    if not exists:
        return {"schema_exists": False}
    norm = _Normalizer(schema, quoted)
    nsp = quoted

    def keep(*names: str) -> bool:
        return include_gw or not any(_is_gw(name) for name in names)

    def rows(records: list[asyncpg.Record]) -> list[tuple[Any, ...]]:
        return [tuple(norm(value) for value in record.values()) for record in records]

    result: dict[str, Any] = {"schema_exists": True}
    result["relations"] = [r for r in rows(await conn.fetch(_RELATIONS, nsp)) if keep(r[0])]
    result["columns"] = [r for r in rows(await conn.fetch(_COLUMNS, nsp)) if keep(r[0])]
    result["constraints"] = [
        r for r in rows(await conn.fetch(_CONSTRAINTS, nsp)) if keep(r[0], r[1])
    ]
    result["indexes"] = [r for r in rows(await conn.fetch(_INDEXES, nsp)) if keep(r[0], r[1])]
    result["triggers"] = [r for r in rows(await conn.fetch(_TRIGGERS, nsp)) if keep(r[0], r[1])]
    result["policies"] = [
        r for r in rows(await conn.fetch(_POLICIES, schema)) if keep(r[0])
    ]
    result["sequences"] = [r for r in rows(await conn.fetch(_SEQUENCES, nsp)) if keep(r[0])]
    result["views"] = [r for r in rows(await conn.fetch(_VIEWS, nsp)) if keep(r[0])]
    result["types"] = [r for r in rows(await conn.fetch(_TYPES, nsp)) if keep(r[0])]
    result["functions"] = [r for r in rows(await conn.fetch(_FUNCTIONS, nsp)) if keep(r[0])]
    ledger_exists = await conn.fetchval("select to_regclass($1) is not null", f"{nsp}.migrations")
    result["ledger"] = None
    if ledger_exists:
        # releases before 0.16 made a ledger without the breaking column
        ledger = await conn.fetch(
            f"select id, (to_jsonb(m) ->> 'breaking')::boolean from {nsp}.migrations as m "
            "order by id"
        )
        result["ledger"] = [tuple(r) for r in ledger]
    return result


def diff_catalogs(left: dict[str, Any], right: dict[str, Any]) -> list[str]:
    """Human-readable differences (empty when equal), for assertion messages."""
    problems: list[str] = []
    for key in sorted(set(left) | set(right)):
        a, b = left.get(key), right.get(key)
        if a == b:
            continue
        if isinstance(a, list) and isinstance(b, list):
            only_left = [item for item in a if item not in b]
            only_right = [item for item in b if item not in a]
            problems.append(f"{key}: only left {only_left}; only right {only_right}")
        else:
            problems.append(f"{key}: {a!r} != {b!r}")
    return problems
