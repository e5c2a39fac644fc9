//! `lua/layout.lua` and its Rust mirror `pharox_redis::layout` agree: the
//! scripts' shared files (`scripts::source::PRELUDE`) run on a real Redis
//! with a snippet that reports every constant, word, score and lease
//! member, and each is compared with what the Rust side computes. The
//! snippet goes through `scripts::prepare` as every script does, so the
//! constants it names are the literals the scripts receive. The constants
//! are listed from the text of `layout.lua` (every `local NAME = ...` in
//! capitals): one neither side checks, or one missing on either side, is
//! a disagreement. Every disagreement is reported by name, all at once.
//! A second test runs the word arithmetic the scripts send (`WORD_ACQUIRE`
//! on the word, `WORD_RELEASE` on its low 32 bits under `OVERFLOW FAIL`)
//! on a real BITFIELD, at the offsets the Rust mirror gives.

use std::collections::BTreeMap;

use pharox_redis::layout::{self, LeaseMember, Slot, Word};
use pharox_redis::redis::{self, Value, aio::MultiplexedConnection};
use pharox_redis::scripts::{self, source::PRELUDE};
use pharox_redis::testkit::RedisServer;
use serde_json::json;

/// The names of `layout.lua`'s constants: its `local NAME = ...` lines
/// whose name is in capitals (literal or not).
fn lua_constant_names() -> Vec<&'static str> {
    include_str!("../../../lua/layout.lua")
        .lines()
        .filter_map(|line| {
            let (name, _) = line.strip_prefix("local ")?.split_once('=')?;
            let name = name.trim();
            (name.starts_with(|c: char| c.is_ascii_uppercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .then_some(name)
        })
        .collect()
}

/// Appended to the prelude after the list of constants (`NAMED`, built
/// from `lua_constant_names`). ARGV[1] is JSON with the cases; returns
/// {constants, decoded words, composed words, slots of sequences, scores,
/// members}, every number as an exact decimal string.
const REPORT: &str = r#"
local cases = cjson.decode(ARGV[1])
local function flag(b) return b and '1' or '0' end
local function show(v)
  if type(v) == 'number' then return int(v) end
  return v
end
local constants = {}
for i = 1, #NAMED, 2 do
  constants[#constants + 1] = NAMED[i]; constants[#constants + 1] = show(NAMED[i + 1])
end
local words = {}
for _, w in ipairs(cases.words) do
  local room, load, indexed, active, in_load, in_latency = word_decode(tonumber(w))
  words[#words + 1] = { int(room), int(load), int(indexed), flag(active), flag(in_load), flag(in_latency) }
end
-- A word composed from the constants, as admin.lua's reindex and the
-- index corrections build and adjust words.
local composed = {}
for _, p in ipairs(cases.words_fields) do
  composed[#composed + 1] = int(p[1] + p[2] * WORD_LOAD_UNIT + p[3] * WORD_INDEXED_UNIT
    + (p[4] == 1 and WORD_ACTIVE or 0) + (p[5] == 1 and WORD_IN_LOAD or 0)
    + (p[6] == 1 and WORD_IN_LATENCY or 0))
end
local seq_slots = {}
for _, seq in ipairs(cases.seqs) do
  seq_slots[#seq_slots + 1] = { word_slot(int(seq)), word_low(int(seq)) }
end
local scores = {}
for _, s in ipairs(cases.scores) do
  scores[#scores + 1] = { score_load(s[1], s[2]), score_latency(s[1], s[2]) }
end
local members = {}
for _, m in ipairs(cases.members) do
  local built = member_build(m[1], m[2], m[3], m[4], m[5])
  members[#members + 1] = { built, string.match(built, MEMBER_PATTERN) or '',
    string.match(built, MEMBER_TOKEN_PATTERN) or '', string.match(built, MEMBER_REF_PATTERN) or '' }
end
local floors = {}
for _, now in ipairs(cases.floor_times) do floors[#floors + 1] = int(token_floor(now)) end
return { constants, words, composed, seq_slots, scores, members, floors }
"#;

/// Server times (ms) token_floor is compared at: before, at and after its
/// epoch, now-ish, and the year 2060 (where 48 bits of token end).
const FLOOR_TIMES: [i64; 6] = [
    0,
    layout::TOKEN_EPOCH_MS - 1,
    layout::TOKEN_EPOCH_MS,
    layout::TOKEN_EPOCH_MS + 1,
    1_796_000_000_000,
    2_866_000_000_000,
];

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
    let named: Vec<String> = lua_constant_names()
        .iter()
        .map(|n| format!("'{n}', {n}"))
        .collect();
    let script = scripts::prepare(&format!(
        "{PRELUDE}\nlocal NAMED = {{ {} }}\n{REPORT}",
        named.join(", ")
    ));
    let v: Value = redis::cmd("EVAL")
        .arg(script)
        .arg(0)
        .arg(cases.to_string())
        .query_async(con)
        .await
        .expect("the layout report runs");
    array(&v).to_vec()
}

fn word(room: u32, load: u32, indexed_load: u32, flags: [bool; 3]) -> Word {
    Word {
        room,
        load,
        indexed_load,
        active: flags[0],
        in_load_index: flags[1],
        in_latency_index: flags[2],
    }
}

/// Words of every shape: each flag alone and together, indexed loads
/// lagging and not, the largest fields.
fn sample_words() -> Vec<Word> {
    let max = layout::MAX_CAPACITY;
    let (off, on) = ([false; 3], [true; 3]);
    vec![
        Word::default(),
        word(1, 0, 0, off),
        word(0, 1, 0, [true, false, false]),
        word(1, 0, 0, [true, true, true]),
        word(3, 7, 7, [true, true, true]),
        word(3, 7, 2, [true, true, false]),
        word(3, 7, 0, [true, false, true]),
        word(3, 7, 7, off),
        word(0, 5, 4, [false, true, false]),
        word(0, 5, 5, [false, false, true]),
        word(max, 0, 0, on),
        word(max, 0, 0, off),
        word(0, max, max, on),
        word(0, max, 1, [false, true, true]),
        word(1, max - 1, max - 1, on),
        word(0, 0, max, [true, false, false]),
        // The largest word: every bit the layout uses.
        word(max, max, max, on),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layout_lua_and_the_rust_layout_agree() {
    let server = RedisServer::start();
    let mut con = server.raw_connection().await;

    let max = layout::MAX_CAPACITY;
    let words = sample_words();
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
            nonce: 1 << 41,
            acquired_ms: 253_402_300_799_999,
            consumer: ":",
        },
    ];
    let cases = json!({
        "words": words.iter().map(|w| w.pack().to_string()).collect::<Vec<_>>(),
        "words_fields": words.iter().map(|w| json!([
            w.room, w.load, w.indexed_load,
            u8::from(w.active), u8::from(w.in_load_index), u8::from(w.in_latency_index),
        ])).collect::<Vec<_>>(),
        "seqs": seqs,
        "scores": score_cases.iter().map(|(k, s)| json!([k, s])).collect::<Vec<_>>(),
        "members": members.iter().map(|m| json!([m.seq, m.token, m.nonce, m.acquired_ms, m.consumer])).collect::<Vec<_>>(),
        "floor_times": FLOOR_TIMES,
    });
    let r = report(&mut con, &cases).await;
    assert_eq!(r.len(), 7, "{r:?}");
    let mut d = Disagreements::default();

    // Every constant of layout.lua, by name, as the scripts receive it.
    let mut lua_constants = pairs(&r[0]);
    d.require(
        "layout.lua defines constants (SLOT_*, LIMIT_*, WORD_*)",
        lua_constants.len() > 30,
    );

    // SLOT_*: the same names at the same offsets, none missing on either side.
    for slot in Slot::ALL {
        let name = slot.lua_name();
        match lua_constants.remove(name) {
            Some(offset) => d.check(name, offset, slot.offset()),
            None => d.0.push(format!("{name}: missing from layout.lua")),
        }
        let n: u64 = slot.offset()[1..].parse().expect("offset #n");
        d.require(
            format!("{name} (#{n}) lies below LIMIT_FIRST_SEQ, apart from the proxy words"),
            n < layout::FIRST_SEQ,
        );
    }

    // LIMIT_*: every value, none missing on either side.
    let rust_limits: [(&str, u64); 15] = [
        ("LIMIT_FIRST_SEQ", layout::FIRST_SEQ),
        ("LIMIT_MAX_SEQ", layout::MAX_SEQ),
        ("LIMIT_MAX_CAPACITY", layout::MAX_CAPACITY.into()),
        ("LIMIT_MAX_PROXIES", layout::MAX_PROXIES as u64),
        ("LIMIT_MAX_BATCH", layout::MAX_BATCH as u64),
        ("LIMIT_MAX_DURATION_MS", layout::MAX_DURATION_MS as u64),
        ("LIMIT_NONCE_END", layout::NONCE_END),
        ("LIMIT_MAX_TOKEN", layout::MAX_TOKEN),
        ("LIMIT_GENERATION_END", layout::GENERATION_END),
        ("LIMIT_MAX_LATENCY_KEY", layout::MAX_LATENCY_KEY.into()),
        ("LIMIT_FILTER_BYTES", layout::FILTER_BYTES as u64),
        ("LIMIT_FILTER_NODES", layout::FILTER_NODES as u64),
        ("LIMIT_FILTER_DEPTH", layout::FILTER_DEPTH as u64),
        (
            "LIMIT_FILTER_VALUE_BYTES",
            layout::FILTER_VALUE_BYTES as u64,
        ),
        ("LIMIT_CHUNK", layout::CHUNK as u64),
    ];
    let all_constants = pairs(&r[0]);
    for (name, value) in rust_limits {
        match lua_constants.remove(name) {
            Some(lua) => d.check(name, lua, value),
            None => d.0.push(format!("{name}: missing from layout.lua")),
        }
    }
    // The limits other parts of the workspace state on their own.
    let also: [(&str, &str, u64); 6] = [
        (
            "LIMIT_MAX_CAPACITY",
            "pharox_redis::MAX_CONCURRENCY",
            pharox_redis::MAX_CONCURRENCY.into(),
        ),
        (
            "LIMIT_MAX_LATENCY_KEY",
            "pharox_redis::MAX_SORTED_LATENCY_MS + 1 (unmeasured)",
            u64::from(pharox_redis::MAX_SORTED_LATENCY_MS) + 1,
        ),
        (
            "LIMIT_MAX_BATCH",
            "pharox_core::validate::MAX_CLEANUP_BATCH",
            pharox_core::validate::MAX_CLEANUP_BATCH as u64,
        ),
        (
            "LIMIT_MAX_DURATION_MS",
            "pharox_core::validate::MAX_LEASE_DURATION",
            pharox_core::validate::MAX_LEASE_DURATION.num_milliseconds() as u64,
        ),
        (
            "LIMIT_FILTER_DEPTH",
            "pharox_core::filter::MAX_FILTER_DEPTH",
            pharox_core::filter::MAX_FILTER_DEPTH as u64,
        ),
        (
            "LIMIT_FILTER_VALUE_BYTES",
            "pharox_core::filter::MAX_FILTER_VALUE_LEN",
            pharox_core::filter::MAX_FILTER_VALUE_LEN as u64,
        ),
    ];
    for (name, rust_name, value) in also {
        d.check(
            format!("{name} against {rust_name}"),
            all_constants.get(name).map_or("missing", String::as_str),
            value,
        );
    }

    // WORD_*: the units of each field and flag, and the deltas of a lease,
    // as Word::pack builds them.
    let unit = |w: Word| w.pack();
    let one_room = unit(word(1, 0, 0, [false; 3]));
    let one_load = unit(word(0, 1, 0, [false; 3]));
    let word_constants: [(&str, i64); 7] = [
        ("WORD_LOAD_UNIT", one_load),
        ("WORD_INDEXED_UNIT", unit(word(0, 0, 1, [false; 3]))),
        ("WORD_ACTIVE", unit(word(0, 0, 0, [true, false, false]))),
        ("WORD_IN_LOAD", unit(word(0, 0, 0, [false, true, false]))),
        ("WORD_IN_LATENCY", unit(word(0, 0, 0, [false, false, true]))),
        ("WORD_ACQUIRE", one_load - one_room),
        ("WORD_RELEASE", one_room - one_load),
    ];
    for (name, rust) in word_constants {
        match lua_constants.remove(name) {
            Some(lua) => d.check(name, lua, rust),
            None => d.0.push(format!("{name}: missing from layout.lua")),
        }
    }
    // The clock's floor of fencing tokens (token_floor), checked on the
    // times below.
    for (name, rust) in [
        ("TOKEN_EPOCH_MS", layout::TOKEN_EPOCH_MS),
        ("TOKEN_PER_MS", layout::TOKEN_PER_MS),
    ] {
        match lua_constants.remove(name) {
            Some(lua) => d.check(name, lua, rust),
            None => d.0.push(format!("{name}: missing from layout.lua")),
        }
    }
    for (now, lua) in FLOOR_TIMES.iter().zip(texts(&r[6])) {
        d.check(
            format!("token_floor({now})"),
            lua,
            layout::token_floor(*now),
        );
    }
    // The MEMBER_* patterns are checked on the members below.
    for name in [
        "MEMBER_PATTERN",
        "MEMBER_TOKEN_PATTERN",
        "MEMBER_REF_PATTERN",
    ] {
        d.require(
            format!("{name} is defined in layout.lua"),
            lua_constants.remove(name).is_some(),
        );
    }
    for (name, value) in lua_constants {
        d.0.push(format!(
            "{name} ({value}): in layout.lua, not in pharox_redis::layout (or unchecked here)"
        ));
    }

    // word_decode of each word, against Word::unpack.
    for (w, lua) in words.iter().zip(array(&r[1])) {
        let lua = texts(lua);
        let packed = w.pack();
        let Some(rust) = Word::unpack(packed) else {
            d.0.push(format!("Word::unpack({packed}): None for a word pack made"));
            continue;
        };
        d.require(format!("Word::unpack(Word::pack({w:?}))"), rust == *w);
        let fields = [
            ("room", rust.room.to_string()),
            ("load", rust.load.to_string()),
            ("indexed load", rust.indexed_load.to_string()),
            ("active", u8::from(rust.active).to_string()),
            ("in free_by_load", u8::from(rust.in_load_index).to_string()),
            (
                "in free_by_latency",
                u8::from(rust.in_latency_index).to_string(),
            ),
        ];
        for ((what, rust), lua) in fields.iter().zip(&lua) {
            d.check(format!("word_decode({packed}): {what}"), lua, rust);
        }
    }
    d.require(
        "the largest word is 2^51 - 1",
        word(max, max, max, [true; 3]).pack() == (1i64 << 51) - 1,
    );
    // Words composed from WORD_*, against Word::pack.
    for (w, lua) in words.iter().zip(texts(&r[2])) {
        d.check(
            format!("a word composed from WORD_* of {w:?}"),
            lua,
            w.pack(),
        );
    }
    // word_slot and word_low, against word_offset and word_low_offset.
    for (seq, lua) in seqs.iter().zip(array(&r[3])) {
        let lua = texts(lua);
        d.check(
            format!("word_slot({seq})"),
            &lua[0],
            layout::word_offset(*seq),
        );
        d.check(
            format!("word_low({seq})"),
            &lua[1],
            layout::word_low_offset(*seq),
        );
        // Its low 32 bits lie inside the word: the second half of i64 #seq.
        d.require(
            format!("word_low({seq}) addresses the low half of word {seq}"),
            layout::word_low_offset(*seq) == 64 * seq + 32,
        );
    }
    // score_load and score_latency, against load_score and latency_score.
    for ((key, seq), lua) in score_cases.iter().zip(array(&r[4])) {
        let lua = texts(lua);
        if *key <= max {
            d.check(
                format!("score_load({key}, {seq})"),
                &lua[0],
                layout::load_score(*key, *seq),
            );
        }
        d.check(
            format!("score_latency({key}, {seq})"),
            &lua[1],
            layout::latency_score(*key, *seq),
        );
        // Exact in a double, as the indexes store them.
        d.require(
            format!("score_latency({key}, {seq}) is below 2^53"),
            layout::latency_score(*key, *seq) < 1 << 53,
        );
    }
    // member_build, against LeaseMember::build and parse; MEMBER_PATTERN
    // captures the sequence LeaseMember::parse reads.
    for (m, lua) in members.iter().zip(array(&r[5])) {
        let lua = texts(lua);
        let built = m.build();
        d.check(format!("member_build({built})"), &lua[0], &built);
        match LeaseMember::parse(&lua[0]) {
            Some(parsed) => d.check(
                format!("LeaseMember::parse(member_build(...)) of {built}"),
                format!("{parsed:?}"),
                format!("{m:?}"),
            ),
            None => d.0.push(format!(
                "LeaseMember::parse does not read member_build's {}",
                lua[0]
            )),
        }
        d.check(format!("MEMBER_PATTERN on {built}"), &lua[1], m.seq);
        d.check(format!("MEMBER_TOKEN_PATTERN on {built}"), &lua[2], m.token);
        d.check(
            format!("MEMBER_REF_PATTERN on {built}"),
            &lua[3],
            format!("{}:{}", m.token, m.nonce),
        );
    }

    assert!(
        d.0.is_empty(),
        "layout.lua and pharox_redis::layout disagree:\n{}",
        d.0.join("\n")
    );
}

/// The word arithmetic the scripts send, on a real BITFIELD at the offsets
/// of the Rust mirror: `WORD_ACQUIRE` added to word `seq` (i64) takes one
/// room to the load; `WORD_RELEASE` added to its low 32 bits (u32 at
/// `word_low_offset`) under `OVERFLOW FAIL` gives it back, leaving the
/// indexed load and the flags as they were, and is refused (nil, nothing
/// written) at load 0; at load 0 with room 65535 it is not refused but
/// lands on room 0, the case `end_lease` puts back. Words of every valid
/// shape of `sample_words`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_deltas_move_one_slot_between_room_and_load() {
    let server = RedisServer::start();
    let mut con = server.raw_connection().await;
    let max = layout::MAX_CAPACITY;
    let one_room = word(1, 0, 0, [false; 3]).pack();
    let one_load = word(0, 1, 0, [false; 3]).pack();
    let (acquire, release) = (one_load - one_room, one_room - one_load);
    let mut wrong = Vec::new();
    // Only words a proxy can have: room + load is its capacity.
    let valid = sample_words()
        .into_iter()
        .filter(|w| w.room + w.load >= 1 && w.room + w.load <= max);
    for (i, w) in valid.enumerate() {
        // Neighbours on both sides must stay untouched.
        let seq = layout::FIRST_SEQ + 1 + 2 * i as u64;
        let key = format!("counters-{i}");
        let set: Vec<i64> = redis::cmd("BITFIELD")
            .arg(&key)
            .arg("SET")
            .arg("i64")
            .arg(layout::word_offset(seq - 1))
            .arg(-1)
            .arg("SET")
            .arg("i64")
            .arg(layout::word_offset(seq))
            .arg(w.pack())
            .arg("SET")
            .arg("i64")
            .arg(layout::word_offset(seq + 1))
            .arg(-1)
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(set.len(), 3);
        let ended: Vec<Option<i64>> = redis::cmd("BITFIELD")
            .arg(&key)
            .arg("OVERFLOW")
            .arg("FAIL")
            .arg("INCRBY")
            .arg("u32")
            .arg(layout::word_low_offset(seq))
            .arg(release)
            .arg("GET")
            .arg("i64")
            .arg(layout::word_offset(seq))
            .query_async(&mut con)
            .await
            .unwrap();
        let after = Word::unpack(ended[1].unwrap());
        let want = if w.load == 0 && w.room == max {
            // Not refused: room 65535 - 65535, as end_lease checks.
            Some(Word { room: 0, ..w })
        } else if w.load == 0 {
            Some(w)
        } else {
            Some(Word {
                room: w.room + 1,
                load: w.load - 1,
                ..w
            })
        };
        let refused = w.load == 0 && w.room != max;
        if ended[0].is_none() != refused || after != want {
            wrong.push(format!(
                "release on {w:?}: refused {} (want {refused}), left {after:?}, want {want:?}",
                ended[0].is_none()
            ));
        }
        if w.room > 0 && w.load < max {
            let r: Vec<i64> = redis::cmd("BITFIELD")
                .arg(&key)
                .arg("SET")
                .arg("i64")
                .arg(layout::word_offset(seq))
                .arg(w.pack())
                .arg("INCRBY")
                .arg("i64")
                .arg(layout::word_offset(seq))
                .arg(acquire)
                .query_async(&mut con)
                .await
                .unwrap();
            let want = Word {
                room: w.room - 1,
                load: w.load + 1,
                ..w
            };
            if Word::unpack(r[1]) != Some(want) {
                wrong.push(format!(
                    "acquire on {w:?}: left {:?}, want {want:?}",
                    Word::unpack(r[1])
                ));
            }
        }
        let around: Vec<i64> = redis::cmd("BITFIELD_RO")
            .arg(&key)
            .arg("GET")
            .arg("i64")
            .arg(layout::word_offset(seq - 1))
            .arg("GET")
            .arg("i64")
            .arg(layout::word_offset(seq + 1))
            .query_async(&mut con)
            .await
            .unwrap();
        if around != [-1, -1] {
            wrong.push(format!("the words beside {w:?} changed: {around:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
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
        (16, (1 << 51) - 1),
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
