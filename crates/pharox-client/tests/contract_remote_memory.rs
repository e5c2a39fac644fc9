//! The storage contract suite through RemoteStorage, against a server on
//! the in-memory store with a manual clock.

mod common;

use common::RemoteHarness;
use pharox_core::testkit::MemoryHarness;

pharox_core::storage_contract_tests!(RemoteHarness::over(MemoryHarness::new()).await);
