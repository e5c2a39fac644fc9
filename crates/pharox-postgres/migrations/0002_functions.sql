-- pharox schema, version 2: the functions every write goes through.
--
-- Why functions: each call is one statement and one round trip
-- (`SELECT * FROM pharox_acquire(...)`), like a data-modifying CTE, but a
-- single CTE statement reads every table through the snapshot taken when
-- it started, before it waited for the pool's row lock: it would pick from
-- a view in which proxies freed meanwhile still look full, and miss (the
-- failure the Python adapter had). A PL/pgSQL function (READ COMMITTED)
-- takes the pool's row lock first, and each statement after it reads a
-- fresh snapshot in which every earlier write to the pool has committed.
--
-- Lock order, the same in every function: the pool's row (FOR UPDATE),
-- then its leases and proxies. Every write to a pool's proxies, leases or
-- counters holds that row lock, so the counters are exact and an acquire
-- never sees half of another call. Time is the server's `clock_timestamp()`
-- read after the lock (not `now()`, the start of a transaction that may
-- have waited).
--
-- Outcome codes returned to the adapter (src/sql.rs mirrors them):
--   404 the pool does not exist.

-- Whether a proxy with these fields can take a lease: the partial indexes'
-- predicate, and what `proxies_available` counts.
CREATE FUNCTION pharox_is_free(p_status text, p_leases integer, p_capacity integer)
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT (p_status = 'active' AND p_leases < p_capacity)::integer $$;

-- Great-circle distance in km, the same arithmetic, in the same order, as
-- pharox_core::filter::haversine_km, so both agree on a radius's boundary.
CREATE FUNCTION pharox_haversine_km(
    lat1 double precision, lon1 double precision,
    lat2 double precision, lon2 double precision)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT 2.0::double precision * 6371.0088::double precision * asin(least(sqrt(
        (sin((radians(lat2) - radians(lat1)) / 2.0::double precision)
            * sin((radians(lat2) - radians(lat1)) / 2.0::double precision))
        + cos(radians(lat1)) * cos(radians(lat2))
            * (sin(radians(lon2 - lon1) / 2.0::double precision)
                * sin(radians(lon2 - lon1) / 2.0::double precision))
    ), 1.0::double precision))
$$;

-- Ends the expired leases of a pool (of one proxy when `p_seq` is set),
-- oldest deadline first, at most `p_limit`, as expired; keeps the proxies'
-- lease counts and the pool's counters. The caller holds the pool's lock.
CREATE FUNCTION pharox_reclaim(p_pool text, p_now timestamptz, p_limit integer, p_seq bigint)
RETURNS integer LANGUAGE plpgsql
AS $$
DECLARE
    v_n bigint;
    v_free bigint;
    v_leased bigint;
BEGIN
    IF p_seq IS NULL THEN
        WITH gone AS (
            DELETE FROM pharox_leases l
            WHERE l.id IN (SELECT e.id FROM pharox_leases e
                           WHERE e.pool_id = p_pool AND e.expires_at <= p_now
                           ORDER BY e.expires_at LIMIT p_limit)
            RETURNING l.proxy_seq
        ), per AS (
            SELECT g.proxy_seq, count(*)::integer AS n FROM gone g GROUP BY g.proxy_seq
        ), upd AS (
            UPDATE pharox_proxies x SET current_leases = x.current_leases - per.n
            FROM per WHERE x.pool_id = p_pool AND x.seq = per.proxy_seq
            RETURNING x.status, x.current_leases AS after, x.capacity, per.n
        )
        SELECT coalesce(sum(u.n), 0),
               coalesce(sum(pharox_is_free(u.status, u.after, u.capacity)
                            - pharox_is_free(u.status, u.after + u.n, u.capacity)), 0),
               coalesce(sum((u.after > 0)::integer - 1), 0)
        INTO v_n, v_free, v_leased FROM upd u;
    ELSE
        WITH gone AS (
            DELETE FROM pharox_leases l
            WHERE l.pool_id = p_pool AND l.proxy_seq = p_seq AND l.expires_at <= p_now
            RETURNING l.proxy_seq
        ), per AS (
            SELECT g.proxy_seq, count(*)::integer AS n FROM gone g GROUP BY g.proxy_seq
        ), upd AS (
            UPDATE pharox_proxies x SET current_leases = x.current_leases - per.n
            FROM per WHERE x.pool_id = p_pool AND x.seq = per.proxy_seq
            RETURNING x.status, x.current_leases AS after, x.capacity, per.n
        )
        SELECT coalesce(sum(u.n), 0),
               coalesce(sum(pharox_is_free(u.status, u.after, u.capacity)
                            - pharox_is_free(u.status, u.after + u.n, u.capacity)), 0),
               coalesce(sum((u.after > 0)::integer - 1), 0)
        INTO v_n, v_free, v_leased FROM upd u;
    END IF;
    IF v_n > 0 THEN
        UPDATE pharox_pools SET
            active_leases = active_leases - v_n,
            expired_leases = expired_leases + v_n,
            proxies_available = proxies_available + v_free,
            proxies_leased = proxies_leased + v_leased
        WHERE id = p_pool;
    END IF;
    RETURN v_n;
