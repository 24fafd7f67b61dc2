"""Aurora and RDS Multi-AZ catalog objects, faked on plain PostgreSQL so that the real SQL runs unchanged.

What the simulator installs, and the one substitution it makes:

- ``pg_catalog.aurora_replica_status()`` with Aurora's 22 columns,
  ``pg_catalog.aurora_db_instance_identifier()``, ``pg_catalog.aurora_version()`` and
  ``pg_catalog.get_blue_green_fast_switchover_metadata(text)`` (a blue/green deployment's hosts, none
  without one) (``topology="aurora"``);
- ``rds_tools.show_topology(text)``, ``rds_tools.dbi_resource_id()`` and
  ``rds_tools.multi_az_db_cluster_source_dbi_resource_id()`` (``topology="multi-az"``);
- the ``rds.extensions`` setting, visible in ``pg_catalog.pg_settings`` as on RDS. PostgreSQL hides
  placeholder settings from ``pg_settings``, so the simulator redefines that view as the original rows
  plus one row for ``rds.extensions`` (its rules and privileges are kept). This is the only built-in
  object it changes.

The topology itself is a JSON document held as the comment of the role ``aurora_simulator``. Role
comments live in a shared catalog, so one write on the writer reaches every database and, through
streaming replication, every replica, exactly as Aurora's status is visible everywhere. Per-instance
identity comes from ``-c aurora_sim.instance_id=...`` on each server's command line (it must not
replicate). The helper schema ``aurora_sim`` holds the functions that read both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

from .._catalog import BlueGreenHost, TopologyMode, TopologyRow

TOPOLOGY_ROLE = "aurora_simulator"
# the blue/green deployment's metadata, a JSON document held the same way as the topology (each
# cluster of a deployment has its own: logical replication carries neither)
BLUE_GREEN_ROLE = "aurora_simulator_blue_green"
SIMULATOR_SCHEMAS = ("aurora_sim", "rds_tools")  # the simulator's own: never copied between clusters
AURORA_VERSION = "15.4.1"

RDS_EXTENSIONS: dict[TopologyMode, str | None] = {
    "aurora": "aurora_stat_utils, pg_stat_statements, pgcrypto, plpgsql, postgis, rds_tools, uuid-ossp",
    "multi-az": "pg_stat_statements, pgcrypto, plpgsql, postgis, rds_tools, uuid-ossp",
    "none": None,
}


def topology_document(rows: Sequence[TopologyRow]) -> str:
    return json.dumps(
        {
            "instances": [
                {
                    "id": r.instance_id,
                    "writer": r.is_writer,
                    "session_id": r.session_id,
                    "dbi": r.dbi_resource_id,
                    "endpoint": r.endpoint,
                    "port": r.port,
                    "frozen_at": r.frozen_at,
                    "lag_ms": r.replica_lag_ms,
                    "cpu": r.cpu,
                    "region": r.region,
                }
                for r in rows
            ]
        },
        separators=(",", ":"),
    )


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def set_topology_sql(rows: Sequence[TopologyRow]) -> str:
    return f"COMMENT ON ROLE {TOPOLOGY_ROLE} IS {sql_literal(topology_document(rows))}"


def cluster_setup_sql(rows: Sequence[TopologyRow]) -> list[str]:
    """Cluster-wide objects, run once on the first writer."""
    return [
        f"CREATE ROLE {TOPOLOGY_ROLE} NOLOGIN",
        set_topology_sql(rows),
        f"CREATE ROLE {BLUE_GREEN_ROLE} NOLOGIN",
    ]


def set_blue_green_sql(hosts: Sequence[BlueGreenHost]) -> str:
    """Publish a blue/green deployment's metadata: its hosts, as JSON."""
    document = json.dumps({"hosts": [asdict(h) for h in hosts]}, separators=(",", ":"))
    return f"COMMENT ON ROLE {BLUE_GREEN_ROLE} IS {sql_literal(document)}"


