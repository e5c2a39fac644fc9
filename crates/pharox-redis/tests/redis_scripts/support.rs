//! Helpers of the script tests: a private server with its store and a raw
//! connection, direct script calls, reply accessors, keyspace fingerprints
//! and the keys a call wrote (keyspace notifications), what counts as
//! corrections of the lazy indexes only, and bounded waits on the Redis
//! clock.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use pharox_core::{AcquireRequest, PoolId, Proxy, ProxyPool, Storage};
use pharox_redis::keys::PoolKeys;
use pharox_redis::layout::{self, LeaseMember, Word};
use pharox_redis::queries::{AcquireArgs, Plan};
use pharox_redis::redis::{self, Script, ScriptInvocation, Value, aio::MultiplexedConnection};
use pharox_redis::scripts;
use pharox_redis::testkit::{RedisServer, STALLABLE, index_problems};
use pharox_redis::{RedisConfig, RedisStorage};

/// The store's default key prefix.
pub const PREFIX: &str = "pharox";
/// The consumer and nonce of direct acquire calls.
pub const CONSUMER: &str = "c";
pub const NONCE: u64 = 7;

/// A private server (with `DEBUG`, for value digests), a store on it and a
/// raw connection of its own.
pub struct Fixture {
    pub server: RedisServer,
    pub store: RedisStorage,
    pub con: MultiplexedConnection,
}

impl Fixture {
    pub async fn start() -> Self {
        Self::start_with(|c| c).await
    }

    pub async fn start_with(adjust: impl FnOnce(RedisConfig) -> RedisConfig) -> Self {
        let server = RedisServer::start_with(STALLABLE);
        let store = RedisStorage::connect(adjust(RedisConfig::new(server.url())))
            .await
            .expect("connect RedisStorage");
        let con = server.raw_connection().await;
        Self { server, store, con }
    }

    /// Creates `pool` with `proxies` through the store, one after the
    /// other: their sequences follow their order, from `FIRST_SEQ`.
    pub async fn pool(&self, pool: &str, proxies: &[Proxy]) -> PoolId {
        self.store.upsert_pool(&ProxyPool::new(pool)).await.unwrap();
        for p in proxies {
            self.store.upsert_proxy(p).await.expect("upsert a proxy");
        }
        PoolId::from(pool)
    }

    /// The index problems of `pool` must be none.
    pub async fn assert_sound(&self, pool: &PoolId, when: &str) {
        let problems = index_problems(&self.store, pool).await;
        assert!(problems.is_empty(), "{pool} {when}: {problems:#?}");
    }

    pub async fn fingerprint(&mut self) -> Fingerprint {
        fingerprint(&mut self.con).await
    }

    /// Waits (bounded) until the Redis clock has passed `ms`.
    pub async fn wait_past(&mut self, ms: i64) {
        wait_past(&mut self.con, ms).await;
    }
}

pub fn keys(pool: &str) -> PoolKeys {
    PoolKeys::new(PREFIX, &PoolId::from(pool))
}

/// Adds many proxies, a few at a time: their sequences follow their order
/// only from one call to the next (call again for a proxy that must come
/// last).
pub async fn add_proxies(store: &RedisStorage, proxies: &[Proxy]) {
    for chunk in proxies.chunks(32) {
        futures_util::future::try_join_all(chunk.iter().map(|p| store.upsert_proxy(p)))
            .await
            .expect("upsert proxies");
    }
}

/// A lease request of an hour: longer than any test runs.
pub fn lease_req(pool: &PoolId, consumer: &str) -> AcquireRequest {
    AcquireRequest::new(pool.clone())
        .consumer(consumer)
        .duration(TimeDelta::hours(1))
}

/// The script `name` of `scripts::all()`.
pub fn script(name: &str) -> &'static Script {
    scripts::all()
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no script {name}"))
        .1
}

pub async fn eval<'a>(
    con: &mut MultiplexedConnection,
    script: &Script,
    keys: impl IntoIterator<Item = &'a str>,
    args: &[&str],
) -> redis::RedisResult<Value> {
    let mut inv = script.prepare_invoke();
    for key in keys {
        inv.key(key);
    }
    for arg in args {
        inv.arg(*arg);
    }
    inv.invoke_async::<Value>(con).await
}

pub async fn invoke(con: &mut MultiplexedConnection, inv: &ScriptInvocation<'_>) -> Value {
    inv.invoke_async::<Value>(con)
        .await
        .expect("a script call the store would make")
}

/// The text of an error reply ("CODE detail"), or the reply if it is not one.
pub fn error_text(r: redis::RedisResult<Value>) -> Result<String, Value> {
    match r {
        Err(e) => Ok(format!(
            "{} {}",
            e.code().unwrap_or(""),
            e.detail().unwrap_or("")
        )),
        Ok(Value::ServerError(e)) => Ok(format!("{} {}", e.code(), e.details().unwrap_or(""))),
        Ok(v) => Err(v),
    }
}