END
$$;

-- The sequence number of the proxy a selector picks among those that can
-- take a lease and pass the filter, or NULL.
--
-- `p_filter` is NULL (no filter) or an SQL condition on the alias `p` that
-- src/filter_sql.rs builds from a fixed grammar: column names, operators
-- and placeholders only, every value in `p_texts` ($2) and `p_nums` ($3).
-- It runs with the caller's rights (SECURITY INVOKER), like any statement
-- the caller could send.
-- Selectors: 0 first available, 1 least used, 2 round robin (after
-- `p_cursor`, wrapping), 3 lowest latency (unknown last), ties by sequence.
CREATE FUNCTION pharox_pick(
    p_pool text, p_selector integer, p_cursor bigint,
    p_filter text, p_texts text[], p_nums double precision[])
RETURNS bigint LANGUAGE plpgsql
AS $$
DECLARE
    v_seq bigint;
    v_order text;
    v_free text;
    v_range text;
    v_pass integer;
BEGIN
    IF p_filter IS NULL THEN
        -- Static statements: plans cached for the session.
        IF p_selector = 0 THEN
            SELECT p.seq INTO v_seq FROM pharox_proxies p
            WHERE p.pool_id = p_pool AND p.status = 'active' AND p.current_leases < p.capacity
            ORDER BY p.seq LIMIT 1;
        ELSIF p_selector = 1 THEN
            SELECT p.seq INTO v_seq FROM pharox_proxies p
            WHERE p.pool_id = p_pool AND p.status = 'active' AND p.current_leases < p.capacity
            ORDER BY p.current_leases, p.seq LIMIT 1;
        ELSIF p_selector = 2 THEN
            SELECT p.seq INTO v_seq FROM pharox_proxies p
            WHERE p.pool_id = p_pool AND p.status = 'active' AND p.current_leases < p.capacity
              AND p.seq > coalesce(p_cursor, -1)
            ORDER BY p.seq LIMIT 1;
            IF v_seq IS NULL THEN
                SELECT p.seq INTO v_seq FROM pharox_proxies p
                WHERE p.pool_id = p_pool AND p.status = 'active' AND p.current_leases < p.capacity
                ORDER BY p.seq LIMIT 1;
            END IF;
        ELSE
            SELECT p.seq INTO v_seq FROM pharox_proxies p
            WHERE p.pool_id = p_pool AND p.status = 'active' AND p.current_leases < p.capacity
            ORDER BY coalesce(p.latency_ms, 4294967295), p.seq LIMIT 1;
        END IF;
        RETURN v_seq;
    END IF;
    v_order := CASE p_selector
        WHEN 1 THEN 'p.current_leases, p.seq'
        WHEN 3 THEN 'coalesce(p.latency_ms, 4294967295), p.seq'
        ELSE 'p.seq' END;
    v_free := 'p.pool_id = $1 AND p.status = ''active'' AND p.current_leases < p.capacity';
    -- Round robin looks after the cursor first, then wraps to the start.
    FOR v_pass IN 1..(CASE WHEN p_selector = 2 THEN 2 ELSE 1 END) LOOP
        v_range := CASE WHEN p_selector = 2 AND v_pass = 1 THEN ' AND p.seq > $4' ELSE '' END;
        -- 1: the first free proxies in the selector's order, filtered. If
        -- one of them matches, the first that does is the answer (same
        -- order); a filter most proxies pass ends here, reading 64 rows.
        EXECUTE 'SELECT p.seq FROM (SELECT * FROM pharox_proxies p WHERE ' || v_free
            || v_range || ' ORDER BY ' || v_order || ' LIMIT 64) p WHERE (' || p_filter
            || ') ORDER BY ' || v_order || ' LIMIT 1'
            INTO v_seq USING p_pool, p_texts, p_nums, coalesce(p_cursor, -1);
        IF v_seq IS NOT NULL THEN
            RETURN v_seq;
        END IF;
        -- 2: a selective filter: its matches first, through the filter's
        -- index (OFFSET 0 keeps the planner from trading it for the
        -- order's index), then the order among them.
        EXECUTE 'SELECT p.seq FROM (SELECT p.seq, p.current_leases, p.latency_ms FROM '
            || 'pharox_proxies p WHERE ' || v_free || v_range || ' AND (' || p_filter
            || ') OFFSET 0) p ORDER BY ' || v_order || ' LIMIT 1'
            INTO v_seq USING p_pool, p_texts, p_nums, coalesce(p_cursor, -1);
        IF v_seq IS NOT NULL THEN
            RETURN v_seq;
        END IF;
    END LOOP;
    RETURN v_seq;
END
$$;

-- Acquire: lock the pool, reclaim up to `p_reclaim` expired leases, pick,
-- lease for `p_duration_ms`, bump the token, the counters and the
-- round-robin cursor. outcome: 0 no proxy qualifies, 1 leased, 404.
CREATE FUNCTION pharox_acquire(
    p_pool text, p_lease uuid, p_consumer text, p_duration_ms bigint,
    p_selector integer, p_filter text, p_texts text[], p_nums double precision[],
    p_reclaim integer)
RETURNS TABLE (
    outcome integer, token bigint, acquired_at timestamptz, expires_at timestamptz,
    proxy_id text, host text, port integer, protocol text, username text, password text)
LANGUAGE plpgsql
AS $$
DECLARE
    v_pool pharox_pools;
    v_now timestamptz;
    v_seq bigint;
    v_px pharox_proxies;
    v_token bigint;
    v_expires timestamptz;
BEGIN
    SELECT * INTO v_pool FROM pharox_pools WHERE id = p_pool FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 404, NULL::bigint, NULL::timestamptz, NULL::timestamptz,
            NULL::text, NULL::text, NULL::integer, NULL::text, NULL::text, NULL::text;
        RETURN;
    END IF;
    v_now := clock_timestamp();
    PERFORM pharox_reclaim(p_pool, v_now, p_reclaim, NULL);
    v_seq := pharox_pick(p_pool, p_selector, v_pool.rr_cursor, p_filter, p_texts, p_nums);
    IF v_seq IS NULL THEN
        RETURN QUERY SELECT 0, NULL::bigint, NULL::timestamptz, NULL::timestamptz,
            NULL::text, NULL::text, NULL::integer, NULL::text, NULL::text, NULL::text;
        RETURN;
    END IF;
    v_expires := v_now + p_duration_ms * interval '1 millisecond';
    UPDATE pharox_proxies x SET current_leases = x.current_leases + 1
    WHERE x.pool_id = p_pool AND x.seq = v_seq
    RETURNING * INTO v_px;
    UPDATE pharox_pools SET
        last_token = last_token + 1,
        total_leases = total_leases + 1,
        active_leases = active_leases + 1,
        proxies_available = proxies_available
            - 1 + pharox_is_free(v_px.status, v_px.current_leases, v_px.capacity),
        proxies_leased = proxies_leased + (v_px.current_leases = 1)::integer,
        rr_cursor = CASE WHEN p_selector = 2 THEN v_seq ELSE rr_cursor END
    WHERE id = p_pool
    RETURNING last_token INTO v_token;
    INSERT INTO pharox_leases (id, pool_id, token, proxy_seq, consumer, acquired_at, expires_at)
    VALUES (p_lease, p_pool, v_token, v_seq, p_consumer, v_now, v_expires);
    RETURN QUERY SELECT 1, v_token, v_now, v_expires, v_px.id, v_px.host, v_px.port,
        v_px.protocol, v_px.username, v_px.password;
END
$$;

-- The proxy an acquire would pick now, without leasing it or moving the
-- cursor (it may reclaim expired leases first, as any call may).
-- No row: nothing qualifies; outcome 404: no such pool.
CREATE FUNCTION pharox_find(
    p_pool text, p_selector integer, p_filter text, p_texts text[],
    p_nums double precision[], p_reclaim integer)
RETURNS TABLE (outcome integer, proxy_id text)
LANGUAGE plpgsql
AS $$
DECLARE
    v_pool pharox_pools;
    v_seq bigint;
BEGIN
    SELECT * INTO v_pool FROM pharox_pools WHERE id = p_pool FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 404, NULL::text;
        RETURN;
    END IF;
    PERFORM pharox_reclaim(p_pool, clock_timestamp(), p_reclaim, NULL);
    v_seq := pharox_pick(p_pool, p_selector, v_pool.rr_cursor, p_filter, p_texts, p_nums);
    IF v_seq IS NOT NULL THEN
        RETURN QUERY SELECT 1, x.id FROM pharox_proxies x
            WHERE x.pool_id = p_pool AND x.seq = v_seq;
    END IF;
END
$$;

-- Ends a live lease (deleted) and gives its slot back: counted as expired
-- when `p_expired`, else as released. The caller holds the pool's lock.
CREATE FUNCTION pharox_end_lease(p_lease pharox_leases, p_expired boolean)
RETURNS pharox_proxies LANGUAGE plpgsql
AS $$
DECLARE
    v_px pharox_proxies;
BEGIN
    DELETE FROM pharox_leases WHERE id = p_lease.id;
    UPDATE pharox_proxies x SET current_leases = x.current_leases - 1
    WHERE x.pool_id = p_lease.pool_id AND x.seq = p_lease.proxy_seq
    RETURNING * INTO v_px;
    UPDATE pharox_pools SET
        active_leases = active_leases - 1,
        released_leases = released_leases + (NOT p_expired)::integer,
        expired_leases = expired_leases + p_expired::integer,
        proxies_available = proxies_available
            + pharox_is_free(v_px.status, v_px.current_leases, v_px.capacity)
            - pharox_is_free(v_px.status, v_px.current_leases + 1, v_px.capacity),
        proxies_leased = proxies_leased - (v_px.current_leases = 0)::integer
    WHERE id = p_lease.pool_id;
    RETURN v_px;
END
$$;

-- Release by id (and token when given). outcome: 1 released, 2 it was past
-- its deadline (reclaimed now, counted expired); no row: nothing held.
CREATE FUNCTION pharox_release(p_pool text, p_lease uuid, p_token bigint)
RETURNS TABLE (
    outcome integer, token bigint, consumer text, acquired_at timestamptz,
    expires_at timestamptz, proxy_id text, host text, port integer, protocol text,
    username text, password text)
LANGUAGE plpgsql
AS $$
DECLARE
    v_lease pharox_leases;
    v_expired boolean;
    v_px pharox_proxies;
BEGIN
    PERFORM 1 FROM pharox_pools WHERE id = p_pool FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT * INTO v_lease FROM pharox_leases l
    WHERE l.id = p_lease AND l.pool_id = p_pool AND (p_token IS NULL OR l.token = p_token);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    v_expired := v_lease.expires_at <= clock_timestamp();
    v_px := pharox_end_lease(v_lease, v_expired);
    RETURN QUERY SELECT CASE WHEN v_expired THEN 2 ELSE 1 END, v_lease.token,
        v_lease.consumer, v_lease.acquired_at, v_lease.expires_at, v_px.id, v_px.host,
        v_px.port, v_px.protocol, v_px.username, v_px.password;
END
$$;

-- Renew: a live lease now lasts until now + `p_duration_ms`. A lease past
-- its deadline is reclaimed (counted expired). No row: not held (lost).
CREATE FUNCTION pharox_renew(p_pool text, p_lease uuid, p_token bigint, p_duration_ms bigint)
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
    PERFORM 1 FROM pharox_pools WHERE id = p_pool FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT * INTO v_lease FROM pharox_leases l
    WHERE l.id = p_lease AND l.pool_id = p_pool AND (p_token IS NULL OR l.token = p_token);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    v_now := clock_timestamp();
    IF v_lease.expires_at <= v_now THEN
        PERFORM pharox_end_lease(v_lease, true);
        RETURN;
    END IF;
    UPDATE pharox_leases l SET expires_at = v_now + p_duration_ms * interval '1 millisecond'
    WHERE l.id = p_lease
    RETURNING l.expires_at INTO v_lease.expires_at;
    SELECT * INTO v_px FROM pharox_proxies x
    WHERE x.pool_id = p_pool AND x.seq = v_lease.proxy_seq;
    RETURN QUERY SELECT v_lease.token, v_lease.consumer, v_lease.acquired_at,
        v_lease.expires_at, v_px.id, v_px.host, v_px.port, v_px.protocol, v_px.username,
        v_px.password;
END
$$;

-- Reclaims up to `p_limit` expired leases; NULL: no such pool.
CREATE FUNCTION pharox_cleanup(p_pool text, p_limit integer)
RETURNS integer LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM 1 FROM pharox_pools WHERE id = p_pool FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN pharox_reclaim(p_pool, clock_timestamp(), p_limit, NULL);
END
$$;

-- Adds a proxy (at the next sequence number) or updates it in place,
-- keeping its leases. outcome: 0 stored (n = its live leases), 1 the new
-- max_concurrency is below its n live leases, 2 the pool is full (n
-- proxies, at least `p_max_proxies`), 404.
CREATE FUNCTION pharox_upsert_proxy(
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
    SELECT * INTO v_pool FROM pharox_pools WHERE id = p_pool FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 404, 0::bigint;
        RETURN;
    END IF;
    SELECT * INTO v_old FROM pharox_proxies x WHERE x.pool_id = p_pool AND x.id = p_id;
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
    RETURN QUERY SELECT 0, 0::bigint;
END
$$;

-- Removes a proxy; its live leases end at once, counted as released.
-- 0 no such proxy, 1 removed, 404.
CREATE FUNCTION pharox_remove_proxy(p_pool text, p_id text)
RETURNS integer LANGUAGE plpgsql
AS $$
DECLARE
    v_px pharox_proxies;
    v_n bigint;
BEGIN
    PERFORM 1 FROM pharox_pools WHERE id = p_pool FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 404;
    END IF;
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

-- Records a health check (status, checked_at, latency when given) unless a
-- newer one landed already. No row: unknown pool or proxy.
CREATE FUNCTION pharox_health(
    p_pool text, p_id text, p_status text, p_checked_at timestamptz, p_latency_ms bigint)
RETURNS SETOF pharox_proxies LANGUAGE plpgsql
AS $$
DECLARE
    v_old pharox_proxies;
    v_new pharox_proxies;
BEGIN
    PERFORM 1 FROM pharox_pools WHERE id = p_pool FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT * INTO v_old FROM pharox_proxies x WHERE x.pool_id = p_pool AND x.id = p_id;
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

-- Removes a pool with its proxies and leases, keeping its last token.
CREATE FUNCTION pharox_remove_pool(p_pool text)
RETURNS boolean LANGUAGE plpgsql
AS $$
DECLARE
    v_token bigint;
BEGIN
    -- Lock first, as every writer does, so the cascade waits for no one.
    SELECT last_token INTO v_token FROM pharox_pools WHERE id = p_pool FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO pharox_retired_tokens (pool_id, last_token) VALUES (p_pool, v_token)
    ON CONFLICT (pool_id) DO UPDATE
        SET last_token = greatest(pharox_retired_tokens.last_token, EXCLUDED.last_token);
    DELETE FROM pharox_pools WHERE id = p_pool;
    RETURN true;
END
$$;
