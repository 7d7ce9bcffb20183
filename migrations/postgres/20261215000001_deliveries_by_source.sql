-- The operator API lists a source's deliveries newest first
-- (`GET /api/v1/deliveries?source=`) and the integrations health monitor
-- asks for each source's newest delivery: both walk this index backwards.
CREATE INDEX deliveries_by_source ON deliveries (source, id);
