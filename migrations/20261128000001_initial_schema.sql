-- Seatline schema: the whole domain.
--
-- Invariants live here as the last line of defence; the workers' ordering and locking are the
-- first. A seat has at most one live (HELD or CONFIRMED) reservation, a balance never goes
-- negative, a reservation is paid at most once, and every request id is decided at most once.

-- Users and points ---------------------------------------------------------------------------

CREATE TABLE users (
    id          uuid PRIMARY KEY,
    balance     bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Append-only history of every balance movement. The sum of a user's amounts equals the balance.
CREATE TABLE point_ledger (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id          uuid NOT NULL REFERENCES users (id),
    kind             text NOT NULL CHECK (kind IN ('CHARGE', 'PAYMENT')),
    -- Positive for a charge, negative for a payment.
    amount           bigint NOT NULL CHECK (amount <> 0),
    balance_after    bigint NOT NULL CHECK (balance_after >= 0),
    -- The payment id for a payment; null for a charge.
    payment_id       uuid,
    -- Charges may carry the client's Idempotency-Key and a fingerprint of the request body,
    -- so a retry returns the first result and a reused key with another body is refused.
    idempotency_key  text,
    request_hash     text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX point_ledger_user_idx ON point_ledger (user_id, id DESC);
CREATE UNIQUE INDEX point_ledger_idempotency_uq ON point_ledger (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX point_ledger_payment_uq ON point_ledger (payment_id) WHERE payment_id IS NOT NULL;

CREATE FUNCTION point_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'point_ledger is append-only';
END;
$$;
CREATE TRIGGER point_ledger_no_update BEFORE UPDATE OR DELETE ON point_ledger
    FOR EACH ROW EXECUTE FUNCTION point_ledger_append_only();

-- Catalog ------------------------------------------------------------------------------------

CREATE TABLE concerts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    venue       text NOT NULL CHECK (length(venue) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE concert_dates (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    concert_id      bigint NOT NULL REFERENCES concerts (id),
    starts_at       timestamptz NOT NULL,
    sales_open_at   timestamptz NOT NULL DEFAULT now(),
    sales_close_at  timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (sales_open_at < sales_close_at),
    CHECK (sales_close_at <= starts_at)
);
CREATE INDEX concert_dates_concert_idx ON concert_dates (concert_id, starts_at);

-- 50 seats per date. The seat row doubles as the seat's lock: every decision about a seat
-- (hold, payment, expiry) takes `FOR UPDATE` on it first.
CREATE TABLE seats (
    concert_date_id  bigint NOT NULL REFERENCES concert_dates (id),
    seat_no          integer NOT NULL CHECK (seat_no BETWEEN 1 AND 50),
    price            bigint NOT NULL CHECK (price >= 0),
    PRIMARY KEY (concert_date_id, seat_no)
);

-- Waiting queue ------------------------------------------------------------------------------

CREATE TABLE queue_tokens (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id),
    -- Gapless arrival number (from queue_state.last_seq), the order of admission.
    seq            bigint NOT NULL UNIQUE,
    status         text NOT NULL CHECK (status IN ('WAITING', 'ACTIVE', 'COMPLETED', 'EXPIRED', 'ABANDONED')),
    issued_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    activated_at   timestamptz,
    expires_at     timestamptz,
    ended_at       timestamptz
);
-- One live token per user: a second request returns the same place in line.
CREATE UNIQUE INDEX queue_tokens_live_user_uq ON queue_tokens (user_id)
    WHERE status IN ('WAITING', 'ACTIVE');
CREATE INDEX queue_tokens_waiting_idx ON queue_tokens (seq) WHERE status = 'WAITING';
CREATE INDEX queue_tokens_active_idx ON queue_tokens (expires_at) WHERE status = 'ACTIVE';
-- The admission rate limit looks at the last second of activations.
CREATE INDEX queue_tokens_activated_idx ON queue_tokens (activated_at) WHERE activated_at IS NOT NULL;

-- Single-row queue bookkeeping. Positions are computed from it in O(log n):
-- position = (seq - admitted_through) - (dropped waiters between the two).
CREATE TABLE queue_state (
    id                   boolean PRIMARY KEY DEFAULT true CHECK (id),
    last_seq             bigint NOT NULL DEFAULT 0,
    -- Every WAITING token with seq <= admitted_through has been admitted or dropped.
    admitted_through     bigint NOT NULL DEFAULT 0,
    -- Admissions per second, smoothed; feeds the estimated wait.
    admit_rate           double precision NOT NULL DEFAULT 0,
    last_admit_at        timestamptz
);
INSERT INTO queue_state DEFAULT VALUES;

-- A Fenwick tree over seq counting waiters that left the line before admission (abandoned or
-- expired while WAITING). Node i covers seq (i - lowbit(i), i]. Only the admitter writes it.
CREATE TABLE queue_dropped_tree (
    node     bigint PRIMARY KEY CHECK (node > 0),
    dropped  bigint NOT NULL DEFAULT 0
);

-- Waiters dropped with seq <= upto: a Fenwick prefix sum, at most ~40 index lookups.
CREATE FUNCTION queue_dropped_prefix(upto bigint) RETURNS bigint LANGUAGE sql STABLE AS $$
    WITH RECURSIVE nodes (i) AS (
        SELECT upto WHERE upto > 0
        UNION ALL
        SELECT i - (i & -i) FROM nodes WHERE i - (i & -i) > 0
    )
    SELECT coalesce(sum(t.dropped), 0)::bigint
    FROM queue_dropped_tree t JOIN nodes n ON t.node = n.i
$$;

-- Requests and their outcomes ----------------------------------------------------------------

-- Every request the API accepted (answered 202), so status lookups can tell "pending" from
-- "never issued", from any API instance.
CREATE TABLE requests (
    id               uuid PRIMARY KEY,
    kind             text NOT NULL CHECK (kind IN ('RESERVATION', 'PAYMENT')),
    user_id          uuid NOT NULL REFERENCES users (id),
    idempotency_key  text,
    payload          jsonb NOT NULL,
    submitted_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX requests_idempotency_uq ON requests (user_id, kind, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- The workers' inbox: a request id is decided once. A redelivered or replayed message finds its
-- row here and changes nothing.
CREATE TABLE processed_requests (
    request_id        uuid PRIMARY KEY,
    kind              text NOT NULL CHECK (kind IN ('RESERVATION', 'PAYMENT')),
    user_id           uuid NOT NULL,
    outcome           text NOT NULL,
    reason            text,
    reservation_id    uuid,
    source_topic      text NOT NULL,
    source_partition  integer NOT NULL,
    source_offset     bigint NOT NULL,
    submitted_at      timestamptz,
    processed_at      timestamptz NOT NULL DEFAULT now()
);

-- Reservations and payments ------------------------------------------------------------------

CREATE TABLE reservations (
    id               uuid PRIMARY KEY,
    request_id       uuid NOT NULL UNIQUE,
    user_id          uuid NOT NULL REFERENCES users (id),
    concert_date_id  bigint NOT NULL,
    seat_no          integer NOT NULL,
    price            bigint NOT NULL CHECK (price >= 0),
    status           text NOT NULL CHECK (status IN ('HELD', 'CONFIRMED', 'EXPIRED')),
    held_at          timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    confirmed_at     timestamptz,
    expired_at       timestamptz,
    FOREIGN KEY (concert_date_id, seat_no) REFERENCES seats (concert_date_id, seat_no)
);
-- At most one live hold or sale per seat.
CREATE UNIQUE INDEX reservations_live_seat_uq ON reservations (concert_date_id, seat_no)
    WHERE status IN ('HELD', 'CONFIRMED');
CREATE INDEX reservations_user_idx ON reservations (user_id, held_at DESC);
CREATE INDEX reservations_held_expiry_idx ON reservations (expires_at) WHERE status = 'HELD';

CREATE TABLE payments (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id),
    reservation_id  uuid NOT NULL,
    status          text NOT NULL CHECK (status IN ('PAID', 'FAILED')),
    reason          text,
    amount          bigint NOT NULL CHECK (amount >= 0),
    balance_after   bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    paid_at         timestamptz,
    CHECK ((status = 'PAID') = (reason IS NULL))
);
-- A reservation is paid at most once.
CREATE UNIQUE INDEX payments_paid_reservation_uq ON payments (reservation_id) WHERE status = 'PAID';
CREATE INDEX payments_user_idx ON payments (user_id, created_at DESC);

-- Transactional outbox -----------------------------------------------------------------------

-- Column names follow Debezium's outbox event router (id, aggregatetype, aggregateid, type,
-- payload). `seq` gives the relay a total order to publish in.
CREATE TABLE outbox (
    seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             uuid NOT NULL UNIQUE,
    aggregatetype  text NOT NULL,
    aggregateid    text NOT NULL,
    type           text NOT NULL,
    payload        jsonb NOT NULL,
    -- Trace context (W3C traceparent) of the request that caused the event.
    traceparent    text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    published_at   timestamptz
);
CREATE INDEX outbox_unpublished_idx ON outbox (seq) WHERE published_at IS NULL;
CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX outbox_aggregate_idx ON outbox (aggregatetype, aggregateid, seq);
