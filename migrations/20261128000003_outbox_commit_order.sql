-- The outbox relay publishes by a cursor instead of marking each row.
--
-- Marking rows (`published_at`) cost an UPDATE per event that could never be HOT, because the
-- column was in two partial indexes: under load it wrote more WAL than the inserts did, and
-- left a dead tuple per event for vacuum. Now rows are immutable once written, and the relay
-- keeps one cursor row, moved once per round.
--
-- A cursor over `seq` alone would skip rows: `seq` is taken at insert, so a transaction can
-- commit a lower `seq` after a higher one was already published. So rows are ordered by the
-- transaction that wrote them (`txid`), then `seq`, and the relay only takes rows of
-- transactions older than every transaction still running (`pg_snapshot_xmin`). Such a
-- transaction has ended, so no row can appear behind the cursor later.

-- Rows written before this migration sort first (txid 0), in `seq` order; rows written after
-- it carry their transaction's id.
ALTER TABLE outbox ADD COLUMN txid xid8 NOT NULL DEFAULT '0';
ALTER TABLE outbox ALTER COLUMN txid SET DEFAULT pg_current_xact_id();

-- The relay's position: every row at or before (txid, seq) has been published.
CREATE TABLE outbox_relay_cursor (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    txid       xid8 NOT NULL,
    seq        bigint NOT NULL,
    moved_at   timestamptz NOT NULL DEFAULT now()
);
-- Start just before the oldest unpublished row. Rows published out of order after it are
-- published again, with the same event ids (at least once, as always).
INSERT INTO outbox_relay_cursor (txid, seq)
SELECT '0', coalesce((SELECT min(seq) - 1 FROM outbox WHERE published_at IS NULL),
                     (SELECT max(seq) FROM outbox),
                     0);

DROP INDEX outbox_unpublished_idx;
DROP INDEX outbox_published_idx;
-- Replays filter by aggregate id without the aggregate type, so this index served no query;
-- it only cost an index insert per event.
DROP INDEX outbox_aggregate_idx;
ALTER TABLE outbox DROP COLUMN published_at;

CREATE INDEX outbox_commit_order_idx ON outbox (txid, seq);
-- Pruning by age. Rows are appended in time order, so a block-range index serves it at almost
-- no cost per insert.
CREATE INDEX outbox_created_brin ON outbox USING brin (created_at);
