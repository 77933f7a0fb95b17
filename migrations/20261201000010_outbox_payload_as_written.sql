-- The outbox keeps each event's JSON text as the workers wrote it, and the relay publishes
-- those bytes as they are. No query reads inside a payload, so jsonb's parsed form bought
-- nothing, while it cost PostgreSQL a parse on every insert and a rendering back to text on
-- every read: on 200,000 event payloads, 6.3 against 3.5 µs per insert and 2.1 against
-- 0.8 µs per read, and 13% more space. json still checks that a payload is valid JSON.
-- The column keeps its statistics target (0: see payload_columns_without_statistics).
ALTER TABLE outbox ALTER COLUMN payload TYPE json USING payload::json;
