//! Where runs live: the [`Store`] trait, the embedded store (a directory: a
//! write-ahead log that is the truth, and an SQLite index kept from it), the
//! in-memory store, and the [`conformance`] suite every store passes.
//!
//! Stores only know events and summaries; the engine above decides what to
//! append. The trait is shaped for a networked store too (PostgreSQL, later):
//! appends carry the position they expect (a lost race is a conflict, never a
//! silent overwrite), acknowledgements come back asynchronously through an
//! [`AckSink`], and recovery asks the store to `claim_due` runs rather than
//! assuming it owns them all. What a networked store must add to that (leases,
//! a fencing epoch) is written down at [`Store::claim_due`].

mod api;
pub mod conformance;
pub mod embedded;
mod error;
pub mod memory;
mod record;

pub use api::{
    AckSink, Receipt, RunFilter, RunIdOrigin, StartOutcome, Store, Token, DEFAULT_MAX_APPEND_BYTES,
};
pub use embedded::{EmbeddedOptions, EmbeddedStore, IndexCommitSite, IndexFault, IndexFaults};
pub use error::StoreError;
pub use memory::MemoryStore;
pub use record::append_size;
