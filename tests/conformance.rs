//! The conformance suite against every native backend.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(not(target_arch = "wasm32"))]

mod support;

mod memory {
    edge_memory::conformance_tests!(edge_memory::checkpoint::memory::MemoryCheckpointer::new());
}

mod sqlite {
    edge_memory::conformance_tests!(crate::support::sqlite_store());
}

/// Both backends pass, and the report covers every case the macro stamps.
#[test]
fn run_all_reports_every_case() {
    let report = pollster::block_on(edge_memory::checkpoint::conformance::run_all(
        &support::sqlite_store(),
    ));
    assert!(report.all_passed(), "{report:?}");
    assert_eq!(report.cases.len(), 17);
}

mod kv {
    edge_memory::conformance_tests!(edge_memory::checkpoint::kv::KvCheckpointer::new(
        edge_memory::checkpoint::kv::MemoryKv::new()
    ));
}

/// KV with the thread object's register (as the worker runs it).
mod kv_with_register {
    edge_memory::conformance_tests!(edge_memory::checkpoint::kv::KvCheckpointer::with_register(
        edge_memory::checkpoint::kv::MemoryKv::new(),
        edge_memory::checkpoint::kv::MemoryKv::new()
    ));
}