_HELPERS = f"""
CREATE SCHEMA IF NOT EXISTS aurora_sim;
COMMENT ON SCHEMA aurora_sim IS 'internal to the aurora_async local Aurora simulator';
CREATE OR REPLACE FUNCTION aurora_sim.instances()
RETURNS TABLE(id text, is_writer boolean, session_id text, last_update timestamptz, lag_ms float8,
              cpu float8, dbi text, endpoint text, port integer, region text)
LANGUAGE sql STABLE AS $$
  SELECT e->>'id', (e->>'writer')::boolean, e->>'session_id',
         COALESCE(pg_catalog.to_timestamp((e->>'frozen_at')::float8), pg_catalog.now()),
         (e->>'lag_ms')::float8, (e->>'cpu')::float8, e->>'dbi', e->>'endpoint', (e->>'port')::integer,
         e->>'region'
  FROM pg_catalog.pg_roles r,
       pg_catalog.json_array_elements(
         pg_catalog.shobj_description(r.oid, 'pg_authid')::json -> 'instances') e
  WHERE r.rolname = '{TOPOLOGY_ROLE}'
$$;
GRANT USAGE ON SCHEMA aurora_sim TO PUBLIC;
-- a blue/green switchover commits a row here on blue and waits for it on green
CREATE TABLE IF NOT EXISTS aurora_sim.switchover_marker (token text PRIMARY KEY);
"""

_PG_SETTINGS = """
CREATE OR REPLACE VIEW pg_catalog.pg_settings AS
  SELECT a.* FROM pg_catalog.pg_show_all_settings() a
  UNION ALL
  SELECT 'rds.extensions'::text, s.v, NULL::text, 'Customized Options'::text,
         'Extensions available on this instance'::text, NULL::text, 'postmaster'::text, 'string'::text,
         'configuration file'::text, NULL::text, NULL::text, NULL::text[], s.v, s.v, NULL::text,
         NULL::integer, false
  FROM (SELECT pg_catalog.current_setting('rds.extensions', true) AS v) s
  WHERE s.v IS NOT NULL;
"""

