"""Bulk rows for the scale scenario: users, sessions and refresh tokens generated inside PostgreSQL.

The indexes and keys of the three tables are dropped for the INSERT ... SELECT and rebuilt afterwards from
their own definitions (read from the catalog, so the fill follows the schema the migrations made). Every bulk
session belongs to a bulk user (4 sessions each) and has one live refresh token; the others are rotated.
"""

from __future__ import annotations

TABLES = "'users'::regclass, 'sessions'::regclass, 'refresh_tokens'::regclass"

SAVE_AND_DROP = f"""
SET maintenance_work_mem = '1GB';
CREATE TABLE bench_constraints AS
    SELECT conrelid::regclass::text AS tbl, conname, contype, pg_get_constraintdef(oid) AS def
      FROM pg_constraint
     WHERE contype IN ('p', 'u', 'f') AND (conrelid IN ({TABLES}) OR confrelid IN ({TABLES}));
CREATE TABLE bench_indexes AS
    SELECT indexname, indexdef FROM pg_indexes
     WHERE schemaname = 'public' AND tablename IN ('users', 'sessions', 'refresh_tokens')
       AND indexname NOT IN (SELECT conname FROM bench_constraints);
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT * FROM bench_constraints ORDER BY contype = 'f' DESC LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.tbl, r.conname);
    END LOOP;
    FOR r IN SELECT * FROM bench_indexes LOOP
        EXECUTE format('DROP INDEX %I', r.indexname);
    END LOOP;
END $$;
"""

INSERT = """
INSERT INTO users (email, password_hash, role, created_at, updated_at)
     SELECT 'bulk' || g || '@example.test', 'not-a-hash', 'user', now() - interval '60 days', now()
       FROM generate_series(1, {users}) g;
INSERT INTO sessions (id, user_id, device_info, ip_address, user_agent, created_at, last_activity, expires_at)
     SELECT md5('s' || g) || lpad(to_hex(g), 32, '0'), (g - 1) % {users} + 1, '{{}}', '127.0.0.1', 'bulk',
            now() - interval '1 day', now() - interval '1 hour', now() + interval '29 days'
       FROM generate_series(1, {sessions}) g;
INSERT INTO refresh_tokens (session_id, user_id, token_hash, parent_id, generation, created_at, expires_at,
                            rotated_at)
     SELECT md5('s' || s) || lpad(to_hex(s), 32, '0'), (s - 1) % {users} + 1,
            md5('r' || g) || lpad(to_hex(g), 32, '0'),
            CASE WHEN g > {sessions} THEN g - {sessions} END, (g - 1) / {sessions} + 1,
            now() - interval '1 day', now() + interval '29 days',
            CASE WHEN g <= {tokens} - {sessions} THEN now() - interval '1 hour' END
       FROM (SELECT g, (g - 1) % {sessions} + 1 AS s FROM generate_series(1, {tokens}) g) AS t;
"""

RESTORE = """
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT * FROM bench_indexes LOOP
        EXECUTE r.indexdef;
    END LOOP;
    FOR r IN SELECT * FROM bench_constraints ORDER BY contype = 'f' LOOP
        EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', r.tbl, r.conname, r.def);
    END LOOP;
END $$;
DROP TABLE bench_constraints, bench_indexes;
VACUUM ANALYZE;
-- The fill's gigabytes of dirty pages written out now rather than by the checkpointer during the measurement.
CHECKPOINT;
"""


def fill_sql(sessions: int, tokens: int) -> str:
    """SQL that adds `sessions` sessions and `tokens` refresh tokens (tokens >= sessions) to a migrated database."""
    if tokens < sessions:
        raise ValueError("every session needs a refresh token")
    users = max(1, sessions // 4)
    return SAVE_AND_DROP + INSERT.format(users=users, sessions=sessions, tokens=tokens) + RESTORE
