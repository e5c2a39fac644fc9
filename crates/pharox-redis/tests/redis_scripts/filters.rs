//! Filters: the JSON limits of `LIMIT_FILTER_*` and the field types are
//! checked before anything is written; the limits themselves and JSON
//! nulls (meaning "absent") are accepted; the store refuses what the
//! scripts would.

use pharox_core::{Error, Proxy, ProxyFilters, ProxyProtocol, Selector, Storage};
use pharox_redis::keys::PoolKeys;
use pharox_redis::layout;
use pharox_redis::queries::{self, Plan};

use crate::arguments::{Bad, Lists, acquire_argv, bad};
use crate::support::*;

/// Filters over the limits of `LIMIT_FILTER_*`, and fields of the wrong type.
pub(crate) fn filter_refusals(l: &Lists) -> Vec<Bad> {
    let mut out = Vec::new();
    let mut refuse = |json: String, names: &str| {
        for (keys, plan) in [(&l.verify, "v"), (&l.scan, "s")] {
            out.push(bad(
                "ACQUIRE",
                keys,
                acquire_argv(&[plan, &json, ""], |_| {}),
                names,
            ));
        }
    };
    refuse(padded(layout::FILTER_BYTES + 1), "filter JSON size");
    refuse(nodes(layout::FILTER_NODES + 1), "filter size");
    refuse(nested(layout::FILTER_DEPTH + 1), "filter depth");
    for (field, value) in [
        ("country", "5"),
        ("country", "true"),
        ("source", "{}"),
        ("city", "[]"),
        ("isp", "1.5"),
    ] {
        refuse(
            format!(r#"{{"{field}":{value}}}"#),
            &format!("filter {field}"),
        );
        // Nested too: every object is checked.
        refuse(
            format!(r#"{{"any_of":[{{"city":"X"}},{{"{field}":{value}}}]}}"#),
            &format!("filter {field}"),
        );
    }
    let long = "x".repeat(layout::FILTER_VALUE_BYTES + 1);
    refuse(format!(r#"{{"city":"{long}"}}"#), "filter city");
    refuse(r#"{"asn":"100"}"#.into(), "filter asn");
    refuse(r#"{"asn":true}"#.into(), "filter asn");
    for geo in [
        "5",
        "\"here\"",
        r#"{"latitude":"1","longitude":1,"radius_km":1}"#,
        r#"{"latitude":1,"longitude":1}"#,
        r#"{"latitude":1,"longitude":null,"radius_km":1}"#,
    ] {
        refuse(format!(r#"{{"geo":{geo}}}"#), "filter geo");
    }
    for list in ["all_of", "any_of", "none_of"] {
        refuse(format!(r#"{{"{list}":5}}"#), &format!("filter {list}"));
        refuse(format!(r#"{{"{list}":"x"}}"#), &format!("filter {list}"));
        refuse(format!(r#"{{"{list}":[5]}}"#), "filter JSON");
        refuse(format!(r#"{{"{list}":[null]}}"#), "filter JSON");
        // An object where a list belongs is no list of filters.
        refuse(
            format!(r#"{{"{list}":{{"city":"X"}}}}"#),
            &format!("filter {list}"),
        );
    }
    // The top filter is an object.
    refuse(r#"[{"city":"X"}]"#.into(), "filter JSON");
    out
}

/// `{"city":"X"}` padded with spaces to `bytes` bytes.
pub fn padded(bytes: usize) -> String {
    let json = r#"{"city":"X"}"#;
    format!("{json}{}", " ".repeat(bytes - json.len()))
}

/// A filter of `n` objects: the top one and `n - 1` alternatives.
pub fn nodes(n: usize) -> String {
    let subs = vec![r#"{"city":"X"}"#; n - 1].join(",");
    format!(r#"{{"any_of":[{subs}]}}"#)
}

/// A filter nested `depth` levels below the top one, `{"city":"X"}` deepest.
pub fn nested(depth: usize) -> String {
    let mut json = r#"{"city":"X"}"#.to_owned();
    for _ in 0..depth {
        json = format!(r#"{{"all_of":[{json}]}}"#);
    }
    json
}

/// The boundary values of the filter limits are accepted, and JSON nulls
/// mean "absent"; none of it writes when only finding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_at_the_limits_and_with_nulls_are_accepted() {
    let mut f = Fixture::start().await;
    let proxies = [
        Proxy::new("p", "10.0.0.1", 8001, ProxyProtocol::Http)
            .with_id("y")
            .with_city("Y"),
        Proxy::new("p", "10.0.0.2", 8002, ProxyProtocol::Http)
            .with_id("x")
            .with_country("AR")
            .with_city("X"),
    ];
    let pool = f.pool("p", &proxies).await;
    let k = keys("p");
    let long = "x".repeat(layout::FILTER_VALUE_BYTES);
    let at_limits: Vec<(String, u64)> = vec![
        (padded(layout::FILTER_BYTES), 17),
        (nodes(layout::FILTER_NODES), 17),
        (nested(layout::FILTER_DEPTH), 17),
        (format!(r#"{{"none_of":[{{"city":"{long}"}}],"city":"X"}}"#), 17),
        (
            r#"{"country":null,"source":null,"city":null,"isp":null,"asn":null,"geo":null,"all_of":null,"any_of":null,"none_of":null}"#.into(),
            16,
        ),
        (r#"{"city":null,"country":"ar"}"#.into(), 17),
        (r#"{"any_of":[{"city":null,"isp":null}],"none_of":null}"#.into(), 16),
        (r#"{"all_of":[{"geo":null},{"city":"X"}]}"#.into(), 17),
        (r#"{"any_of":[]}"#.into(), 16),
    ];
    let before = f.fingerprint().await;
    for (json, want) in &at_limits {
        for (plan, sel) in [(Plan::Scan, "f"), (Plan::Scan, "t"), (Plan::Scan, "r")] {
            let mut a = acquire_args(sel, &plan, json, "");
            a.find = true;
            let r = eval_found(&mut f, &k, &a).await;
            assert_eq!(
                r,
                Some(*want),
                "{} bytes {sel}: {}",
                json.len(),
                &json[..40.min(json.len())]
            );
        }
    }
    f.fingerprint().await.assert_same(&before, "finding");
    f.assert_sound(&pool, "after finding").await;
}

/// The sequence a find call found (following positions), or None for {0}.
async fn eval_found(f: &mut Fixture, k: &PoolKeys, a: &queries::AcquireArgs<'_>) -> Option<u64> {
    let mut position = String::new();
    for _ in 0..100 {
        let args = queries::AcquireArgs {
            position: &position,
            ..*a
        };
        let r = array(invoke(&mut f.con, &queries::acquire(k, &args)).await);
        match (int(&r[0]), r.len()) {
            (-3, 2) => position = text(&r[1]),
            (0, 1) => return None,
            (seq, 6) => return Some(u64::try_from(seq).unwrap()),
            _ => panic!("not a find reply: {r:?}"),
        }
    }
    panic!("no answer in 100 calls")
}

/// Filters past the scripts' limits (more objects than
/// `LIMIT_FILTER_NODES`, JSON longer than `LIMIT_FILTER_BYTES`) are
/// refused by pharox-core's validation, and so by the store, as invalid
/// input (the scripts' own refusal, a backend error, is only for direct
/// callers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_over_the_script_limits_are_invalid_input() {
    let f = Fixture::start().await;
    let pool = f
        .pool(
            "p",
            &[Proxy::new("p", "10.0.0.1", 8001, ProxyProtocol::Http).with_city("X")],
        )
        .await;
    let many = ProxyFilters::new()
        .any_of((0..layout::FILTER_NODES).map(|i| ProxyFilters::new().city(format!("c{i}"))));
    let wide =
        ProxyFilters::new().any_of((0..80).map(|i| ProxyFilters::new().city(format!("{i:0>250}"))));
    assert!(serde_json::to_string(&wide).unwrap().len() > layout::FILTER_BYTES);
    for (what, filter) in [("257 objects", many), ("over 16 KiB", wide)] {
        assert!(
            matches!(filter.validate(), Err(Error::InvalidInput { .. })),
            "{what}: pharox-core refuses it"
        );
        for sel in Selector::ALL {
            let r = f
                .store
                .acquire(&lease_req(&pool, "w").filters(filter.clone()).selector(sel))
                .await;
            assert!(
                matches!(r, Err(Error::InvalidInput { .. })),
                "{what} {sel:?}: {r:?}"
            );
        }
    }
}