_AURORA = f"""
CREATE OR REPLACE FUNCTION pg_catalog.aurora_replica_status()
RETURNS TABLE(server_id text, session_id text, durable_lsn numeric, highest_lsn_rcvd numeric,
              current_read_lsn numeric, cur_replay_latency_in_usec bigint, active_txns text,
              is_current boolean, last_transport_error integer, last_error_timestamp timestamptz,
              last_update_timestamp timestamptz, feedback_xmin bigint, feedback_epoch integer,
              replica_lag_in_msec double precision, log_stream_speed_in_kib_per_second double precision,
              log_buffer_sequence_number bigint, oldest_read_view_trx_id bigint,
              oldest_read_view_lsn numeric, pending_read_ios integer, read_ios bigint, iops integer,
              cpu double precision)
LANGUAGE sql STABLE AS $$
  SELECT i.id, i.session_id, NULL::numeric, NULL::numeric, NULL::numeric, NULL::bigint, NULL::text,
         true, 0, NULL::timestamptz, i.last_update, NULL::bigint, 0, i.lag_ms, 0.0::float8,
         NULL::bigint, NULL::bigint, NULL::numeric, 0, 0::bigint, 0, i.cpu
  FROM aurora_sim.instances() i
  -- this cluster's instances: a Global Database's other regions have clusters of their own
  WHERE i.region IS NULL OR i.region = pg_catalog.current_setting('aurora_sim.region', true)
$$;
CREATE OR REPLACE FUNCTION pg_catalog.aurora_global_db_instance_status()
RETURNS TABLE(server_id text, session_id text, aws_region text, durable_lsn numeric,
              highest_lsn_rcvd numeric, feedback_epoch integer, feedback_xmin integer,
              oldest_read_view_lsn numeric, visibility_lag_in_msec numeric)
LANGUAGE sql STABLE AS $$
  SELECT i.id, i.session_id, i.region, NULL::numeric, NULL::numeric, NULL::integer, NULL::integer,
         NULL::numeric, CASE WHEN i.is_writer THEN NULL ELSE i.lag_ms::numeric END
  FROM aurora_sim.instances() i
$$;
CREATE OR REPLACE FUNCTION pg_catalog.aurora_global_db_status()
RETURNS TABLE(aws_region text, highest_lsn_written numeric, durability_lag_in_msec numeric,
              rpo_lag_in_msec numeric, last_lag_calculation_timestamp timestamptz,
              oldest_read_view_trx_id bigint)
LANGUAGE sql STABLE AS $$
  SELECT r.region, NULL::numeric, CASE WHEN r.primary_region THEN NULL ELSE 10::numeric END,
         CASE WHEN r.primary_region THEN NULL ELSE 10::numeric END, pg_catalog.now(), NULL::bigint
  FROM (SELECT i.region, pg_catalog.bool_or(i.session_id OPERATOR(pg_catalog.=) 'MASTER_SESSION_ID')
               AS primary_region
        FROM aurora_sim.instances() i GROUP BY i.region) r
$$;
CREATE OR REPLACE FUNCTION pg_catalog.aurora_db_instance_identifier() RETURNS text
LANGUAGE sql STABLE AS $$ SELECT pg_catalog.current_setting('aurora_sim.instance_id') $$;
CREATE OR REPLACE FUNCTION pg_catalog.get_blue_green_fast_switchover_metadata(caller text DEFAULT NULL)
RETURNS TABLE(id text, endpoint text, port integer, role text, status text, version text,
              update_stamp timestamptz)
LANGUAGE sql STABLE AS $$
  SELECT e->>'id', e->>'endpoint', (e->>'port')::integer, e->>'role', e->>'status', e->>'version',
         pg_catalog.to_timestamp((e->>'update_stamp')::float8)
  FROM pg_catalog.pg_roles r,
       pg_catalog.json_array_elements(
         pg_catalog.shobj_description(r.oid, 'pg_authid')::json -> 'hosts') e
  WHERE r.rolname = '{BLUE_GREEN_ROLE}'
$$;
CREATE OR REPLACE FUNCTION pg_catalog.aurora_version() RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT '{AURORA_VERSION}'::text $$;
"""

_MULTI_AZ = """
CREATE SCHEMA IF NOT EXISTS rds_tools;
CREATE OR REPLACE FUNCTION rds_tools.show_topology(caller text DEFAULT NULL)
RETURNS TABLE(id text, endpoint text, port integer)
LANGUAGE sql STABLE AS $$ SELECT i.dbi, i.endpoint, i.port FROM aurora_sim.instances() i $$;
CREATE OR REPLACE FUNCTION rds_tools.dbi_resource_id() RETURNS text
LANGUAGE sql STABLE AS $$ SELECT pg_catalog.current_setting('aurora_sim.dbi_resource_id') $$;
CREATE OR REPLACE FUNCTION rds_tools.multi_az_db_cluster_source_dbi_resource_id() RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN pg_catalog.pg_is_in_recovery()
              THEN (SELECT i.dbi FROM aurora_sim.instances() i WHERE i.is_writer LIMIT 1)
              ELSE pg_catalog.current_setting('aurora_sim.dbi_resource_id') END
$$;
GRANT USAGE ON SCHEMA rds_tools TO PUBLIC;
"""


def database_setup_sql(mode: TopologyMode) -> str:
    """Per-database objects; installed in ``template1`` (so new databases get them) and ``postgres``."""
    if mode == "none":
        return ""
    return _HELPERS + _PG_SETTINGS + (_AURORA if mode == "aurora" else _MULTI_AZ)


def instance_settings(
    mode: TopologyMode, instance_id: str, dbi_resource_id: str, region: str | None = None
) -> dict[str, str]:
    """Command-line settings that give one server its identity (and its cluster's region)."""
    settings = {"aurora_sim.instance_id": instance_id, "aurora_sim.dbi_resource_id": dbi_resource_id}
    if region is not None:
        settings["aurora_sim.region"] = region
    extensions = RDS_EXTENSIONS[mode]
    if extensions is not None:
        settings["rds.extensions"] = extensions
    return settings
