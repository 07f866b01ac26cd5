//! The one place Rust errors become Python exceptions.
//!
//! The exception classes live here (so Rust can raise them) and are
//! re-exported by `duro.errors`, which adds the purely Python ones.

use duro_core::error::CoreError;
use duro_engine::EngineError;
use duro_store::StoreError as RustStoreError;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    _core,
    DuroError,
    PyException,
    "Base class of every error duro raises."
);
create_exception!(
    _core,
    InvalidArgument,
    DuroError,
    "An argument is invalid; the message names it and says what is allowed."
);
create_exception!(
    _core,
    PayloadTooLarge,
    InvalidArgument,
    "An input, output or event payload is over the size limit."
);
create_exception!(
    _core,
    WorkflowNotFound,
    DuroError,
    "The workflow (name and version) is not defined in this process."
);
create_exception!(
    _core,
    RunNotFound,
    DuroError,
    "No run with this id exists in the store."
);
create_exception!(
    _core,
    RunEnded,
    DuroError,
    "The run already ended; the action is not possible any more."
);
create_exception!(
    _core,
    NonDeterminismError,
    DuroError,
    "A run's journal disagrees with the workflow's current definition."
);
create_exception!(
    _core,
    StoreError,
    DuroError,
    "The store failed; the message says where and what to do."
);
create_exception!(
    _core,
    StoreLocked,
    StoreError,
    "The embedded store is open in another process."
);
create_exception!(
    _core,
    StoreFailed,
    StoreError,
    "The store stopped accepting writes (e.g. a failed fsync); reopen it to recover."
);
create_exception!(
    _core,
    CorruptionError,
    StoreError,
    "Stored data is corrupt; the message names the file and offset."
);
create_exception!(
    _core,
    NewerFormat,
    StoreError,
    "The store was written by a newer duro."
);
create_exception!(_core, EngineClosed, DuroError, "The engine was closed.");
create_exception!(
    _core,
    StaleResult,
    DuroError,
    "A step's result arrived after its attempt was closed (workflow timeout, cancellation); it was discarded."
);

fn store_error(error: &RustStoreError) -> PyErr {
    let message = error.to_string();
    match error {
        RustStoreError::Locked { .. } | RustStoreError::LockedHere { .. } => {
            StoreLocked::new_err(message)
        }
        RustStoreError::IndexCorrupt { .. }
        | RustStoreError::BadRecord { .. }
        | RustStoreError::LogBehindIndex { .. }
        | RustStoreError::LogGap { .. } => CorruptionError::new_err(message),
        RustStoreError::Wal(duro_wal::WalError::Corrupt { .. }) => {
            CorruptionError::new_err(message)
        }
        RustStoreError::AppendTooLarge { .. } => PayloadTooLarge::new_err(message),
        RustStoreError::UnknownRecordType { .. } => NewerFormat::new_err(message),
        RustStoreError::NewerFormat { .. }
        | RustStoreError::Wal(duro_wal::WalError::NewerFormat { .. }) => {
            NewerFormat::new_err(message)
        }
        RustStoreError::Failed { .. }
        | RustStoreError::Wal(duro_wal::WalError::Poisoned { .. }) => StoreFailed::new_err(message),
        RustStoreError::Closed => EngineClosed::new_err(message),
        RustStoreError::UnknownRun { .. } => RunNotFound::new_err(message),
        RustStoreError::RunEnded { .. } => RunEnded::new_err(message),
        RustStoreError::Core(core) => core_error(core),
        _ => StoreError::new_err(message),
    }
}

fn core_error(error: &CoreError) -> PyErr {
    let message = error.to_string();
    match error {
        CoreError::TooLarge { .. } => PayloadTooLarge::new_err(message),
        CoreError::Policy(_) | CoreError::InvalidInput { .. } => InvalidArgument::new_err(message),
        CoreError::NonDeterminism(_) => NonDeterminismError::new_err(message),
        CoreError::RunFinished { .. } => RunEnded::new_err(message),
        CoreError::Decode(_) | CoreError::Inconsistent { .. } => CorruptionError::new_err(message),
        CoreError::StaleResult { .. } => StaleResult::new_err(message),
        // Only ever a reason a run is blocked (Wait::CannotRun), not a call's error.
        CoreError::CannotRun { .. } => DuroError::new_err(message),
    }
}

/// Maps every engine error to its Python exception.
pub fn to_py(error: EngineError) -> PyErr {
    let message = error.to_string();
    match &error {
        EngineError::Store(store) => store_error(store),
        EngineError::Core(core) => core_error(core),
        EngineError::UnknownWorkflow { .. } => WorkflowNotFound::new_err(message),
        EngineError::UnknownRun(_) => RunNotFound::new_err(message),
        EngineError::Blocked { .. } => NonDeterminismError::new_err(message),
        EngineError::RunEnded { .. } => RunEnded::new_err(message),
        EngineError::Fatal(_) => StoreFailed::new_err(message),
        EngineError::Closed => EngineClosed::new_err(message),
    }
}

pub fn core_to_py(error: CoreError) -> PyErr {
    core_error(&error)
}

pub fn store_to_py(error: RustStoreError) -> PyErr {
    store_error(&error)
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add("DuroError", py.get_type::<DuroError>())?;
    module.add("InvalidArgument", py.get_type::<InvalidArgument>())?;
    module.add("PayloadTooLarge", py.get_type::<PayloadTooLarge>())?;
    module.add("WorkflowNotFound", py.get_type::<WorkflowNotFound>())?;
    module.add("RunNotFound", py.get_type::<RunNotFound>())?;
    module.add("RunEnded", py.get_type::<RunEnded>())?;
    module.add("NonDeterminismError", py.get_type::<NonDeterminismError>())?;
    module.add("StoreError", py.get_type::<StoreError>())?;
    module.add("StoreLocked", py.get_type::<StoreLocked>())?;
    module.add("StoreFailed", py.get_type::<StoreFailed>())?;
    module.add("CorruptionError", py.get_type::<CorruptionError>())?;
    module.add("NewerFormat", py.get_type::<NewerFormat>())?;
    module.add("EngineClosed", py.get_type::<EngineClosed>())?;
    module.add("StaleResult", py.get_type::<StaleResult>())?;
    Ok(())
}
