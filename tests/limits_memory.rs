//! The limits suite on the in-memory reference store: every limit of
//! `pharox_core::validate` at its largest accepted value, one more refused.

use pharox::testkit::MemoryHarness;

pharox::storage_limit_tests!(MemoryHarness::new());
