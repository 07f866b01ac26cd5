//! Engine errors, one enum for the binding layer to map.

use duro_core::error::{CoreError, NonDeterminism};
use duro_store::StoreError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(
        "workflow {name:?} version {version:?} is not defined in this process; define it (duro.workflow(...)) \
         before starting or recovering its runs"
    )]
    UnknownWorkflow { name: String, version: String },
    #[error("no run with id {0:?} exists in this store")]
    UnknownRun(String),
    #[error("run {run_id:?} is blocked: {source}")]
    Blocked {
        run_id: String,
        source: NonDeterminism,
    },
    #[error("run {run_id:?} already ended ({status}); {action} is not possible")]
    RunEnded {
        run_id: String,
        status: &'static str,
        action: &'static str,
    },
    #[error("{0}")]
    Fatal(String),
    #[error("the engine is closed")]
    Closed,
}

impl EngineError {
    pub fn is_store_failure(&self) -> bool {
        matches!(
            self,
            EngineError::Fatal(_)
                | EngineError::Store(StoreError::Failed { .. })
                | EngineError::Store(StoreError::Wal(_))
        )
    }
}
