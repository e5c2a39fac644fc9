-- pharox schema version 3: the pools' stats history, the snapshots
-- `pharox worker` records after each sweep (PostgresStorage::record_stats),
-- newest kept up to the recorder's cap, removed with their pool.

CREATE TABLE pharox_stats_history (
    pool_id  text NOT NULL REFERENCES pharox_pools (id) ON DELETE CASCADE,
    seq      bigint GENERATED ALWAYS AS IDENTITY,
    snapshot jsonb NOT NULL,
    PRIMARY KEY (pool_id, seq)
);
