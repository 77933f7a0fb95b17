-- No query filters, joins or sorts on these columns, so their planner statistics are never
-- used, yet sampling them (detoasting and comparing JSON documents) was most of an ANALYZE's
-- cost: at 80,000 rows, 260 -> 100 ms for the outbox and 150 -> 50 ms for requests. ANALYZE
-- runs often while a sale grows these tables (the workers' statistics refresher, and
-- autovacuum after every 10% of growth).
ALTER TABLE outbox ALTER COLUMN payload SET STATISTICS 0;
ALTER TABLE outbox ALTER COLUMN traceparent SET STATISTICS 0;
ALTER TABLE requests ALTER COLUMN payload SET STATISTICS 0;
