//! Every store passes the same suite.

use std::sync::Arc;

use duro_store::conformance;
use duro_store::{EmbeddedOptions, EmbeddedStore, MemoryStore, Store};

#[test]
fn memory_store_conforms() {
    conformance::run_all(&|| Arc::new(MemoryStore::new()) as Arc<dyn Store>);
}

#[test]
fn embedded_store_conforms() {
    let root = tempfile::tempdir().unwrap();
    let counter = std::sync::atomic::AtomicUsize::new(0);
    conformance::run_all(&|| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Arc::new(
            EmbeddedStore::open(
                root.path().join(format!("s{n}")),
                EmbeddedOptions::default(),
            )
            .unwrap(),
        ) as Arc<dyn Store>
    });
}
