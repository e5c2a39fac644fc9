//! The largest filter accepted, and the pool it is run on.

use super::*;

/// A value of exactly [`MAX_FILTER_VALUE_LEN`] bytes, distinct per `tag`.
pub fn longest_value(tag: &str) -> String {
    let mut v = format!("{tag}-");
    v.push_str(&"x".repeat(MAX_FILTER_VALUE_LEN - v.len()));
    v
}

/// Proxy `i` of the largest-filter pool: countries, sources, cities (some of
/// [`MAX_FILTER_VALUE_LEN`] bytes), ISPs, ASNs, caps and latencies vary
/// with `i`, so the largest filter matches about 2% of the pool.
pub fn varied_proxy(pool: &PoolId, i: usize) -> Proxy {
    let mut p = numbered_proxy(pool, i)
        .with_country(["AR", "BR", "CL", "UY"][i % 4])
        .with_source(format!("src-{}", i % 400))
        .with_city(if i.is_multiple_of(40) {
            longest_value("city")
        } else {
            format!("city-{}", i % 50)
        })
        .with_isp(format!("isp-{}", i % 7))
        .with_asn((i % 1000) as u32)
        .with_max_concurrency(1 + (i % 2) as u32);
    if !i.is_multiple_of(11) {
        p = p.with_latency_ms((i * 7919 % 5000) as u32);
    }
    if i % 97 == 5 {
        p = p.with_status(ProxyStatus::Inactive);
    }
    p
}

/// The largest filter accepted: exactly [`MAX_FILTER_NODES`] nodes,
/// [`MAX_FILTER_BYTES`] bytes of JSON, nested [`MAX_FILTER_DEPTH`] deep, with
/// values of [`MAX_FILTER_VALUE_LEN`] bytes. It has no field a store could
/// index at the top, so a store must evaluate it on candidates itself.
///
/// It asks for (the deepest node) and country AR and one of 40 sources, and
/// none of the longest city nor ISP `isp-3`; fillers among the sources match
/// nothing and pad the JSON to the limit. With `deepest = country("ZZ")` it
/// matches nothing at all, so a store must examine every proxy.
pub fn largest_filter(deepest: ProxyFilters) -> ProxyFilters {
    // Nodes at depths 1..=MAX_FILTER_DEPTH, the deepest innermost.
    let mut chain = deepest;
    for depth in (1..MAX_FILTER_DEPTH).rev() {
        chain = ProxyFilters::new().all_of([chain]);
        if depth == 1 {
            chain.country = Some("AR".into());
        }
    }
    let none_of = [
        ProxyFilters::new().city(longest_value("city")),
        ProxyFilters::new().isp("isp-3"),
    ];
    let fixed = 1 + MAX_FILTER_DEPTH + none_of.len();
    let sources = (0..40).map(|k| ProxyFilters::new().source(format!("src-{}", k * 10)));
    let fillers = (0..MAX_FILTER_NODES - fixed - 40)
        .map(|k| ProxyFilters::new().source(format!("filler-{k}")));
    let mut f = ProxyFilters::new()
        .all_of([chain])
        .any_of(sources.chain(fillers))
        .none_of(none_of);
    pad_fillers(&mut f, MAX_FILTER_BYTES);
    assert_eq!(f.node_count(), MAX_FILTER_NODES);
    assert_eq!(f.json_len(), MAX_FILTER_BYTES);
    f
}

/// Lengthens the `filler-` sources of `f`, in order, each to at most
/// [`MAX_FILTER_VALUE_LEN`] bytes, until its JSON is `target` bytes long
/// (ASCII: one byte more of value is one byte more of JSON).
fn pad_fillers(f: &mut ProxyFilters, target: usize) {
    let mut missing = target
        .checked_sub(f.json_len())
        .expect("the filter is already past the target");
    for source in f.any_of.iter_mut().filter_map(|n| n.source.as_mut()) {
        if !source.starts_with("filler-") {
            continue;
        }
        let add = missing.min(MAX_FILTER_VALUE_LEN - source.len());
        source.push_str(&"f".repeat(add));
        missing -= add;
    }
    assert_eq!(missing, 0, "not enough fillers to reach {target} bytes");
}
