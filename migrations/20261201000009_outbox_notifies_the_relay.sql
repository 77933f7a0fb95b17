-- Every statement that inserts outbox rows notifies the relay (channel `seatline_outbox`,
-- `NOTIFY_CHANNEL` in workers/src/outbox). Deciders sent `SELECT pg_notify(...)` as a statement
-- of its own after each insert: a round trip per decision transaction. A statement trigger
-- does the same inside the insert. Notifications are delivered at commit, and duplicates
-- within one transaction are folded into one, as before.
CREATE FUNCTION outbox_notify_relay() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('seatline_outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_notify_relay AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify_relay();
