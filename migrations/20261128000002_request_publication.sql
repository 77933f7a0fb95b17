-- A submission whose produce failed (the client got 503) is kept, flagged, so that a retry
-- with the same Idempotency-Key publishes the same request id again instead of a new one. If
-- the failed produce did reach the broker after all, the worker still decides that id once.
ALTER TABLE requests ADD COLUMN publish_failed_at timestamptz;

-- Status lookups join the inbox by request id, and list a user's reservations newest first.
CREATE INDEX processed_requests_reservation_idx ON processed_requests (reservation_id)
    WHERE reservation_id IS NOT NULL;
