//! `lua/layout.lua` and its Rust mirror `pharox_redis::layout` agree: the
//! scripts' shared files (`scripts::source::PRELUDE`) run on a real Redis
//! with a snippet that reports every slot, limit, word, score and lease
//! member, and each is compared with what the Rust side computes. Every
//! disagreement is reported by name, all at once.

use std::collections::BTreeMap;

use pharox_redis::layout::{self, LeaseMember, Slot, Word};
use pharox_redis::redis::{self, Value, aio::MultiplexedConnection};
use pharox_redis::scripts::source::PRELUDE;
use pharox_redis::testkit::RedisServer;
use serde_json::json;

/// Appended to the prelude. ARGV[1] is JSON with the cases; returns
/// {slots, limits, word constants, words, packs, slots of sequences,
/// scores, members}, every number as an exact decimal string.
const REPORT: &str = r#"
local cases = cjson.decode(ARGV[1])
local function flag(b) return b and '1' or '0' end
local slots, limits = {}, {}
for name, offset in pairs(SLOT) do slots[#slots + 1] = name; slots[#slots + 1] = offset end
for name, v in pairs(LIMIT) do limits[#limits + 1] = name; limits[#limits + 1] = int(v) end
local constants = { 'LOAD_UNIT', int(WORD.LOAD_UNIT), 'ACTIVE_BIT', int(WORD.ACTIVE_BIT),
  'ACQUIRE', WORD.ACQUIRE, 'RELEASE', WORD.RELEASE }
local words = {}
for _, w in ipairs(cases.words) do
  words[#words + 1] = { int(WORD.room(w)), int(WORD.load(w)), flag(WORD.active(w)), flag(WORD.free(w)) }
end
local packs = {}
for _, p in ipairs(cases.packs) do packs[#packs + 1] = int(WORD.pack(p[1], p[2], p[3] == 1)) end
local seq_slots = {}
for _, seq in ipairs(cases.seqs) do seq_slots[#seq_slots + 1] = WORD.slot(int(seq)) end
local scores = {}
for _, s in ipairs(cases.scores) do
  scores[#scores + 1] = { int(SCORE.load(s[1], s[2])), int(SCORE.latency(s[1], s[2])) }
end
local members = {}
for _, m in ipairs(cases.members) do
  local built = MEMBER.build(m[1], m[2], m[3], m[4], m[5])
  members[#members + 1] = { built, string.match(built, MEMBER.PATTERN) or '' }
end
return { slots, limits, constants, words, packs, seq_slots, scores, members }
"#;

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).expect("UTF-8 reply"),
        Value::SimpleString(s) => s.clone(),
        other => panic!("not a string: {other:?}"),
    }
}

fn array(v: &Value) -> &[Value] {
    match v {
        Value::Array(items) => items,
        other => panic!("not an array: {other:?}"),
    }
}

fn texts(v: &Value) -> Vec<String> {
    array(v).iter().map(text).collect()
}

/// A flat {name, value, ...} reply as a map.
fn pairs(v: &Value) -> BTreeMap<String, String> {
    texts(v)
        .chunks(2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect()
}

/// Collects disagreements, each named, so one run reports all of them.
#[derive(Default)]
struct Disagreements(Vec<String>);

impl Disagreements {
    fn check(&mut self, item: impl std::fmt::Display, lua: impl ToString, rust: impl ToString) {
        let (lua, rust) = (lua.to_string(), rust.to_string());
        if lua != rust {
            self.0
                .push(format!("{item}: layout.lua says {lua}, Rust says {rust}"));
        }
    }

    /// A property of the layout itself, named by `item`.
    fn require(&mut self, item: impl std::fmt::Display, holds: bool) {
        if !holds {
            self.0.push(format!("{item}: does not hold"));
        }
    }
}

async fn report(con: &mut MultiplexedConnection, cases: &serde_json::Value) -> Vec<Value> {
    let script = format!("{PRELUDE}\n{REPORT}");
    let v: Value = redis::cmd("EVAL")
        .arg(script)
        .arg(0)
        .arg(cases.to_string())
        .query_async(con)
        .await
        .expect("the layout report runs");
    array(&v).to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layout_lua_and_the_rust_layout_agree() {
    let server = RedisServer::start();
    let mut con = server.raw_connection().await;

    let max = layout::MAX_CAPACITY;
    let words: Vec<Word> = [
        (0, 0, false),
        (1, 0, false),
        (0, 1, true),
        (1, 0, true),
        (3, 7, true),
        (3, 7, false),
        (max, 0, true),
        (max, 0, false),
        (0, max, true),
        (0, max, false),
        (1, max - 1, true),
        (0, 0, true),
        // The largest word: every bit the layout uses.
        (max, max, true),
    ]
    .into_iter()
    .map(|(room, load, active)| Word { room, load, active })
    .collect();
    let seqs = [layout::FIRST_SEQ, layout::FIRST_SEQ + 1, layout::MAX_SEQ];
    let score_cases: Vec<(u32, u64)> = [0, 1, max, layout::MAX_LATENCY_KEY]
        .into_iter()
        .flat_map(|k| seqs.map(|s| (k, s)))
        .collect();
    let members = [
        LeaseMember {
            seq: layout::FIRST_SEQ,
            token: 1,
            nonce: 0,
            acquired_ms: 0,
            consumer: "c",
        },
        LeaseMember {
            seq: layout::MAX_SEQ,
            token: (1 << 48) - 1,
            nonce: layout::NONCE_END - 1,
            acquired_ms: 1_764_000_000_123,
            consumer: "wörker:1:{x}",
        },
        LeaseMember {
            seq: 4_242,
            token: (1 << 48) - 2,
            nonce: 1 << 43,
            acquired_ms: 253_402_300_799_999,
            consumer: ":",
        },
    ];
    let cases = json!({
        "words": words.iter().map(|w| w.pack()).collect::<Vec<_>>(),
        "packs": words.iter().map(|w| json!([w.room, w.load, u8::from(w.active)])).collect::<Vec<_>>(),
        "seqs": seqs,
        "scores": score_cases.iter().map(|(k, s)| json!([k, s])).collect::<Vec<_>>(),
        "members": members.iter().map(|m| json!([m.seq, m.token, m.nonce, m.acquired_ms, m.consumer])).collect::<Vec<_>>(),
    });
    let r = report(&mut con, &cases).await;
    assert_eq!(r.len(), 8, "{r:?}");
    let mut d = Disagreements::default();

    // SLOT: the same names at the same offsets, none missing on either side.
    let mut lua_slots = pairs(&r[0]);
    for slot in Slot::ALL {
        let name = slot.lua_name();
        match lua_slots.remove(name) {
            Some(offset) => d.check(format!("SLOT.{name}"), offset, slot.offset()),
            None => d.0.push(format!("SLOT.{name}: missing from layout.lua")),
        }
        let n: u64 = slot.offset()[1..].parse().expect("offset #n");
        d.require(
            format!("SLOT.{name} (#{n}) lies below FIRST_SEQ, apart from the proxy words"),
            n < layout::FIRST_SEQ,
        );
    }
    for (name, offset) in lua_slots {
        d.0.push(format!(
            "SLOT.{name} ({offset}): in layout.lua, not in layout::Slot"
        ));
    }

    // LIMIT: every value, none missing on either side.
    let mut lua_limits = pairs(&r[1]);
    let rust_limits: [(&str, u64); 14] = [
        ("FIRST_SEQ", layout::FIRST_SEQ),
        ("MAX_SEQ", layout::MAX_SEQ),
        ("MAX_CAPACITY", layout::MAX_CAPACITY.into()),
        ("MAX_PROXIES", layout::MAX_PROXIES as u64),
        ("MAX_BATCH", layout::MAX_BATCH as u64),
        ("MAX_DURATION_MS", layout::MAX_DURATION_MS as u64),
        ("NONCE_END", layout::NONCE_END),
        ("GENERATION_END", layout::GENERATION_END),
        ("MAX_LATENCY_KEY", layout::MAX_LATENCY_KEY.into()),
        ("FILTER_BYTES", layout::FILTER_BYTES as u64),
        ("FILTER_NODES", layout::FILTER_NODES as u64),
        ("FILTER_DEPTH", layout::FILTER_DEPTH as u64),
        ("FILTER_VALUE_BYTES", layout::FILTER_VALUE_BYTES as u64),
        ("CHUNK", layout::CHUNK as u64),
    ];
    for (name, value) in rust_limits {
        match lua_limits.remove(name) {
            Some(lua) => d.check(format!("LIMIT.{name}"), lua, value),
            None => d.0.push(format!("LIMIT.{name}: missing from layout.lua")),
        }
    }
    for (name, value) in lua_limits {
        d.0.push(format!(
            "LIMIT.{name} ({value}): in layout.lua, not in pharox_redis::layout"
        ));
    }
    // The limits other parts of the workspace state on their own.
    let lua_limits = pairs(&r[1]);
    let also: [(&str, &str, u64); 6] = [
        (
            "MAX_CAPACITY",
            "pharox_redis::MAX_CONCURRENCY",
            pharox_redis::MAX_CONCURRENCY.into(),
        ),
        (
            "MAX_LATENCY_KEY",
            "pharox_redis::MAX_SORTED_LATENCY_MS + 1 (unmeasured)",
            u64::from(pharox_redis::MAX_SORTED_LATENCY_MS) + 1,
        ),
        (
            "MAX_BATCH",
            "pharox_core::validate::MAX_CLEANUP_BATCH",
            pharox_core::validate::MAX_CLEANUP_BATCH as u64,
        ),
        (
            "MAX_DURATION_MS",
            "pharox_core::validate::MAX_LEASE_DURATION",
            pharox_core::validate::MAX_LEASE_DURATION.num_milliseconds() as u64,
        ),
        (
            "FILTER_DEPTH",
            "pharox_core::filter::MAX_FILTER_DEPTH",
            pharox_core::filter::MAX_FILTER_DEPTH as u64,
        ),
        (
            "FILTER_VALUE_BYTES",
            "pharox_core::filter::MAX_FILTER_VALUE_LEN",
            pharox_core::filter::MAX_FILTER_VALUE_LEN as u64,
        ),
    ];
    for (name, rust_name, value) in also {
        d.check(
            format!("LIMIT.{name} against {rust_name}"),
            lua_limits.get(name).map_or("missing", String::as_str),
            value,
        );
    }

    // WORD's constants, as Word::pack builds them.
    let constants = pairs(&r[2]);
    let unit = Word {
        room: 0,
        load: 1,
        active: false,
    }
    .pack();
    let active_bit = Word {
        room: 0,
        load: 0,
        active: true,
    }
    .pack();
    let one_room = Word {
        room: 1,
        load: 0,
        active: false,
    }
    .pack();
    for (name, rust) in [
        ("LOAD_UNIT", unit),
        ("ACTIVE_BIT", active_bit),
        ("ACQUIRE", unit - one_room),
        ("RELEASE", one_room - unit),
    ] {
        d.check(
            format!("WORD.{name}"),
            constants.get(name).map_or("missing", String::as_str),
            rust,
        );
    }

    // WORD.room / load / active / free of each word, against Word::unpack.
    for (w, lua) in words.iter().zip(array(&r[3])) {
        let lua = texts(lua);
        let packed = w.pack();
        let Some(rust) = Word::unpack(packed) else {
            d.0.push(format!("Word::unpack({packed}): None for a word pack made"));
            continue;
        };
        d.check(format!("WORD.room({packed})"), &lua[0], rust.room);
        d.check(format!("WORD.load({packed})"), &lua[1], rust.load);
        d.check(
            format!("WORD.active({packed})"),
            &lua[2],
            u8::from(rust.active),
        );
        d.check(
            format!("WORD.free({packed})"),
            &lua[3],
            u8::from(rust.is_free()),
        );
    }
    let largest = Word {
        room: max,
        load: max,
        active: true,
    }
    .pack();
    d.require("the largest word is 2^33 - 1", largest == (1i64 << 33) - 1);
    // WORD.pack, against Word::pack.
    for (w, lua) in words.iter().zip(texts(&r[4])) {
        d.check(
            format!("WORD.pack({}, {}, {})", w.room, w.load, w.active),
            lua,
            w.pack(),
        );
    }
    // WORD.slot, against layout::word_offset.
    for (seq, lua) in seqs.iter().zip(texts(&r[5])) {
        d.check(format!("WORD.slot({seq})"), lua, layout::word_offset(*seq));
    }
    // SCORE.load and SCORE.latency, against load_score and latency_score.
    for ((key, seq), lua) in score_cases.iter().zip(array(&r[6])) {
        let lua = texts(lua);
        if *key <= max {
            d.check(
                format!("SCORE.load({key}, {seq})"),
                &lua[0],
                layout::load_score(*key, *seq),
            );
        }
        d.check(
            format!("SCORE.latency({key}, {seq})"),
            &lua[1],
            layout::latency_score(*key, *seq),
        );
        // Exact in a double, as the indexes store them.
        d.require(
            format!("SCORE.latency({key}, {seq}) is below 2^53"),
            layout::latency_score(*key, *seq) < 1 << 53,
        );
    }
    // MEMBER.build, against LeaseMember::build and parse; MEMBER.PATTERN
    // captures the sequence LeaseMember::parse reads.
    for (m, lua) in members.iter().zip(array(&r[7])) {
        let lua = texts(lua);
        let built = m.build();
        d.check(format!("MEMBER.build({built})"), &lua[0], &built);
        match LeaseMember::parse(&lua[0]) {
            Some(parsed) => d.check(
                format!("LeaseMember::parse(MEMBER.build(...)) of {built}"),
                format!("{parsed:?}"),
                format!("{m:?}"),
            ),
            None => d.0.push(format!(
                "LeaseMember::parse does not read MEMBER.build's {}",
                lua[0]
            )),
        }
        d.check(format!("MEMBER.PATTERN on {built}"), &lua[1], m.seq);
    }

    assert!(
        d.0.is_empty(),
        "layout.lua and pharox_redis::layout disagree:\n{}",
        d.0.join("\n")
    );
}

/// `layout::read_slot` reads a `counters` string fetched whole exactly as
/// BITFIELD reads it, past its end too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_slot_reads_what_bitfield_wrote() {
    let server = RedisServer::start();
    let mut con = server.raw_connection().await;
    let values: [(u64, i64); 6] = [
        (0, 42),
        (1, -1),
        (6, i64::MAX),
        (9, 9_007_199_254_740_991),
        (16, (1 << 33) - 1),
        (17, i64::MIN),
    ];
    let mut set = redis::cmd("BITFIELD");
    set.arg("counters");
    for (slot, v) in values {
        set.arg("SET")
            .arg("i64")
            .arg(layout::word_offset(slot))
            .arg(v);
    }
    let _: Vec<i64> = set.query_async(&mut con).await.unwrap();
    let whole: Vec<u8> = redis::cmd("GET")
        .arg("counters")
        .query_async(&mut con)
        .await
        .unwrap();
    for slot in 0..20 {
        let got: Vec<i64> = redis::cmd("BITFIELD_RO")
            .arg("counters")
            .arg("GET")
            .arg("i64")
            .arg(layout::word_offset(slot))
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(layout::read_slot(&whole, slot), got[0], "slot {slot}");
    }
}
