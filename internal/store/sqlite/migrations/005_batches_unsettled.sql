-- Closed batches not yet done: what Store.SettleBatches looks through (the
-- same index as in the PostgreSQL store).
CREATE INDEX batches_unsettled ON batches (id) WHERE closed AND NOT done;
