//! The storage contract suite on the in-memory reference store.

use pharox::testkit::MemoryHarness;

pharox::storage_contract_tests!(MemoryHarness::new());
