-- pharox schema version 4: lease operations no longer lock the pool's row.
--
-- Up to version 3 every function locked the pool's row first, which
-- serialized every call on a pool (64 tasks waited on `transactionid`
-- locks: fewer cycles/s than one task). Now:
--
-- * Fencing tokens come from one sequence shared by every pool
--   (`pharox_tokens`): unique, never reused, increasing per pool, across a
--   pool's removal and re-creation too. An acquire takes its token after it
--   has locked the proxy's row, so an acquire that begins after another
--   returned takes a larger token, and so does any later lease of the same
--   proxy.
-- * The counters that lease operations change are kept as deltas in a
--   fixed number of shard rows per pool (`pharox_pool_counters`, one picked
--   by the backend's pid); the stats (`pharox_pool_stats`) are the pool's
--   row plus the sum of its shards, one statement, exact. Admin operations
--   (proxies, health) still hold the pool's row and count there.
-- * An acquire locks the proxy it picks (`FOR UPDATE SKIP LOCKED`: two
--   acquires take different proxies instead of queueing on one), falling
--   back to waiting for a free proxy locked by someone else, so it never
--   misses while a proxy is free. Round robin still holds the pool's row
--   (its cursor lives there).
--
-- Lock order, the same everywhere: the pool's row (admin operations and
-- round robin only), then proxy rows, then the leases of a locked proxy,
-- then one counter shard, last. A lease row is changed only by a holder of
-- its proxy's lock, or by a renewal that takes no lock after it.

CREATE SEQUENCE pharox_tokens AS bigint MINVALUE 1;
SELECT setval('pharox_tokens', greatest(
    (SELECT max(last_token) FROM pharox_pools),
    (SELECT max(last_token) FROM pharox_retired_tokens), 0) + 1, false);

-- A lease insert checked the pool's key (FOR KEY SHARE on its row): every
-- acquire locked the row again, and waited behind an admin operation
-- while holding a proxy. The pool's removal deletes its leases itself.
ALTER TABLE pharox_leases DROP CONSTRAINT pharox_leases_pool_id_fkey;

CREATE TABLE pharox_pool_counters (
    pool_id           text NOT NULL REFERENCES pharox_pools (id) ON DELETE CASCADE,
    shard             integer NOT NULL,
    proxies_available bigint NOT NULL DEFAULT 0,
    proxies_leased    bigint NOT NULL DEFAULT 0,
    active_leases     bigint NOT NULL DEFAULT 0,
    total_leases      bigint NOT NULL DEFAULT 0,
    released_leases   bigint NOT NULL DEFAULT 0,
    expired_leases    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (pool_id, shard)
) WITH (fillfactor = 20);

-- The number of shards: `pharox_count` and the trigger below agree on it.
CREATE FUNCTION pharox_pool_shards() RETURNS trigger LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO pharox_pool_counters (pool_id, shard)
    SELECT NEW.id, g FROM generate_series(0, 31) AS g;
    RETURN NULL;
END
$$;

CREATE TRIGGER pharox_pool_shards AFTER INSERT ON pharox_pools
    FOR EACH ROW EXECUTE FUNCTION pharox_pool_shards();

INSERT INTO pharox_pool_counters (pool_id, shard)
SELECT p.id, g FROM pharox_pools p, generate_series(0, 31) AS g;

