-- Admission rounds cost O(rounds) and O(admissions), not O(ACTIVE tokens) and O(recent
-- activations) every round.

-- Admissions per round, for the rate limit's one-second window and the ten-second admission
-- rate. Summing the last ten seconds' rounds (at most ~50 rows) replaces counting the last
-- ten seconds' activations through an index, one entry per admitted token, every round.
-- Only the admitter writes it; it deletes rounds older than ten seconds.
CREATE TABLE queue_admission_rounds (
    admitted_at  timestamptz PRIMARY KEY,
    admitted     integer NOT NULL CHECK (admitted > 0)
);
-- Its only reader was that count.
DROP INDEX queue_tokens_activated_idx;

-- An upper bound on ACTIVE tokens, kept by the admitter: it adds whom it admits and subtracts
-- whom it expires. Tokens that leave ACTIVE otherwise (paid) only make it higher than the
-- truth, never lower, because nothing but the admitter makes a token ACTIVE. While the bound
-- leaves room for everyone a round wants to admit, the round need not count ACTIVE tokens
-- (one index entry each); when it does not, the round counts and resets it. NULL: unknown.
ALTER TABLE queue_state ADD COLUMN active_bound bigint CHECK (active_bound >= 0);
