//! The `pharox` command's building blocks: the demo, the benchmark, the
//! deterministic synthetic pools both use (also used by the criterion
//! benches), the admin commands and the proxy-list reader, the output of
//! the operations commands, and `serve`'s key and
//! address rules.
#![forbid(unsafe_code)]

pub mod admin;
pub mod bench;
pub mod demo;
pub mod import;
pub mod ops;
pub mod serve;
pub mod serve_child;
pub mod synthetic;