-- Adds deltas to this backend's shard of the pool's counters. Called last
-- in a transaction (the shard's row stays locked until the commit).
CREATE FUNCTION pharox_count(
    p_pool text, p_available bigint, p_leased bigint, p_active bigint,
    p_total bigint, p_released bigint, p_expired bigint)
RETURNS void LANGUAGE plpgsql
AS $$
BEGIN
    -- PL/pgSQL, not SQL: its plan is cached for the session (a SQL
    -- function called from PL/pgSQL is planned again at every call).
    UPDATE pharox_pool_counters SET
        proxies_available = proxies_available + p_available,
        proxies_leased = proxies_leased + p_leased,
        active_leases = active_leases + p_active,
        total_leases = total_leases + p_total,
        released_leases = released_leases + p_released,
        expired_leases = expired_leases + p_expired
    WHERE pool_id = p_pool AND shard = pg_backend_pid() % 32;
END
$$;

-- Each pool with its counters: its row plus its shards.
CREATE VIEW pharox_pool_stats AS
SELECT p.id, p.name, p.description, p.proxies_total, p.proxies_active,
       p.proxies_available + c.proxies_available AS proxies_available,
       p.proxies_leased + c.proxies_leased AS proxies_leased,
       p.active_leases + c.active_leases AS active_leases,
       p.total_leases + c.total_leases AS total_leases,
       p.released_leases + c.released_leases AS released_leases,
       p.expired_leases + c.expired_leases AS expired_leases
FROM pharox_pools p
CROSS JOIN LATERAL (
    SELECT coalesce(sum(s.proxies_available), 0)::bigint AS proxies_available,
           coalesce(sum(s.proxies_leased), 0)::bigint AS proxies_leased,
           coalesce(sum(s.active_leases), 0)::bigint AS active_leases,
           coalesce(sum(s.total_leases), 0)::bigint AS total_leases,
           coalesce(sum(s.released_leases), 0)::bigint AS released_leases,
           coalesce(sum(s.expired_leases), 0)::bigint AS expired_leases
    FROM pharox_pool_counters s WHERE s.pool_id = p.id
) c;

-- Ends up to `p_limit` expired leases of a pool, oldest deadline first, as
-- expired, without touching the pool's row: locks the proxies of those
-- leases first, skipping those another call holds (it never waits, so it
-- never deadlocks), then deletes those still expired and fixes the
-- proxies' lease counts.
-- Returns the deltas for the caller to count (last, see pharox_count),
-- and how many proxies it locked (`held`).
CREATE FUNCTION pharox_reclaim_free(
    p_pool text, p_now timestamptz, p_limit integer,
    OUT n bigint, OUT free bigint, OUT leased bigint, OUT held integer)
LANGUAGE plpgsql
AS $$
DECLARE
    v_seqs bigint[];
BEGIN
    n := 0;
    free := 0;
    leased := 0;
    held := 0;
    IF NOT EXISTS (SELECT 1 FROM pharox_leases e
                   WHERE e.pool_id = p_pool AND e.expires_at <= p_now) THEN
        RETURN;
    END IF;
    SELECT array_agg(q.seq) INTO v_seqs FROM (
        SELECT x.seq FROM pharox_proxies x
        WHERE x.pool_id = p_pool AND x.seq IN (
            SELECT e.proxy_seq FROM pharox_leases e
            WHERE e.pool_id = p_pool AND e.expires_at <= p_now
            ORDER BY e.expires_at LIMIT p_limit)
        ORDER BY x.seq FOR UPDATE SKIP LOCKED) q;
    IF v_seqs IS NULL THEN
        RETURN;
    END IF;
    held := cardinality(v_seqs);
    WITH gone AS (
        DELETE FROM pharox_leases l
        WHERE l.id IN (SELECT e.id FROM pharox_leases e
                       WHERE e.pool_id = p_pool AND e.proxy_seq = ANY (v_seqs)
                         AND e.expires_at <= p_now
                       ORDER BY e.expires_at LIMIT p_limit)
          -- Checked again on the row's newest version (a renewal).
          AND l.expires_at <= p_now
        RETURNING l.proxy_seq
    ), per AS (
        SELECT g.proxy_seq, count(*)::integer AS k FROM gone g GROUP BY g.proxy_seq
    ), upd AS (
        UPDATE pharox_proxies x SET current_leases = x.current_leases - per.k
        FROM per WHERE x.pool_id = p_pool AND x.seq = per.proxy_seq
        RETURNING x.status, x.current_leases AS after, x.capacity, per.k
    )
    SELECT coalesce(sum(u.k), 0),
           coalesce(sum(pharox_is_free(u.status, u.after, u.capacity)
                        - pharox_is_free(u.status, u.after + u.k, u.capacity)), 0),
           coalesce(sum((u.after > 0)::integer - 1), 0)
    INTO n, free, leased FROM upd u;
END
$$;

-- The sequence number of a free proxy the selector picks, its row locked
-- by this transaction, or NULL when no proxy is free. First the proxies
-- nobody else holds (SKIP LOCKED, static selectors without a filter);
-- then, if none, waits for the one pharox_pick names and takes it if it is
-- still free, else asks again (someone else took it: progress).
--
-- Not when `p_wait` is false (the caller holds other proxies, those whose
-- leases it reclaimed: waiting then could deadlock): a free proxy another
-- call holds is skipped, and after 8 of them the answer is NULL.
CREATE FUNCTION pharox_pick_lock(
    p_pool text, p_selector integer, p_cursor bigint,
    p_filter text, p_texts text[], p_nums double precision[], p_wait boolean)
RETURNS bigint LANGUAGE plpgsql
AS $$
DECLARE
    v_seq bigint;
    v_skipped integer := 0;
BEGIN
    IF p_filter IS NULL THEN
        IF p_selector = 0 THEN
            SELECT p.seq INTO v_seq FROM pharox_proxies p
            WHERE p.pool_id = p_pool AND p.status = 'active' AND p.current_leases < p.capacity
            ORDER BY p.seq LIMIT 1 FOR UPDATE SKIP LOCKED;
        ELSIF p_selector = 1 THEN
            SELECT p.seq INTO v_seq FROM pharox_proxies p
            WHERE p.pool_id = p_pool AND p.status = 'active' AND p.current_leases < p.capacity
            ORDER BY p.current_leases, p.seq LIMIT 1 FOR UPDATE SKIP LOCKED;
        ELSIF p_selector = 3 THEN
            SELECT p.seq INTO v_seq FROM pharox_proxies p
            WHERE p.pool_id = p_pool AND p.status = 'active' AND p.current_leases < p.capacity
            ORDER BY coalesce(p.latency_ms, 4294967295), p.seq LIMIT 1 FOR UPDATE SKIP LOCKED;
        END IF;
        IF v_seq IS NOT NULL THEN
            RETURN v_seq;
        END IF;
    END IF;
    LOOP
        v_seq := pharox_pick(p_pool, p_selector, p_cursor, p_filter, p_texts, p_nums);
        IF v_seq IS NULL THEN
            RETURN NULL;
        END IF;
        IF p_wait THEN
            PERFORM 1 FROM pharox_proxies p
            WHERE p.pool_id = p_pool AND p.seq = v_seq
              AND p.status = 'active' AND p.current_leases < p.capacity
            FOR UPDATE;
            IF FOUND THEN
                RETURN v_seq;
            END IF;
        ELSE
            PERFORM 1 FROM pharox_proxies p
            WHERE p.pool_id = p_pool AND p.seq = v_seq
              AND p.status = 'active' AND p.current_leases < p.capacity
            FOR UPDATE SKIP LOCKED;
            IF FOUND THEN
                RETURN v_seq;
            END IF;
            -- Still free (held by another call), or taken (progress)?
            PERFORM 1 FROM pharox_proxies p
            WHERE p.pool_id = p_pool AND p.seq = v_seq
              AND p.status = 'active' AND p.current_leases < p.capacity;
            IF FOUND THEN
                v_skipped := v_skipped + 1;
                IF v_skipped >= 8 THEN
                    RETURN NULL;
                END IF;
            END IF;
        END IF;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION pharox_acquire(
    p_pool text, p_lease uuid, p_consumer text, p_duration_ms bigint,
    p_selector integer, p_filter text, p_texts text[], p_nums double precision[],
    p_reclaim integer)
RETURNS TABLE (
    outcome integer, token bigint, acquired_at timestamptz, expires_at timestamptz,
    proxy_id text, host text, port integer, protocol text, username text, password text)
LANGUAGE plpgsql
AS $$
DECLARE
    v_cursor bigint;
    v_now timestamptz;
    v_seq bigint;
    v_px pharox_proxies;
    v_token bigint;
    v_expires timestamptz;
    v_r record;
BEGIN
    IF p_selector = 2 THEN
        -- Round robin: the cursor is the pool's, one acquire at a time.
        SELECT p.rr_cursor INTO v_cursor FROM pharox_pools p WHERE p.id = p_pool
        FOR NO KEY UPDATE;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 404, NULL::bigint, NULL::timestamptz, NULL::timestamptz,
                NULL::text, NULL::text, NULL::integer, NULL::text, NULL::text, NULL::text;
            RETURN;
        END IF;
    END IF;
    v_now := clock_timestamp();
    SELECT * INTO v_r FROM pharox_reclaim_free(p_pool, v_now, p_reclaim);
    -- Wait for a proxy only while holding none (see pharox_pick_lock).
    v_seq := pharox_pick_lock(p_pool, p_selector, v_cursor, p_filter, p_texts, p_nums,
                              v_r.held = 0);
    IF v_seq IS NULL THEN
        IF v_r.n > 0 THEN
            PERFORM pharox_count(p_pool, v_r.free, v_r.leased, -v_r.n, 0, 0, v_r.n);
        END IF;
        -- A pool that does not exist has no proxies: asked only now.
        PERFORM 1 FROM pharox_pools p WHERE p.id = p_pool;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 404, NULL::bigint, NULL::timestamptz, NULL::timestamptz,
                NULL::text, NULL::text, NULL::integer, NULL::text, NULL::text, NULL::text;
            RETURN;
        END IF;
        RETURN QUERY SELECT 0, NULL::bigint, NULL::timestamptz, NULL::timestamptz,
            NULL::text, NULL::text, NULL::integer, NULL::text, NULL::text, NULL::text;
        RETURN;
    END IF;
    -- Read after the proxy's lock: later than any lease of it that ended.
    v_now := clock_timestamp();
    v_token := nextval('pharox_tokens');
    v_expires := v_now + p_duration_ms * interval '1 millisecond';
    UPDATE pharox_proxies x SET current_leases = x.current_leases + 1
    WHERE x.pool_id = p_pool AND x.seq = v_seq
    RETURNING * INTO v_px;
    INSERT INTO pharox_leases (id, pool_id, token, proxy_seq, consumer, acquired_at, expires_at)
    VALUES (p_lease, p_pool, v_token, v_seq, p_consumer, v_now, v_expires);
    IF p_selector = 2 THEN
        UPDATE pharox_pools SET rr_cursor = v_seq WHERE id = p_pool;
    END IF;
    PERFORM pharox_count(p_pool,
        v_r.free - 1 + pharox_is_free(v_px.status, v_px.current_leases, v_px.capacity),
        v_r.leased + (v_px.current_leases = 1)::integer,
        1 - v_r.n, 1, 0, v_r.n);
    RETURN QUERY SELECT 1, v_token, v_now, v_expires, v_px.id, v_px.host, v_px.port,
        v_px.protocol, v_px.username, v_px.password;
END
$$;

CREATE OR REPLACE FUNCTION pharox_find(
    p_pool text, p_selector integer, p_filter text, p_texts text[],
    p_nums double precision[], p_reclaim integer)
RETURNS TABLE (outcome integer, proxy_id text)
LANGUAGE plpgsql
AS $$
DECLARE
    v_cursor bigint;
    v_seq bigint;
    v_r record;
BEGIN
    SELECT p.rr_cursor INTO v_cursor FROM pharox_pools p WHERE p.id = p_pool;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 404, NULL::text;
        RETURN;
    END IF;
    SELECT * INTO v_r FROM pharox_reclaim_free(p_pool, clock_timestamp(), p_reclaim);
    IF v_r.n > 0 THEN
        PERFORM pharox_count(p_pool, v_r.free, v_r.leased, -v_r.n, 0, 0, v_r.n);
    END IF;
    v_seq := pharox_pick(p_pool, p_selector, v_cursor, p_filter, p_texts, p_nums);
    IF v_seq IS NOT NULL THEN
        RETURN QUERY SELECT 1, x.id FROM pharox_proxies x
            WHERE x.pool_id = p_pool AND x.seq = v_seq;
    END IF;
END
$$;

-- Ends the lease `p_id` of the proxy `p_seq` (matching `p_token` when
-- given): locks the proxy first, then deletes the lease, gives its slot
-- back and counts it (expired when past its deadline now, or when
-- `p_expired`). No row: the lease is not held (anymore).
CREATE FUNCTION pharox_end_locked(
    p_pool text, p_id uuid, p_seq bigint, p_token bigint, p_expired boolean)
RETURNS TABLE (lease pharox_leases, px pharox_proxies, expired boolean)
LANGUAGE plpgsql
AS $$
DECLARE
    v_lease pharox_leases;
    v_px pharox_proxies;
    v_expired boolean;
BEGIN
    PERFORM 1 FROM pharox_proxies x WHERE x.pool_id = p_pool AND x.seq = p_seq FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    DELETE FROM pharox_leases l
    WHERE l.id = p_id AND l.pool_id = p_pool AND l.proxy_seq = p_seq
      AND (p_token IS NULL OR l.token = p_token)
    RETURNING * INTO v_lease;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    v_expired := p_expired OR v_lease.expires_at <= clock_timestamp();
    UPDATE pharox_proxies x SET current_leases = x.current_leases - 1
    WHERE x.pool_id = p_pool AND x.seq = p_seq
    RETURNING * INTO v_px;
    PERFORM pharox_count(p_pool,
        pharox_is_free(v_px.status, v_px.current_leases, v_px.capacity)
            - pharox_is_free(v_px.status, v_px.current_leases + 1, v_px.capacity),
        -(v_px.current_leases = 0)::integer,
        -1, 0, (NOT v_expired)::integer, v_expired::integer);
    RETURN QUERY SELECT v_lease, v_px, v_expired;
END
$$;

CREATE OR REPLACE FUNCTION pharox_release(p_pool text, p_lease uuid, p_token bigint)
RETURNS TABLE (
    outcome integer, token bigint, consumer text, acquired_at timestamptz,
    expires_at timestamptz, proxy_id text, host text, port integer, protocol text,
    username text, password text)
LANGUAGE plpgsql
AS $$
DECLARE
    v_seq bigint;
    v_lease pharox_leases;
    v_px pharox_proxies;
    v_expired boolean;
BEGIN
    SELECT l.proxy_seq INTO v_seq FROM pharox_leases l
    WHERE l.id = p_lease AND l.pool_id = p_pool AND (p_token IS NULL OR l.token = p_token);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- pharox_end_locked, inline (the hot path).
    PERFORM 1 FROM pharox_proxies x WHERE x.pool_id = p_pool AND x.seq = v_seq FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    DELETE FROM pharox_leases l
    WHERE l.id = p_lease AND l.pool_id = p_pool AND l.proxy_seq = v_seq
      AND (p_token IS NULL OR l.token = p_token)
    RETURNING * INTO v_lease;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    v_expired := v_lease.expires_at <= clock_timestamp();
    UPDATE pharox_proxies x SET current_leases = x.current_leases - 1
    WHERE x.pool_id = p_pool AND x.seq = v_seq
    RETURNING * INTO v_px;
    PERFORM pharox_count(p_pool,
        pharox_is_free(v_px.status, v_px.current_leases, v_px.capacity)
            - pharox_is_free(v_px.status, v_px.current_leases + 1, v_px.capacity),
        -(v_px.current_leases = 0)::integer,
        -1, 0, (NOT v_expired)::integer, v_expired::integer);
    RETURN QUERY SELECT CASE WHEN v_expired THEN 2 ELSE 1 END, v_lease.token,
        v_lease.consumer, v_lease.acquired_at, v_lease.expires_at, v_px.id, v_px.host,
        v_px.port, v_px.protocol, v_px.username, v_px.password;
END
$$;

CREATE OR REPLACE FUNCTION pharox_renew(
    p_pool text, p_lease uuid, p_token bigint, p_duration_ms bigint)
RETURNS TABLE (
    token bigint, consumer text, acquired_at timestamptz, expires_at timestamptz,
    proxy_id text, host text, port integer, protocol text, username text, password text)
LANGUAGE plpgsql
AS $$
DECLARE
    v_lease pharox_leases;
    v_now timestamptz;
    v_px pharox_proxies;
BEGIN
    v_now := clock_timestamp();
    -- Live: extended in place (the lease's row lock only; nothing after).
    UPDATE pharox_leases l SET expires_at = v_now + p_duration_ms * interval '1 millisecond'
    WHERE l.id = p_lease AND l.pool_id = p_pool AND (p_token IS NULL OR l.token = p_token)
      AND l.expires_at > v_now
    RETURNING * INTO v_lease;
    IF FOUND THEN
        SELECT * INTO v_px FROM pharox_proxies x
        WHERE x.pool_id = p_pool AND x.seq = v_lease.proxy_seq;
        RETURN QUERY SELECT v_lease.token, v_lease.consumer, v_lease.acquired_at,
            v_lease.expires_at, v_px.id, v_px.host, v_px.port, v_px.protocol,
            v_px.username, v_px.password;
        RETURN;
    END IF;
    -- Past its deadline (or gone): reclaimed now, counted expired.
    SELECT * INTO v_lease FROM pharox_leases l
    WHERE l.id = p_lease AND l.pool_id = p_pool AND (p_token IS NULL OR l.token = p_token)
      AND l.expires_at <= v_now;
    IF FOUND THEN
        PERFORM pharox_end_locked(p_pool, p_lease, v_lease.proxy_seq, p_token, true);
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION pharox_cleanup(p_pool text, p_limit integer)
RETURNS integer LANGUAGE plpgsql
AS $$
DECLARE
    v_r record;
BEGIN
    PERFORM 1 FROM pharox_pools WHERE id = p_pool;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    -- Skipping the proxies other calls hold (the next sweep gets them): a
    -- sweep that waited could deadlock with an acquire waiting for a proxy
    -- while it holds those whose leases it reclaimed.
    SELECT * INTO v_r FROM pharox_reclaim_free(p_pool, clock_timestamp(), p_limit);
    IF v_r.n > 0 THEN
        PERFORM pharox_count(p_pool, v_r.free, v_r.leased, -v_r.n, 0, 0, v_r.n);
    END IF;
    RETURN v_r.n;
END
$$;

-- What an upsert does last: reclaims its pool's due leases, up to
-- MAX_CLEANUP_BATCH (10,000) as every store does, skipping proxies other
-- calls hold, and counts them (the shard last, in the lock order).
CREATE FUNCTION pharox_upsert_reclaim(p_pool text)
RETURNS void LANGUAGE plpgsql
AS $$
DECLARE
    v_r record;
BEGIN
    SELECT * INTO v_r FROM pharox_reclaim_free(p_pool, clock_timestamp(), 10000);
    IF v_r.n > 0 THEN
        PERFORM pharox_count(p_pool, v_r.free, v_r.leased, -v_r.n, 0, 0, v_r.n);
    END IF;
END
$$;

-- Admin operations: the pool's row (FOR NO KEY UPDATE: a proxy insert's
-- key check still passes), then the proxy's row before reading it, since
-- lease operations change it without the pool's lock.
CREATE OR REPLACE FUNCTION pharox_upsert_proxy(
    p_pool text, p_id text, p_host text, p_port integer, p_protocol text,
    p_username text, p_password text, p_status text, p_checked_at timestamptz,
    p_latency_ms bigint, p_source text, p_country text, p_country_key text, p_city text,
    p_latitude double precision, p_longitude double precision, p_isp text, p_asn bigint,
    p_max_concurrency integer, p_capacity integer, p_extra jsonb, p_max_proxies bigint)
RETURNS TABLE (outcome integer, n bigint)
LANGUAGE plpgsql
AS $$
DECLARE
    v_pool pharox_pools;
    v_old pharox_proxies;
    v_new pharox_proxies;
BEGIN
    SELECT * INTO v_pool FROM pharox_pools WHERE id = p_pool FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 404, 0::bigint;
        RETURN;
    END IF;
    SELECT * INTO v_old FROM pharox_proxies x WHERE x.pool_id = p_pool AND x.id = p_id
    FOR UPDATE;
    IF FOUND THEN
        -- Leases past their deadline must not count against a lowered cap.
        IF pharox_reclaim(p_pool, clock_timestamp(), 2147483647, v_old.seq) > 0 THEN
            SELECT * INTO v_old FROM pharox_proxies x WHERE x.pool_id = p_pool AND x.id = p_id;
        END IF;
        IF p_max_concurrency IS NOT NULL AND p_max_concurrency < v_old.current_leases THEN
            RETURN QUERY SELECT 1, v_old.current_leases::bigint;
            RETURN;
        END IF;
        UPDATE pharox_proxies x SET
            host = p_host, port = p_port, protocol = p_protocol, username = p_username,
            password = p_password, status = p_status, checked_at = p_checked_at,
            latency_ms = p_latency_ms, source = p_source, country = p_country,
            country_key = p_country_key, city = p_city, latitude = p_latitude,
            longitude = p_longitude, isp = p_isp, asn = p_asn,
            max_concurrency = p_max_concurrency, capacity = p_capacity, extra = p_extra
        WHERE x.pool_id = p_pool AND x.id = p_id
        RETURNING * INTO v_new;
        UPDATE pharox_pools SET
            proxies_active = proxies_active
                + (v_new.status = 'active')::integer - (v_old.status = 'active')::integer,
            proxies_available = proxies_available
                + pharox_is_free(v_new.status, v_new.current_leases, v_new.capacity)
                - pharox_is_free(v_old.status, v_old.current_leases, v_old.capacity)
        WHERE id = p_pool;
        PERFORM pharox_upsert_reclaim(p_pool);
        RETURN QUERY SELECT 0, v_new.current_leases::bigint;
        RETURN;
    END IF;
    IF v_pool.proxies_total >= p_max_proxies THEN
        RETURN QUERY SELECT 2, v_pool.proxies_total;
        RETURN;
    END IF;
    INSERT INTO pharox_proxies (
        pool_id, id, seq, host, port, protocol, username, password, status, checked_at,
        latency_ms, source, country, country_key, city, latitude, longitude, isp, asn,
        max_concurrency, capacity, current_leases, extra)
    VALUES (
        p_pool, p_id, v_pool.next_seq, p_host, p_port, p_protocol, p_username, p_password,
        p_status, p_checked_at, p_latency_ms, p_source, p_country, p_country_key, p_city,
        p_latitude, p_longitude, p_isp, p_asn, p_max_concurrency, p_capacity, 0, p_extra)
    RETURNING * INTO v_new;
    UPDATE pharox_pools SET
        next_seq = next_seq + 1,
        proxies_total = proxies_total + 1,
        proxies_active = proxies_active + (v_new.status = 'active')::integer,
        proxies_available = proxies_available
            + pharox_is_free(v_new.status, 0, v_new.capacity)
    WHERE id = p_pool;
    PERFORM pharox_upsert_reclaim(p_pool);
    RETURN QUERY SELECT 0, 0::bigint;
END
$$;

CREATE OR REPLACE FUNCTION pharox_remove_proxy(p_pool text, p_id text)
RETURNS integer LANGUAGE plpgsql
AS $$
DECLARE
    v_px pharox_proxies;
    v_n bigint;
BEGIN
    PERFORM 1 FROM pharox_pools WHERE id = p_pool FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN 404;
    END IF;
    -- The delete locks the proxy and returns its newest version.
    DELETE FROM pharox_proxies x WHERE x.pool_id = p_pool AND x.id = p_id
    RETURNING * INTO v_px;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    WITH gone AS (
        DELETE FROM pharox_leases l WHERE l.pool_id = p_pool AND l.proxy_seq = v_px.seq
        RETURNING 1
    )
    SELECT count(*) INTO v_n FROM gone;
    UPDATE pharox_pools SET
        proxies_total = proxies_total - 1,
        proxies_active = proxies_active - (v_px.status = 'active')::integer,
        proxies_available = proxies_available
            - pharox_is_free(v_px.status, v_px.current_leases, v_px.capacity),
        proxies_leased = proxies_leased - (v_px.current_leases > 0)::integer,
        active_leases = active_leases - v_n,
        released_leases = released_leases + v_n
    WHERE id = p_pool;
    RETURN 1;
END
$$;

CREATE OR REPLACE FUNCTION pharox_health(
    p_pool text, p_id text, p_status text, p_checked_at timestamptz, p_latency_ms bigint)
RETURNS SETOF pharox_proxies LANGUAGE plpgsql
AS $$
DECLARE
    v_old pharox_proxies;
    v_new pharox_proxies;
BEGIN
    PERFORM 1 FROM pharox_pools WHERE id = p_pool FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT * INTO v_old FROM pharox_proxies x WHERE x.pool_id = p_pool AND x.id = p_id
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF v_old.checked_at IS NOT NULL AND p_checked_at < v_old.checked_at THEN
        RETURN NEXT v_old;
        RETURN;
    END IF;
    UPDATE pharox_proxies x SET
        status = p_status, checked_at = p_checked_at,
        latency_ms = coalesce(p_latency_ms, x.latency_ms)
    WHERE x.pool_id = p_pool AND x.id = p_id
    RETURNING * INTO v_new;
    UPDATE pharox_pools SET
        proxies_active = proxies_active
            + (v_new.status = 'active')::integer - (v_old.status = 'active')::integer,
        proxies_available = proxies_available
            + pharox_is_free(v_new.status, v_new.current_leases, v_new.capacity)
            - pharox_is_free(v_old.status, v_old.current_leases, v_old.capacity)
    WHERE id = p_pool;
    RETURN NEXT v_new;
END
$$;

-- Removes a pool with its proxies, counters and leases. Tokens come from
-- the shared sequence, so a pool re-created later continues above them.
CREATE OR REPLACE FUNCTION pharox_remove_pool(p_pool text)
RETURNS boolean LANGUAGE plpgsql
AS $$
BEGIN
    -- NO KEY UPDATE, not UPDATE: a lease operation that changes a proxy a
    -- second time in its transaction checks the proxy's foreign key (FOR
    -- KEY SHARE on this row) while it holds the proxy, which the deletion
    -- below waits for. The pool's row is deleted last, when no proxy is
    -- left to hold.
    PERFORM 1 FROM pharox_pools WHERE id = p_pool FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- The proxies first, waiting for the lease operations that hold them
    -- (each takes its counter shard after its proxy: deleting the shards
    -- first, as the cascade would, could deadlock with one), then every
    -- lease those left, then the pool with its shards.
    DELETE FROM pharox_proxies WHERE pool_id = p_pool;
    DELETE FROM pharox_leases WHERE pool_id = p_pool;
    DELETE FROM pharox_pools WHERE id = p_pool;
    RETURN true;
END
$$;
