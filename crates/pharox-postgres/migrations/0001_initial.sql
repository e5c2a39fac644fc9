-- pharox schema, version 1: tables and indexes.
--
-- Live state only: a released or reclaimed lease is deleted, so the tables
-- do not grow with history. Every counter a stats read needs is kept in
-- pharox_pools by the same functions (0002) that change what it counts.

CREATE TABLE pharox_consumers (
    name text PRIMARY KEY,
    id   uuid NOT NULL
);

CREATE TABLE pharox_pools (
    id                text PRIMARY KEY,
    name              text NOT NULL,
    description       text,
    -- Fencing: the last token granted (I5). Starts from the retired token of
    -- a pool of the same id removed before.
    last_token        bigint NOT NULL DEFAULT 0,
    -- Round robin: the sequence number of the last proxy it picked.
    rr_cursor         bigint,
    -- The sequence number the next new proxy takes (selection order).
    next_seq          bigint NOT NULL DEFAULT 0,
    -- Counters (PoolStatsSnapshot).
    proxies_total     bigint NOT NULL DEFAULT 0,
    proxies_active    bigint NOT NULL DEFAULT 0,
    proxies_available bigint NOT NULL DEFAULT 0,
    proxies_leased    bigint NOT NULL DEFAULT 0,
    active_leases     bigint NOT NULL DEFAULT 0,
    total_leases      bigint NOT NULL DEFAULT 0,
    released_leases   bigint NOT NULL DEFAULT 0,
    expired_leases    bigint NOT NULL DEFAULT 0
);

-- The last token of removed pools, so a pool created again under the same
-- id continues above it (I5 across remove and create).
CREATE TABLE pharox_retired_tokens (
    pool_id    text PRIMARY KEY,
    last_token bigint NOT NULL
);

CREATE TABLE pharox_proxies (
    pool_id         text NOT NULL REFERENCES pharox_pools (id) ON DELETE CASCADE,
    id              text NOT NULL,
    seq             bigint NOT NULL,
    host            text NOT NULL,
    port            integer NOT NULL,
    protocol        text NOT NULL,
    username        text,
    password        text,
    status          text NOT NULL,
    checked_at      timestamptz,
    latency_ms      bigint,
    source          text,
    country         text,
    -- country with ASCII letters lowered: the filter compares ASCII-case-insensitively.
    country_key     text,
    city            text,
    latitude        double precision,
    longitude       double precision,
    isp             text,
    asn             bigint,
    max_concurrency integer,
    -- max_concurrency, or the store's limit when unset.
    capacity        integer NOT NULL,
    current_leases  integer NOT NULL DEFAULT 0,
    extra           jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (pool_id, id),
    UNIQUE (pool_id, seq),
    CHECK (current_leases >= 0 AND current_leases <= capacity)
);

-- Orders of the proxies that can take a lease now (partial: a full or
-- inactive proxy leaves them), one per selector.
CREATE INDEX pharox_proxies_free_by_seq ON pharox_proxies (pool_id, seq)
    WHERE status = 'active' AND current_leases < capacity;
CREATE INDEX pharox_proxies_free_by_load ON pharox_proxies (pool_id, current_leases, seq)
    WHERE status = 'active' AND current_leases < capacity;
CREATE INDEX pharox_proxies_free_by_latency
    ON pharox_proxies (pool_id, (coalesce(latency_ms, 4294967295)), seq)
    WHERE status = 'active' AND current_leases < capacity;
-- Equality filters and the geo radius's latitude band, so a selective
-- filter reads its matches, not the pool.
CREATE INDEX pharox_proxies_free_by_country ON pharox_proxies (pool_id, country_key, seq)
    WHERE status = 'active' AND current_leases < capacity;
CREATE INDEX pharox_proxies_free_by_source ON pharox_proxies (pool_id, source, seq)
    WHERE status = 'active' AND current_leases < capacity;
CREATE INDEX pharox_proxies_free_by_city ON pharox_proxies (pool_id, city, seq)
    WHERE status = 'active' AND current_leases < capacity;
CREATE INDEX pharox_proxies_free_by_isp ON pharox_proxies (pool_id, isp, seq)
    WHERE status = 'active' AND current_leases < capacity;
CREATE INDEX pharox_proxies_free_by_asn ON pharox_proxies (pool_id, asn, seq)
    WHERE status = 'active' AND current_leases < capacity;
CREATE INDEX pharox_proxies_free_by_latitude ON pharox_proxies (pool_id, latitude, longitude)
    WHERE status = 'active' AND current_leases < capacity;

CREATE TABLE pharox_leases (
    id          uuid PRIMARY KEY,
    pool_id     text NOT NULL REFERENCES pharox_pools (id) ON DELETE CASCADE,
    token       bigint NOT NULL,
    proxy_seq   bigint NOT NULL,
    consumer    text NOT NULL,
    acquired_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);

-- Reclaiming expired leases reads the oldest deadlines of one pool.
CREATE INDEX pharox_leases_by_expiry ON pharox_leases (pool_id, expires_at);
-- Removing a proxy ends its leases.
CREATE INDEX pharox_leases_by_proxy ON pharox_leases (pool_id, proxy_seq);
