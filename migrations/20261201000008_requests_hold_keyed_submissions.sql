-- Only submissions that name their own identity are recorded now: a reservation with an
-- Idempotency-Key, and every payment (its client-chosen id). A reservation without a key gets
-- an id that proves the API issued it (api/src/request_ids.rs), and the workers' inbox
-- (processed_requests) has its outcome once decided; the broker's acknowledgement is what
-- makes its 202 durable. No data changes: older rows stay valid records.
COMMENT ON TABLE requests IS
    'Submissions that carry their own identity (Idempotency-Key, or a payment id): maps the key to one request id and refuses it for another request.';