pub fn int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an integer: {v:?}")),
        other => panic!("not an integer: {other:?}"),
    }
}

pub fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).expect("UTF-8 reply"),
        Value::SimpleString(s) => s.clone(),
        other => panic!("not a string: {other:?}"),
    }
}

pub fn array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items,
        other => panic!("not an array: {other:?}"),
    }
}

pub fn ints(v: Value) -> Vec<i64> {
    array(v).iter().map(int).collect()
}

pub fn own<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    keys.into_iter().map(str::to_owned).collect()
}

pub fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

pub async fn zcard(con: &mut MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("ZCARD").arg(key).query_async(con).await.unwrap()
}

pub async fn redis_now_ms(con: &mut MultiplexedConnection) -> i64 {
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(con).await.unwrap();
    secs * 1000 + micros / 1000
}

/// Waits until the Redis clock is past `ms`, for at most 10 s.
pub async fn wait_past(con: &mut MultiplexedConnection, ms: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis_now_ms(con).await <= ms {
        assert!(
            Instant::now() < deadline,
            "the Redis clock did not pass {ms} within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The ARGV of a direct acquire: lease for an hour (longer than any test
/// runs, so no lease expires unless asked to), reclaim up to 64.
pub fn acquire_args<'a>(
    selector: &'static str,
    plan: &'a Plan,
    filter_json: &'a str,
    position: &'a str,
) -> AcquireArgs<'a> {
    AcquireArgs {
        selector,
        duration_ms: 3_600_000,
        consumer: CONSUMER,
        nonce: NONCE,
        reclaim_batch: 64,
        find: false,
        cached_generation: None,
        plan,
        filter_json,
        position,
    }
}

/// The lease member of a direct acquire's lease.
pub fn member(seq: u64, token: u64, now_ms: i64) -> String {
    LeaseMember {
        seq,
        token,
        nonce: NONCE,
        acquired_ms: now_ms,
        consumer: CONSUMER,
    }
    .build()
}

/// How many writes the server has applied since it started (it never
/// saves, so `rdb_changes_since_last_save` counts them all): a cheap
/// "nothing written" check between two full fingerprints.
pub async fn writes(con: &mut MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query_async(con)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("rdb_changes_since_last_save:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("INFO persistence names rdb_changes_since_last_save")
}

/// Every key of the database with a digest of its value: equal
/// fingerprints mean nothing was written.
#[derive(Debug, PartialEq, Eq)]
pub struct Fingerprint(BTreeMap<Vec<u8>, String>);

pub async fn fingerprint(con: &mut MultiplexedConnection) -> Fingerprint {
    fingerprint_except(con, &[]).await
}

/// The fingerprint of every key but `skip` (keys too big to digest in
/// time: check those another way).
pub async fn fingerprint_except(con: &mut MultiplexedConnection, skip: &[&str]) -> Fingerprint {
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(con)
            .await
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut out = BTreeMap::new();
    for key in keys {
        if skip.iter().any(|s| s.as_bytes() == key.as_slice()) {
            continue;
        }
        let t = Instant::now();
        let digest: Vec<String> = redis::cmd("DEBUG")
            .arg("DIGEST-VALUE")
            .arg(&key)
            .query_async(con)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "DEBUG DIGEST-VALUE {} (the server runs with DEBUG enabled): {e} after {:?}",
                    String::from_utf8_lossy(&key),
                    t.elapsed()
                )
            });
        out.insert(key, digest.concat());
    }
    Fingerprint(out)
}

impl Fingerprint {
    /// The keys, for key-set comparisons.
    pub fn keys(&self) -> Vec<String> {
        self.0
            .keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    }

    /// The fingerprint without `key`.
    pub fn without(mut self, key: &str) -> Self {
        self.0.remove(key.as_bytes());
        self
    }

    /// Panics naming every key `after` added, removed or changed.
    pub fn assert_same(&self, after: &Fingerprint, what: &str) {
        let name = |k: &Vec<u8>| String::from_utf8_lossy(k).into_owned();
        let mut diff = Vec::new();
        for (k, v) in &self.0 {
            match after.0.get(k) {
                None => diff.push(format!("removed {}", name(k))),
                Some(w) if w != v => diff.push(format!("changed {}", name(k))),
                _ => {}
            }
        }
        for k in after.0.keys().filter(|k| !self.0.contains_key(*k)) {
            diff.push(format!("added {}", name(k)));
        }
        assert!(diff.is_empty(), "{what} wrote: {diff:#?}");
    }
}

/// The keys calls write, told by the server itself: keyspace notifications
/// of every write (`notify-keyspace-events KA`), read on a connection of
/// their own, each batch closed by a sentinel message.
pub struct KeyWrites {
    reader: BufReader<TcpStream>,
    sentinel: u64,
}

const WRITES_SENTINEL: &str = "pharox-writes-sentinel";

