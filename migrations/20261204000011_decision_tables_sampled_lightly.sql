-- The inbox and the outbox gain a row per decision, so during a sale autovacuum analyzes both
-- about once a minute (after each 10% of growth, at most once per naptime), and with the
-- default statistics target each ANALYZE samples 30,000 rows. At 1,100,000 rows that took
-- 170-210 ms of PostgreSQL's CPU per table (autovacuum's log: 0.21-0.23 CPU-s each), in one
-- burst: on the 2-core benchmark machine, which runs near the edge of its CPU at 10,000
-- decisions/s, that is enough to overload it for a second or two.
-- Their statistics are barely used: every query reads them through an index (the inbox by
-- request id or reservation, the outbox from its commit-order cursor), so the planner needs
-- their size and the rough shape of their keys, which 3,000 sampled rows (target 10) give, as
-- the workers' own statistics refresher already samples them (workers/src/statistics.rs).
-- With target 10 the same ANALYZEs took 16-19 ms. The payload columns have none (migration 5).
ALTER TABLE processed_requests
    ALTER COLUMN request_id SET STATISTICS 10,
    ALTER COLUMN kind SET STATISTICS 10,
    ALTER COLUMN user_id SET STATISTICS 10,
    ALTER COLUMN outcome SET STATISTICS 10,
    ALTER COLUMN reason SET STATISTICS 10,
    ALTER COLUMN reservation_id SET STATISTICS 10,
    ALTER COLUMN source_topic SET STATISTICS 10,
    ALTER COLUMN source_partition SET STATISTICS 10,
    ALTER COLUMN source_offset SET STATISTICS 10,
    ALTER COLUMN submitted_at SET STATISTICS 10,
    ALTER COLUMN processed_at SET STATISTICS 10;

ALTER TABLE outbox
    ALTER COLUMN seq SET STATISTICS 10,
    ALTER COLUMN id SET STATISTICS 10,
    ALTER COLUMN aggregatetype SET STATISTICS 10,
    ALTER COLUMN aggregateid SET STATISTICS 10,
    ALTER COLUMN type SET STATISTICS 10,
    ALTER COLUMN created_at SET STATISTICS 10,
    ALTER COLUMN txid SET STATISTICS 10;
