//! Refusals: every script refuses bad ARGV with a `PHAROX bad argument`
//! error naming the argument, before it writes anything; calls on a pool
//! that does not exist answer the documented value and write nothing.

use std::collections::BTreeSet;

use chrono::TimeDelta;
use pharox_core::{AcquireRequest, Proxy, ProxyProtocol, Storage};
use pharox_redis::keys::{IndexField, PoolKeys};
use pharox_redis::layout;
use pharox_redis::queries::{self, Plan};
use pharox_redis::redis::Value;
use pharox_redis::scripts;

use crate::support::*;

/// Integers written other than in canonical decimal: every integer ARGV
/// refuses them, whatever Lua's `tonumber` would make of them.
const NON_CANONICAL: [&str; 11] = [
    "1e3", "0x10", " 5", "5 ", "05", "+5", "-0", "5.0", "", "1_000", "٥",
];

/// A call that must be refused, and what the error must name.
pub(crate) struct Bad {
    script: &'static str,
    keys: Vec<String>,
    args: Vec<String>,
    names: String,
}

pub(crate) fn bad(script: &'static str, keys: &[String], args: Vec<String>, names: &str) -> Bad {
    Bad {
        script,
        keys: keys.to_vec(),
        args,
        names: names.to_owned(),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// ARGV of a valid unfiltered acquire (ARGV 1-10, as `queries::acquire`
/// always sends them: plan, filter JSON and position empty), `more`
/// written from ARGV 8 on (plan, filter JSON, position, geo); `edit`
/// changes it.
pub(crate) fn acquire_argv(more: &[&str], edit: impl FnOnce(&mut Vec<String>)) -> Vec<String> {
    let mut v = strings(&["f", "3600000", "c", "1", "64", "0", "", "", "", ""]);
    for (i, m) in more.iter().enumerate() {
        match v.get_mut(7 + i) {
            Some(slot) => *slot = (*m).to_owned(),
            None => v.push((*m).to_owned()),
        }
    }
    edit(&mut v);
    v
}

const PX_JSON: &str = r#"{"id":"px1"}"#;

fn upsert_argv(edit: impl FnOnce(&mut Vec<String>)) -> Vec<String> {
    let mut v = strings(&["px1", "", PX_JSON, "1", "10", "5", "", "", "0", "0"]);
    edit(&mut v);
    v
}

fn health_argv(edit: impl FnOnce(&mut Vec<String>)) -> Vec<String> {
    let mut v = strings(&["px1", PX_JSON, PX_JSON, "1", "10", "5"]);
    edit(&mut v);
    v
}

/// The key lists of each script, from `queries`.
pub(crate) struct Lists {
    pub(crate) all: Vec<String>,
    pub(crate) exact: Vec<String>,
    pub(crate) verify: Vec<String>,
    pub(crate) geo: Vec<String>,
    pub(crate) scan: Vec<String>,
    pub(crate) lease: Vec<String>,
    pub(crate) lease_ref: Vec<String>,
    pub(crate) get_lease: Vec<String>,
    pub(crate) admin: Vec<String>,
    pub(crate) health: Vec<String>,
    pub(crate) stats: Vec<String>,
    pub(crate) get_proxy: Vec<String>,
    pub(crate) list_proxies: Vec<String>,
    pub(crate) create_pool: Vec<String>,
    pub(crate) remove_pool: Vec<String>,
}

impl Lists {
    pub(crate) fn new(k: &PoolKeys) -> Self {
        let ix = k.by_value(IndexField::Country, "AR");
        let geo = Plan::geo(0.0, 0.0, 1.0);
        Self {
            all: own(queries::acquire_keys(k, &Plan::All)),
            exact: own(queries::acquire_keys(k, &Plan::Exact(ix.clone()))),
            verify: own(queries::acquire_keys(k, &Plan::Verify(ix))),
            geo: own(queries::acquire_keys(k, &geo)),
            scan: own(queries::acquire_keys(k, &Plan::Scan)),
            lease: own(k.lease_keys()),
            lease_ref: own(queries::lease_ref_keys(k)),
            get_lease: own(queries::get_lease_keys(k)),
            admin: own(k.admin_keys()),
            health: own(queries::health_keys(k)),
            stats: own(queries::stats_keys(k)),
            get_proxy: own(queries::get_proxy_keys(k)),
            list_proxies: own(queries::list_proxies_keys(k)),
            create_pool: own(queries::create_pool_keys(k)),
            remove_pool: queries::remove_pool_keys(k),
        }
    }
}

/// Every refusal of every script, on the keys of pool `k`.
fn refusals(k: &PoolKeys) -> Vec<Bad> {
    let l = Lists::new(k);
    let mut out = Vec::new();

    // acquire, ARGV 1-7.
    let mut acquire_ints: Vec<(usize, &str, &str)> = vec![
        (1, "0", "duration"),
        (1, "86400001", "duration"),
        (1, "abc", "duration"),
        (1, "1.5", "duration"),
        (1, "-5", "duration"),
        (3, "-1", "nonce"),
        (3, "4398046511104", "nonce"),
        (3, "nonce", "nonce"),
        (3, "7.0", "nonce"),
        (4, "10001", "reclaim batch"),
        (4, "-1", "reclaim batch"),
        (4, "many", "reclaim batch"),
    ];
    for s in NON_CANONICAL {
        acquire_ints.extend([(1, s, "duration"), (3, s, "nonce"), (4, s, "reclaim batch")]);
    }
    for (i, value, what) in acquire_ints.into_iter().chain([
        (0, "x", "selector"),
        (0, "", "selector"),
        (0, "ff", "selector"),
        (0, "F", "selector"),
        (2, "", "consumer"),
        (5, "2", "find"),
        (5, "", "find"),
        (5, "true", "find"),
    ]) {
        out.push(bad(
            "ACQUIRE",
            &l.all,
            acquire_argv(&[], |v| v[i] = value.into()),
            what,
        ));
    }
    // Too few ARGV at all: the selector check fires first.
    out.push(bad("ACQUIRE", &l.all, Vec::new(), "selector"));
    for plan in ["z", "xx", "S", "-"] {
        out.push(bad(
            "ACQUIRE",
            &l.scan,
            acquire_argv(&[plan, "{}", ""], |_| {}),
            "filter plan",
        ));
    }
    // Plans x, v and g need their candidate keys.
    for (keys, plan) in [(&l.all, "x"), (&l.scan, "v"), (&l.verify, "g")] {
        out.push(bad(
            "ACQUIRE",
            keys,
            acquire_argv(&[plan, "{}", "", "1", "1", "5"], |_| {}),
            "candidate keys",
        ));
    }
    for json in [
        "{not json",
        "5",
        "\"text\"",
        "",
        "null",
        "[",
        "{\"city\":\"x\"} x",
    ] {
        for (keys, plan) in [(&l.verify, "v"), (&l.scan, "s")] {
            out.push(bad(
                "ACQUIRE",
                keys,
                acquire_argv(&[plan, json, ""], |_| {}),
                "filter JSON",
            ));
        }
    }
    out.extend(crate::filters::filter_refusals(&l));
    out.extend(position_refusals(&l));
    // Geo: a count of 1 to 9 score ranges, each two canonical integers
    // 0 <= min < max <= 2^52.
    let top = (1u64 << 52).to_string();
    let over = ((1u64 << 52) + 1).to_string();
    for ranges in [
        vec![],
        vec!["0"],
        vec!["10"],
        vec!["x", "1", "5"],
        vec!["1", "5"],
        vec!["1", "5", "5"],
        vec!["1", "6", "5"],
        vec!["1", "-1", "5"],
        vec!["1", "0", &over],
        vec!["1", "1e3", "2000"],
        vec!["1", " 1", "5"],
        vec!["1", "01", "5"],
        vec!["1", "1.5", "5"],
        vec!["2", "1", "5"],
        vec!["2", "1", "5", "7"],
        vec!["10", "0", &top],
    ] {
        let mut args = vec!["g", "{}", ""];
        args.extend(ranges.iter().copied());
        out.push(bad(
            "ACQUIRE",
            &l.geo,
            acquire_argv(&args, |_| {}),
            "geo ranges",
        ));
    }

    // release, renew, cleanup.
    let beyond = format!("{}:1:1:1:c", layout::MAX_SEQ + 1);
    let below = format!("{}:1:1:1:c", layout::FIRST_SEQ - 1);
    for m in [
        "garbage",
        "1:2:3",
        "",
        "a:1:2:3:c",
        "16:1:2:3:",
        "16:2:x:4:c",
        "-16:1:1:1:c",
        " 16:1:1:1:c",
        &beyond,
        &below,
    ] {
        out.push(bad("RELEASE", &l.lease_ref, strings(&[m]), "lease"));
        out.push(bad("RENEW", &l.lease_ref, strings(&[m, "1000"]), "lease"));
        out.push(bad("GET_LEASE", &l.get_lease, strings(&[m]), "lease"));
    }
    // References "token:nonce": canonical decimals, token 1 .. MAX_TOKEN,
    // nonce below NONCE_END.
    let big_token = format!("{}:1", layout::MAX_TOKEN + 1);
    let big_nonce = format!("1:{}", layout::NONCE_END);
    let long_token = format!("{}:1", "9".repeat(40));
    for r in [
        "0:1",
        "01:1",
        "1:01",
        "1:-1",
        "1:",
        ":1",
        "1:1:",
        "1.0:1",
        " 1:1",
        "1:1 ",
        &big_token,
        &big_nonce,
        &long_token,
    ] {
        out.push(bad("RELEASE", &l.lease_ref, strings(&[r]), "lease"));
        out.push(bad("RENEW", &l.lease_ref, strings(&[r, "1000"]), "lease"));
        out.push(bad("GET_LEASE", &l.get_lease, strings(&[r]), "lease"));
    }
    out.push(bad("RELEASE", &l.lease_ref, Vec::new(), "lease"));
    out.push(bad("GET_LEASE", &l.get_lease, Vec::new(), "lease"));
    for want in ["0", "2", "yes", " 1"] {
        out.push(bad(
            "RELEASE",
            &l.lease_ref,
            strings(&["16:1:1:1:c", want]),
            "want lease",
        ));
        out.push(bad(
            "RENEW",
            &l.lease_ref,
            strings(&["16:1:1:1:c", "1000", want]),
            "want lease",
        ));
    }
    for dur in ["0", "86400001", "x"].into_iter().chain(NON_CANONICAL) {
        out.push(bad(
            "RENEW",
            &l.lease_ref,
            strings(&["16:1:1:1:c", dur]),
            "duration",
        ));
    }
    for limit in ["0", "10001", "x", "2.5"].into_iter().chain(NON_CANONICAL) {
        out.push(bad("CLEANUP", &l.lease, strings(&[limit]), "limit"));
    }

    // upsert_proxy.
    let mut upsert: Vec<(usize, &str, &str)> = vec![
        (0, "", "proxy id"),
        (2, "not json", "proxy JSON"),
        (2, "", "proxy JSON"),
        (3, "2", "active"),
        (3, "true", "active"),
        (4, "0", "capacity"),
        (4, "65536", "capacity"),
        (4, "1.5", "capacity"),
        (5, "-1", "latency key"),
        (5, "1048576", "latency key"),
        (5, "fast", "latency key"),
        (8, "1", "index key count"),
        (8, "6", "index key count"),
        (8, "-1", "index key count"),
        (9, "10001", "reclaim batch"),
    ];
    for s in NON_CANONICAL {
        upsert.extend([
            (4, s, "capacity"),
            (5, s, "latency key"),
            (8, s, "index key count"),
            (9, s, "reclaim batch"),
        ]);
    }
    for (i, value, what) in upsert {
        out.push(bad(
            "UPSERT_PROXY",
            &l.admin,
            upsert_argv(|v| v[i] = value.into()),
            what,
        ));
    }
    for (lon, lat) in [
        ("east", "1"),
        ("200", "10"),
        ("10", "91"),
        ("-180.5", "0"),
        ("nan", "0"),
        ("0", "nan"),
        ("10", ""),
        ("inf", "0"),
    ] {
        out.push(bad(
            "UPSERT_PROXY",
            &l.admin,
            upsert_argv(|v| {
                v[6] = lon.into();
                v[7] = lat.into();
            }),
            "location",
        ));
    }
    // More new by_value keys than a proxy has fields.
    let mut six = l.admin.clone();
    six.extend((0..6).map(|i| k.by_value(IndexField::City, &i.to_string())));
    out.push(bad(
        "UPSERT_PROXY",
        &six,
        upsert_argv(|_| {}),
        "index key count",
    ));
    // Fewer keys than the old by_value keys it announces.
    out.push(bad(
        "UPSERT_PROXY",
        &l.admin,
        upsert_argv(|v| v[8] = "2".into()),
        "index key count",
    ));

    // health.
    let mut health: Vec<(usize, &str, &str)> = vec![
        (0, "", "proxy id"),
        (1, "", "expected JSON"),
        (2, "[]", "proxy JSON"),
        (3, "yes", "active"),
        (4, "0", "capacity"),
        (4, "65536", "capacity"),
        (5, "1048576", "latency key"),
    ];
    for s in NON_CANONICAL {
        health.extend([(4, s, "capacity"), (5, s, "latency key")]);
    }
    for (i, value, what) in health {
        out.push(bad(
            "HEALTH",
            &l.health,
            health_argv(|v| v[i] = value.into()),
            what,
        ));
    }

    // remove_proxy, get_proxy, list_proxies.
    out.push(bad(
        "REMOVE_PROXY",
        &l.admin,
        strings(&["", PX_JSON]),
        "proxy id",
    ));
    out.push(bad(
        "REMOVE_PROXY",
        &l.admin,
        strings(&["px1"]),
        "expected JSON",
    ));
    out.push(bad(
        "REMOVE_PROXY",
        &l.admin[..11],
        strings(&["px1", PX_JSON]),
        "index key count",
    ));
    out.push(bad(
        "REMOVE_PROXY",
        &six,
        strings(&["px1", PX_JSON]),
        "index key count",
    ));
    out.push(bad("GET_PROXY", &l.get_proxy, strings(&[""]), "proxy id"));
    out.push(bad("GET_PROXY", &l.get_proxy, Vec::new(), "proxy id"));
    let beyond_seq = (layout::MAX_SEQ + 1).to_string();
    let mut pages: Vec<(&str, &str, &str)> = vec![
        ("x", "10", "after"),
        ("-1", "10", "after"),
        (&beyond_seq, "10", "after"),
        ("0", "0", "page size"),
        ("0", "1001", "page size"),
        ("0", "-1", "page size"),
    ];
    for s in NON_CANONICAL {
        pages.extend([(s, "10", "after"), ("0", s, "page size")]);
    }
    for (after, size, what) in pages {
        out.push(bad(
            "LIST_PROXIES",
            &l.list_proxies,
            strings(&[after, size]),
            what,
        ));
    }
    out.push(bad("LIST_PROXIES", &l.list_proxies, Vec::new(), "after"));

    // create_pool, remove_pool.
    for g in ["x", "-1", "1.5", "1099511627776"]
        .into_iter()
        .chain(NON_CANONICAL)
    {
        out.push(bad(
            "CREATE_POOL",
            &l.create_pool,
            strings(&[g]),
            "generation",
        ));
    }
    for n in ["x", "-1", "10", "1"]
        .into_iter()
        .chain(NON_CANONICAL)
        .chain(["0x0", " 0", "0 ", "00", "0e0", "-0", "+0", "0.0"])
    {
        out.push(bad(
            "REMOVE_POOL",
            &l.remove_pool,
            strings(&[n]),
            "key count",
        ));
    }
    // The pool's two by_value keys (country AR, city X) announced, but one
    // of them passed twice: refused before anything is unlinked.
    let mut twice = l.remove_pool.clone();
    let country = k.by_value(IndexField::Country, "AR");
    twice.extend([country.clone(), country]);
    out.push(bad(
        "REMOVE_POOL",
        &twice,
        strings(&["2"]),
        "a by_value key passed twice",
    ));
    out
}

/// Positions that are not ones the script hands out, or that do not fit
/// the plan or the selector.
fn position_refusals(l: &Lists) -> Vec<Bad> {
    let mut out = Vec::new();
    for position in [
        "garbage",
        "s",
        "s:1:::",
        "s:1::",
        "q:1:::1",
        "S:1:::1",
        "s:3:::1",
        "s:0:::1",
        "s:1:x::1",
        "s:1:1.5::1",
        "s:1:-5::1",
        "s:1:1e3::1",
        "s:1::x:1",
        "s:1:::3",
        "s:1:::1:",
        " s:1:::1",
        "s:1:::1 ",
        "s:1:::1\n",
        "::::",
    ] {
        for (keys, plan) in [(&l.scan, "s"), (&l.exact, "x"), (&l.verify, "v")] {
            out.push(bad(
                "ACQUIRE",
                keys,
                acquire_argv(&[plan, "{}", position], |_| {}),
                "position",
            ));
        }
    }
    // Without a filter a position names no index ('-', the pass only), or
    // the lazily kept index its own selector walks (least used: l, lowest
    // latency: t), as the ones the script hands out do.
    for position in [
        "garbage", "-", "-:1:::", "-:1:::3", "s:1:::1", "i:1:::1", "-:1:::2 ", "::::",
    ] {
        for sel in ["f", "r", "l", "t"] {
            out.push(bad(
                "ACQUIRE",
                &l.all,
                acquire_argv(&["", "", position], |v| v[0] = sel.into()),
                "position",
            ));
        }
    }
    for (sel, position) in [
        ("f", "l:1:::1"),
        ("r", "l:1:::1"),
        ("t", "l:1:::1"),
        ("f", "t:1:17::2"),
        ("l", "t:1:17::2"),
    ] {
        out.push(bad(
            "ACQUIRE",
            &l.all,
            acquire_argv(&["", "", position], |v| v[0] = sel.into()),
            "position",
        ));
    }
    // The candidate index (i) only for plans x and v.
    for (keys, plan, more) in [(&l.scan, "s", &[][..]), (&l.geo, "g", &["1", "0", "5"][..])] {
        let mut args = vec![plan, "{}", "i:1:::1"];
        args.extend(more);
        out.push(bad(
            "ACQUIRE",
            keys,
            acquire_argv(&args, |_| {}),
            "position",
        ));
    }
    // Round robin resumes from the cursor its pass started with.
    for (keys, plan, position) in [
        (&l.exact, "x", "i:1:::1"),
        (&l.verify, "v", "i:2:17::1"),
        (&l.scan, "s", "s:1:::1"),
        (&l.scan, "s", "l:1:::1"),
        (&l.scan, "s", "t:2:16::2"),
    ] {
        out.push(bad(
            "ACQUIRE",
            keys,
            acquire_argv(&[plan, "{}", position], |v| v[0] = "r".into()),
            "position",
        ));
    }
    out
}

/// Runs every refusal; returns the scripts covered.
async fn assert_refused(f: &mut Fixture, calls: &[Bad]) -> BTreeSet<&'static str> {
    let mut covered = BTreeSet::new();
    let mut wrong = Vec::new();
    for b in calls {
        let r = eval(&mut f.con, script(b.script), refs(&b.keys), &refs(&b.args)).await;
        let shown: Vec<String> = b
            .args
            .iter()
            .map(|a| {
                if a.len() > 60 {
                    format!("<{} bytes>", a.len())
                } else {
                    a.clone()
                }
            })
            .collect();
        match error_text(r) {
            Err(v) => wrong.push(format!(
                "{} {shown:?}: expected an error reply, got {v:?}",
                b.script
            )),
            Ok(msg) if !msg.contains("PHAROX bad argument") || !msg.contains(&b.names) => wrong
                .push(format!(
                    "{} {shown:?}: got {msg:?}, want PHAROX bad argument naming {:?}",
                    b.script, b.names
                )),
            Ok(_) => {}
        }
        covered.insert(b.script);
    }
    assert!(
        wrong.is_empty(),
        "{} of {} refusals went wrong:\n{}",
        wrong.len(),
        calls.len(),
        wrong.join("\n")
    );
    covered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_script_refuses_bad_arguments_before_writing_and_answers_for_a_missing_pool() {
    // Acquires never reclaim here, so expired leases stay due: a script
    // that wrote (or reclaimed) before checking its ARGV would show.
    let mut f = Fixture::start_with(|c| c.reclaim_batch(0)).await;
    let proxies = [
        Proxy::new("p", "10.0.0.1", 8001, ProxyProtocol::Http)
            .with_id("px1")
            .with_country("AR")
            .with_city("X")
            .with_location(1.0, 1.0)
            .with_max_concurrency(10),
        Proxy::new("p", "10.0.0.2", 8002, ProxyProtocol::Http)
            .with_id("px2")
            .with_country("AR"),
    ];
    let pool = f.pool("p", &proxies).await;
    f.store.acquire(&lease_req(&pool, "w")).await.unwrap();
    let mut last = 0;
    for _ in 0..3 {
        let short = AcquireRequest::new(pool.clone()).duration(TimeDelta::milliseconds(1));
        let l = f.store.acquire(&short).await.unwrap().unwrap();
        last = last.max(l.expires_at.timestamp_millis());
    }
    f.wait_past(last).await;
    let k = keys("p");

    let before = f.fingerprint().await;
    let calls = refusals(&k);
    let mut covered = assert_refused(&mut f, &calls).await;
    f.fingerprint().await.assert_same(&before, "a refused call");
    assert_eq!(
        f.store.pool_stats(&pool).await.unwrap().active_leases,
        4,
        "the due leases are still there"
    );

    // Valid ARGV on a pool that does not exist: the documented answer.
    let q = keys("q");
    let l = Lists::new(&q);
    let m = "16:1:1:1:c";
    let minus_one = Value::Array(vec![Value::Int(-1)]);
    let missing: Vec<(&str, &[String], Vec<String>, Value)> = vec![
        (
            "ACQUIRE",
            &l.all,
            acquire_argv(&[], |_| {}),
            minus_one.clone(),
        ),
        (
            "ACQUIRE",
            &l.all,
            acquire_argv(&[], |v| v[0] = "r".into()),
            minus_one.clone(),
        ),
        (
            "ACQUIRE",
            &l.all,
            acquire_argv(&[], |v| v[0] = "l".into()),
            minus_one.clone(),
        ),
        (
            "ACQUIRE",
            &l.all,
            acquire_argv(&["", "", "-:1:::2"], |v| v[0] = "t".into()),
            minus_one.clone(),
        ),
        (
            "ACQUIRE",
            &l.verify,
            acquire_argv(&["v", r#"{"country":"AR"}"#, ""], |v| v[5] = "1".into()),
            minus_one.clone(),
        ),
        (
            "ACQUIRE",
            &l.exact,
            acquire_argv(&["x", "", ""], |v| v[0] = "l".into()),
            minus_one.clone(),
        ),
        (
            "ACQUIRE",
            &l.geo,
            acquire_argv(&["g", "{}", "", "1", "0", "5"], |_| {}),
            minus_one.clone(),
        ),
        (
            "ACQUIRE",
            &l.scan,
            acquire_argv(&["s", "{}", "s:1:99:5:1"], |v| v[0] = "r".into()),
            minus_one.clone(),
        ),
        ("RELEASE", &l.lease_ref, strings(&[m]), Value::Int(0)),
        ("RELEASE", &l.lease_ref, strings(&["5:7"]), Value::Int(0)),
        (
            "RELEASE",
            &l.lease_ref,
            strings(&["5:7", "1"]),
            Value::Array(vec![Value::Int(0)]),
        ),
        (
            "RENEW",
            &l.lease_ref,
            strings(&[m, "1000"]),
            Value::Array(vec![Value::Int(0)]),
        ),
        (
            "RENEW",
            &l.lease_ref,
            strings(&["5:7", "1000", "1"]),
            Value::Array(vec![Value::Int(0)]),
        ),
        (
            "GET_LEASE",
            &l.get_lease,
            strings(&["5:7"]),
            Value::Array(vec![Value::Int(0)]),
        ),
        ("CLEANUP", &l.lease, strings(&["10"]), Value::Int(-1)),
        ("STATS", &l.stats, Vec::new(), minus_one.clone()),
        (
            "LIST_PROXIES",
            &l.list_proxies,
            strings(&["0", "1000"]),
            minus_one.clone(),
        ),
        (
            "GET_PROXY",
            &l.get_proxy,
            strings(&["px1"]),
            minus_one.clone(),
        ),
        (
            "UPSERT_PROXY",
            &l.admin,
            upsert_argv(|_| {}),
            minus_one.clone(),
        ),
        ("HEALTH", &l.health, health_argv(|_| {}), minus_one.clone()),
        (
            "REMOVE_PROXY",
            &l.admin,
            strings(&["px1", PX_JSON]),
            Value::Int(-1),
        ),
        (
            "REMOVE_POOL",
            &l.remove_pool,
            strings(&["0"]),
            Value::Int(0),
        ),
    ];
    for (name, keys, args, want) in &missing {
        let got = eval(&mut f.con, script(name), refs(keys), &refs(args))
            .await
            .unwrap_or_else(|e| panic!("{name} {args:?}: {e}"));
        assert_eq!(&got, want, "{name} {args:?} on a missing pool");
        covered.insert(name);
    }
    f.fingerprint()
        .await
        .assert_same(&before, "a call on a missing pool");

    // create_pool answers 1 when it creates, 0 when the pool is there.
    let fresh = keys("fresh");
    let l = Lists::new(&fresh);
    let create = script("CREATE_POOL");
    assert_eq!(
        eval(&mut f.con, create, refs(&l.create_pool), &["12345"])
            .await
            .unwrap(),
        Value::Int(1)
    );
    assert_eq!(
        eval(&mut f.con, create, refs(&l.create_pool), &["12345"])
            .await
            .unwrap(),
        Value::Int(0)
    );
    covered.insert("CREATE_POOL");
    // The new pool is empty, with every counter at zero.
    let stats = ints(
        eval(&mut f.con, script("STATS"), refs(&l.stats), &[])
            .await
            .unwrap(),
    );
    assert_eq!(stats.len(), 8, "{stats:?}");
    assert_eq!(&stats[1..], &[0, 0, 0, 0, 0, 0, 0], "{stats:?}");
    // A pool with no proxy: acquire answers {0}, cleanup 0, a page {0}.
    for (keys, more) in [
        (&l.all, &[][..]),
        (&l.scan, &["s", "{}", ""][..]),
        (&l.exact, &["x", "", ""][..]),
    ] {
        for sel in ["f", "r", "l", "t"] {
            assert_eq!(
                ints(
                    eval(
                        &mut f.con,
                        &scripts::ACQUIRE,
                        refs(keys),
                        &refs(&acquire_argv(more, |v| v[0] = sel.into()))
                    )
                    .await
                    .unwrap()
                ),
                vec![0],
                "{sel} {more:?}"
            );
        }
    }
    assert_eq!(
        eval(&mut f.con, &scripts::CLEANUP, refs(&l.lease), &["10"])
            .await
            .unwrap(),
        Value::Int(0)
    );
    assert_eq!(
        ints(
            eval(
                &mut f.con,
                &scripts::LIST_PROXIES,
                refs(&l.list_proxies),
                &["0", "10"]
            )
            .await
            .unwrap()
        ),
        vec![0]
    );
    // remove_pool with by_value keys the pool does not list: -2, nothing
    // removed; with the right ones (none): 1.
    let before_remove = f.fingerprint().await;
    let mut rp = l.remove_pool.clone();
    rp.push(fresh.by_value(IndexField::Country, "AR"));
    assert_eq!(
        eval(&mut f.con, &scripts::REMOVE_POOL, refs(&rp), &["1"])
            .await
            .unwrap(),
        Value::Int(-2)
    );
    f.fingerprint()
        .await
        .assert_same(&before_remove, "remove_pool answering -2");
    assert_eq!(
        eval(
            &mut f.con,
            &scripts::REMOVE_POOL,
            refs(&l.remove_pool),
            &["0"]
        )
        .await
        .unwrap(),
        Value::Int(1)
    );

    let names: BTreeSet<&str> = scripts::all().iter().map(|(n, _)| *n).collect();
    assert_eq!(covered, names, "every script must be covered");
    assert_eq!(names.len(), 13);
}

/// A corrupt retired token stops create_pool before it writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_pool_refuses_a_corrupt_retired_token_before_writing() {
    let mut f = Fixture::start().await;
    let k = keys("r");
    for token in ["x", "-1", "1.5", "12345678901234567", "0012", " 12", ""] {
        let _: () = pharox_redis::redis::cmd("SET")
            .arg(&k.retired_token)
            .arg(token)
            .query_async(&mut f.con)
            .await
            .unwrap();
        let before = f.fingerprint().await;
        let r = eval(
            &mut f.con,
            &scripts::CREATE_POOL,
            queries::create_pool_keys(&k),
            &["1"],
        )
        .await;
        let msg = error_text(r).unwrap_or_else(|v| panic!("{token:?}: got {v:?}"));
        assert!(
            msg.contains("PHAROX corrupt retired token"),
            "{token:?}: {msg}"
        );
        f.fingerprint().await.assert_same(&before, "create_pool");
    }
}
