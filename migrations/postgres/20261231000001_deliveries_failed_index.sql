-- `deliveries_by_status` was rewritten by every insert and every status
-- change, yet the inbox listing walks the primary key newest first and
-- filters (its optional filters keep the planner off that index). What an
-- index helps is finding the few failed deliveries among many: a partial
-- index holds only those, and neither ingest (rows start pending) nor
-- processing them successfully touches it.
DROP INDEX deliveries_by_status;
CREATE INDEX deliveries_failed ON deliveries (id) WHERE status = 'failed';
