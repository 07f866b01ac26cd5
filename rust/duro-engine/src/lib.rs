//! duro-engine: drives runs of registered workflows over a [`duro_store::Store`].
//!
//! The engine owns the memory side of runs (see [`engine`] for the life of
//! a run) and never calls user code: callers (the Python layer) pull
//! [`Work`] from lanes, run the step, and report the result. The sans-IO
//! decisions come from `duro-core`; durability from the store.

pub mod clock;
pub mod engine;
pub mod error;
pub mod lanes;
pub mod notify;
pub mod outcome;
mod table;
mod timers;

pub use clock::{Clock, ManualClock, SystemClock};
pub use duro_store::RunIdOrigin;
pub use engine::{Engine, EngineConfig, ExecuteWork, FailureInfo, LoadData, Started, Wait, Work};
pub use error::EngineError;
pub use lanes::{Handle, LaneId};
pub use outcome::RunOutcome;
pub use table::Registered;
