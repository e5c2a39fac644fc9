-- pharox schema version 5: a cleanup reclaims every due lease up to its
-- limit, also those of proxies another call holds at that moment.
--
-- Up to version 4 a cleanup skipped the proxies another call held, as an
-- acquire's reclaim does, so a lease past its deadline on a proxy that was
-- being leased or released at that moment outlived the cleanup (I6 broken;
-- the churn checker saw it). Now a cleanup waits for those proxies, taking
-- them in sequence order. It cannot deadlock: it holds no pool row and no
-- shard while it waits, and every other call that waits for a proxy holds
-- no other proxy (an acquire waits only while it holds none, an admin
-- operation holds one), except a pool's removal, which now takes its
-- proxies in the same order.
--
-- An acquire's reclaim still skips held proxies (it may not wait: it goes
-- on to wait for a free proxy, and holds those it reclaimed).

-- Ends the due leases (up to `p_limit`, oldest deadline first) of the
-- proxies `p_seqs`, which the caller holds, and fixes their lease counts;
-- the deltas for pharox_count, as pharox_reclaim_free returns them.
CREATE FUNCTION pharox_reclaim_held(
    p_pool text, p_now timestamptz, p_limit integer, p_seqs bigint[],
    OUT n bigint, OUT free bigint, OUT leased bigint)
LANGUAGE plpgsql
AS $$
BEGIN
    WITH gone AS (
        DELETE FROM pharox_leases l
        WHERE l.id IN (SELECT e.id FROM pharox_leases e
                       WHERE e.pool_id = p_pool AND e.proxy_seq = ANY (p_seqs)
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

-- As in version 4 (skips the proxies others hold), the deletion shared.
CREATE OR REPLACE FUNCTION pharox_reclaim_free(
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
    SELECT * INTO n, free, leased FROM pharox_reclaim_held(p_pool, p_now, p_limit, v_seqs);
END
$$;

CREATE OR REPLACE FUNCTION pharox_cleanup(p_pool text, p_limit integer)
RETURNS integer LANGUAGE plpgsql
AS $$
DECLARE
    v_now timestamptz;
    v_seqs bigint[];
    v_r record;
BEGIN
    PERFORM 1 FROM pharox_pools WHERE id = p_pool;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    v_now := clock_timestamp();
    -- Waits for the proxies others hold, in sequence order (see above).
    SELECT array_agg(q.seq) INTO v_seqs FROM (
        SELECT x.seq FROM pharox_proxies x
        WHERE x.pool_id = p_pool AND x.seq IN (
            SELECT e.proxy_seq FROM pharox_leases e
            WHERE e.pool_id = p_pool AND e.expires_at <= v_now
            ORDER BY e.expires_at LIMIT p_limit)
        ORDER BY x.seq FOR UPDATE) q;
    IF v_seqs IS NULL THEN
        RETURN 0;
    END IF;
    SELECT * INTO v_r FROM pharox_reclaim_held(p_pool, v_now, p_limit, v_seqs);
    IF v_r.n > 0 THEN
        PERFORM pharox_count(p_pool, v_r.free, v_r.leased, -v_r.n, 0, 0, v_r.n);
    END IF;
    RETURN v_r.n;
END
$$;

-- As in version 4, but the proxies are taken in sequence order before
-- they are deleted (a waiting cleanup takes them in that order too).
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
    -- The proxies first, in sequence order, waiting for the lease
    -- operations that hold them (each takes its counter shard after its
    -- proxy: deleting the shards first, as the cascade would, could
    -- deadlock with one), then every lease those left, then the pool with
    -- its shards.
    PERFORM 1 FROM pharox_proxies WHERE pool_id = p_pool ORDER BY seq FOR UPDATE;
    DELETE FROM pharox_proxies WHERE pool_id = p_pool;
    DELETE FROM pharox_leases WHERE pool_id = p_pool;
    DELETE FROM pharox_pools WHERE id = p_pool;
    RETURN true;
END
$$;