impl KeyWrites {
    /// Turns the notifications on and starts listening.
    pub async fn start(f: &mut Fixture) -> Self {
        let () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg("KA")
            .query_async(&mut f.con)
            .await
            .unwrap();
        let mut s = TcpStream::connect(("127.0.0.1", f.server.port())).expect("connect to watch");
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.write_all(
            format!("PSUBSCRIBE __keyspace@0__:*\r\nSUBSCRIBE {WRITES_SENTINEL}\r\n").as_bytes(),
        )
        .unwrap();
        let mut w = Self {
            reader: BufReader::new(s),
            sentinel: 0,
        };
        for _ in 0..2 {
            let confirm = w.message();
            assert!(confirm[0].ends_with("subscribe"), "{confirm:?}");
        }
        w
    }

    /// One RESP2 array of bulk strings (a pub/sub message).
    fn message(&mut self) -> Vec<String> {
        let mut line = String::new();
        let read_line = |r: &mut BufReader<TcpStream>, line: &mut String| {
            line.clear();
            r.read_line(line).expect("a pub/sub line");
            line.trim_end().to_owned()
        };
        let head = read_line(&mut self.reader, &mut line);
        let n: usize = head
            .strip_prefix('*')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a pub/sub message: {head:?}"));
        (0..n)
            .map(|_| {
                let item = read_line(&mut self.reader, &mut line);
                if let Some(len) = item.strip_prefix('$') {
                    let len: usize = len.parse().unwrap();
                    let mut buf = vec![0; len + 2];
                    self.reader.read_exact(&mut buf).unwrap();
                    buf.truncate(len);
                    String::from_utf8_lossy(&buf).into_owned()
                } else {
                    // An integer (subscription counts).
                    item[1..].to_owned()
                }
            })
            .collect()
    }

    /// The keys written since the previous call (or since `start`).
    pub async fn since_last(&mut self, con: &mut MultiplexedConnection) -> BTreeSet<String> {
        self.sentinel += 1;
        let _: i64 = redis::cmd("PUBLISH")
            .arg(WRITES_SENTINEL)
            .arg(self.sentinel)
            .query_async(con)
            .await
            .unwrap();
        let want = self.sentinel.to_string();
        tokio::task::block_in_place(|| {
            let mut keys = BTreeSet::new();
            loop {
                let m = self.message();
                match m.first().map(String::as_str) {
                    Some("pmessage") if m.len() == 4 => {
                        let key = m[2]
                            .strip_prefix("__keyspace@0__:")
                            .expect("a keyspace event");
                        keys.insert(key.to_owned());
                    }
                    Some("message") if m.len() == 3 && m[1] == WRITES_SENTINEL => {
                        if m[2] == want {
                            return keys;
                        }
                    }
                    _ => panic!("unexpected pub/sub message {m:?}"),
                }
            }
        })
    }
}

/// A pool's `counters` string as a call found it.
pub struct Counters(Vec<u8>);

impl Fixture {
    pub async fn counters(&mut self, k: &PoolKeys) -> Counters {
        Counters(
            redis::cmd("GET")
                .arg(&k.counters)
                .query_async(&mut self.con)
                .await
                .unwrap(),
        )
    }
}

/// Panics unless a call that wrote `written` (keys) and took pool `k`'s
/// counters from `before` to `after` wrote nothing but corrections of the
/// lazily kept indexes: no key but `free_by_load`, `free_by_latency` and
/// `counters` (so no lease was added or ended, `free_by_seq` is as it
/// was), no counter slot changed (the token counter among them: no lease
/// granted), and every word kept its room, load and active flag (only its
/// indexed load and index flags may move). Whether the corrections are
/// right is `testkit::index_problems`'s to tell.
pub fn assert_only_corrections(
    k: &PoolKeys,
    written: &BTreeSet<String>,
    before: &Counters,
    after: &Counters,
    what: &str,
) {
    let lazy = [&k.counters, &k.free_by_load, &k.free_by_latency];
    let other: Vec<&String> = written.iter().filter(|w| !lazy.contains(w)).collect();
    assert!(other.is_empty(), "{what} wrote {other:?}");
    let (b, a) = (&before.0, &after.0);
    let slots = b.len().max(a.len()).div_ceil(8) as u64;
    let mut diff = Vec::new();
    for slot in 0..slots {
        let (wb, wa) = (layout::read_slot(b, slot), layout::read_slot(a, slot));
        if wb == wa {
            continue;
        }
        if slot < layout::FIRST_SEQ {
            diff.push(format!("counter slot #{slot}: {wb} -> {wa}"));
            continue;
        }
        match (Word::unpack(wb), Word::unpack(wa)) {
            (Some(x), Some(y)) if (x.room, x.load, x.active) == (y.room, y.load, y.active) => {}
            (x, y) => diff.push(format!("word {slot}: {x:?} -> {y:?}")),
        }
    }
    assert!(
        diff.is_empty(),
        "{what} wrote more than index corrections: {diff:#?}"
    );
}
