-- Closed batches not yet done: what the maintenance sweep
-- (Store.SettleBatches) looks through for batches whose jobs have all
-- ended. Finishing jobs settles their batches after committing, outside
-- the batch's row lock, so a server crash in between leaves one for it.
CREATE INDEX batches_unsettled ON batches (id) WHERE closed AND NOT done;
