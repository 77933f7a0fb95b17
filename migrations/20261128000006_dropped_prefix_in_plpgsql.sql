-- The Fenwick prefix sum behind every WAITING token's position. As a SQL function with a
-- recursive CTE it was parsed and planned on every call (a SQL function's plan lives only as
-- long as its calling statement): about 150 us of server time, twice per poll of a waiting
-- token. PL/pgSQL keeps the plan for the session: about 35 us.
--
-- The nodes of the prefix sum up to n are n with its lowest set bits cleared one at a time,
-- which are exactly the nonzero values of (n >> k) << k for k = 0..40 (the tree covers seq up
-- to 2^40); repeats do not matter to = ANY.
CREATE OR REPLACE FUNCTION queue_dropped_prefix(upto bigint) RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    IF upto <= 0 THEN
        RETURN 0;
    END IF;
    RETURN (
        SELECT coalesce(sum(dropped), 0)
        FROM queue_dropped_tree
        WHERE node = ANY (ARRAY(SELECT (upto >> k) << k FROM generate_series(0, 40) AS k))
    );
END
$$;
