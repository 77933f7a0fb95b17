-- A decision counts each user's live holds (HELD, not yet expired). This index answers that
-- with a probe of the user's live holds alone, whatever the statistics say; without it the
-- planner, on statistics that lag a sale's first minutes, chose the expiry index and read
-- every live hold in the database for each user of a batch.
CREATE INDEX reservations_user_live_idx ON reservations (user_id, expires_at) WHERE status = 'HELD';
