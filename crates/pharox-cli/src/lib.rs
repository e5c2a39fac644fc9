//! The `pharox` command's building blocks: the demo, the benchmark and the
//! deterministic synthetic pools both use (also used by the criterion benches).
#![forbid(unsafe_code)]

pub mod bench;
pub mod demo;
pub mod synthetic;
