//! Engine types to Python values: tuples for the hot path (cheap to build),
//! dicts for the inspection API (self-describing).

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use duro_core::entries::JournalEntry;
use duro_core::journal::ErrorInfo;
use duro_core::summary::RunSummary;
use duro_engine::{RunOutcome, Work};
use hashbrown::hash_table::Entry;
use hashbrown::HashTable;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

/// The outputs a run recorded before it was (re)loaded, by step name, kept on
/// the Rust side: a run resumed after thousands of steps hands Python one
/// object instead of thousands of tuples, and Python reads (and decodes) an
/// output only when a step asks for it. Sleeps (empty outputs) are left out.
#[pyclass(frozen, module = "duro._core")]
pub struct RecordedOutputs {
    /// `(name, output)` in step order (outputs shared with the engine's state).
    entries: Vec<(String, Arc<Vec<u8>>)>,
    /// Indexes into `entries` by name: the names are hashed, not copied (a long
    /// run's names would otherwise be held twice).
    by_name: HashTable<usize>,
    hasher: RandomState,
}

impl RecordedOutputs {
    fn new(mut entries: Vec<(String, Arc<Vec<u8>>)>) -> RecordedOutputs {
        entries.retain(|(_, raw)| !raw.is_empty());
        let hasher = RandomState::new();
        let mut by_name = HashTable::with_capacity(entries.len());
        for (i, (name, _)) in entries.iter().enumerate() {
            let hash = hasher.hash_one(name.as_str());
            // Step names are unique within a definition; were one repeated, its
            // first output would be the one found.
            let slot = by_name.entry(
                hash,
                |&j: &usize| entries[j].0 == *name,
                |&j: &usize| hasher.hash_one(entries[j].0.as_str()),
            );
            if let Entry::Vacant(slot) = slot {
                slot.insert(i);
            }
        }
        RecordedOutputs {
            entries,
            by_name,
            hasher,
        }
    }

    fn find(&self, name: &str) -> Option<&[u8]> {
        let hash = self.hasher.hash_one(name);
        self.by_name
            .find(hash, |&j| self.entries[j].0 == name)
            .map(|&j| self.entries[j].1.as_slice())
    }
}

#[pymethods]
impl RecordedOutputs {
    /// The recorded output bytes of a step, or `None`.
    fn get<'py>(&self, py: Python<'py>, name: &str) -> Option<Bound<'py, PyBytes>> {
        self.find(name).map(|raw| PyBytes::new(py, raw))
    }

    /// Step names, in step order.
    fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|(name, _)| name.as_str()).collect()
    }

    fn __len__(&self) -> usize {
        self.entries.len()
    }

    fn __contains__(&self, name: &str) -> bool {
        self.find(name).is_some()
    }
}

/// Work kinds as the Python driver sees them (step kinds 0..=4, then release).
pub const WORK_RELEASE: u8 = 9;

pub fn error_tuple<'py>(py: Python<'py>, error: &ErrorInfo) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(
        py,
        [
            error.error_type.clone().into_pyobject(py)?.into_any(),
            error.message.clone().into_pyobject(py)?.into_any(),
            pyo3::types::PyBool::new(py, error.retryable)
                .to_owned()
                .into_any(),
        ],
    )
}

fn outputs_list<'py>(
    py: Python<'py>,
    outputs: &[(String, Vec<u8>)],
) -> PyResult<Bound<'py, PyList>> {
    let items: Vec<Bound<'py, PyTuple>> = outputs
        .iter()
        .map(|(name, bytes)| {
            PyTuple::new(
                py,
                [
                    name.into_pyobject(py)?.into_any(),
                    PyBytes::new(py, bytes).into_any(),
                ],
            )
        })
        .collect::<PyResult<_>>()?;
    PyList::new(py, items)
}

/// `(kind, handle, seq, step_index, attempt, load, failure)`; built for every
/// step, so it holds only what the caller reads (a step's idempotency key comes
/// from `idempotency_key` when a step asks for it);
/// `load` is `None` or `(generation, run_id, workflow, version, input, [(name, output)])`;
/// `failure` is `None` or `(failed_step, (type, message, retryable), [completed step names])`.
pub fn work<'py>(py: Python<'py>, work: Work) -> PyResult<Bound<'py, PyTuple>> {
    match work {
        Work::Release { handle } => PyTuple::new(
            py,
            [
                WORK_RELEASE.into_pyobject(py)?.into_any(),
                handle.into_pyobject(py)?.into_any(),
            ],
        ),
        Work::Execute(mut w) => {
            let load = match w.load.take() {
                None => py.None().into_bound(py),
                Some(l) => PyTuple::new(
                    py,
                    [
                        l.generation.into_pyobject(py)?.into_any(),
                        l.run_id.as_str().into_pyobject(py)?.into_any(),
                        l.workflow.as_str().into_pyobject(py)?.into_any(),
                        l.version.as_str().into_pyobject(py)?.into_any(),
                        PyBytes::new(py, &l.input).into_any(),
                        Bound::new(py, RecordedOutputs::new(l.outputs))?.into_any(),
                    ],
                )?
                .into_any(),
            };
            let failure = match &w.failure {
                None => py.None().into_bound(py),
                Some(f) => PyTuple::new(
                    py,
                    [
                        f.failed_step.as_deref().into_pyobject(py)?.into_any(),
                        error_tuple(py, &f.error)?.into_any(),
                        PyList::new(py, &f.completed_steps)?.into_any(),
                    ],
                )?
                .into_any(),
            };
            let step_index: i64 = w.step_index.map_or(-1, |i| i as i64);
            PyTuple::new(
                py,
                [
                    w.kind.code().into_pyobject(py)?.into_any(),
                    w.handle.into_pyobject(py)?.into_any(),
                    w.seq.into_pyobject(py)?.into_any(),
                    step_index.into_pyobject(py)?.into_any(),
                    w.attempt.into_pyobject(py)?.into_any(),
                    load,
                    failure,
                ],
            )
        }
    }
}

pub fn summary<'py>(py: Python<'py>, s: &RunSummary) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("run_key", s.run_key)?;
    d.set_item("run_id", &s.run_id)?;
    d.set_item("workflow", &s.workflow)?;
    d.set_item("version", &s.version)?;
    d.set_item("status", s.status.as_str())?;
    d.set_item("created_at_ms", s.created_at_ms)?;
    d.set_item("started_at_ms", s.started_at_ms)?;
    d.set_item("updated_at_ms", s.updated_at_ms)?;
    d.set_item("completed_at_ms", s.completed_at_ms)?;
    d.set_item("current_step", &s.current_step)?;
    d.set_item("step_count", s.step_count)?;
    d.set_item("completed_step_count", s.completed_step_count)?;
    d.set_item(
        "error",
        s.error.as_ref().map(|e| error_tuple(py, e)).transpose()?,
    )?;
    d.set_item("wake_at_ms", s.wake_at_ms)?;
    d.set_item("event_count", s.event_count)?;
    Ok(d)
}

pub fn entry<'py>(py: Python<'py>, e: &JournalEntry) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("index", e.seq)?;
    d.set_item("name", &e.name)?;
    d.set_item("kind", e.kind.as_str())?;
    d.set_item("status", e.status.as_str())?;
    d.set_item("attempt", e.attempt)?;
    d.set_item("output", e.output.as_ref().map(|o| PyBytes::new(py, o)))?;
    d.set_item(
        "error",
        e.error
            .as_ref()
            .map(|err| error_tuple(py, err))
            .transpose()?,
    )?;
    d.set_item("started_at_ms", e.started_at_ms)?;
    d.set_item("completed_at_ms", e.completed_at_ms)?;
    d.set_item("duration_ms", e.duration_ms())?;
    d.set_item("retry_at_ms", e.retry_at_ms)?;
    Ok(d)
}

/// `(status, run_id, [(name, output)], output, error|None, failed_step|None, failed_attempt,
///   [(name, (type, message, retryable))], completed_at_ms)`
pub fn outcome<'py>(py: Python<'py>, o: &RunOutcome) -> PyResult<Bound<'py, PyTuple>> {
    let compensation_errors: Vec<Bound<'py, PyTuple>> = o
        .compensation_errors
        .iter()
        .map(|(name, err)| {
            PyTuple::new(
                py,
                [
                    name.into_pyobject(py)?.into_any(),
                    error_tuple(py, err)?.into_any(),
                ],
            )
        })
        .collect::<PyResult<_>>()?;
    PyTuple::new(
        py,
        [
            o.status.as_str().into_pyobject(py)?.into_any(),
            o.run_id.as_str().into_pyobject(py)?.into_any(),
            outputs_list(py, &o.outputs)?.into_any(),
            PyBytes::new(py, &o.output).into_any(),
            match &o.error {
                Some(e) => error_tuple(py, e)?.into_any(),
                None => py.None().into_bound(py),
            },
            o.failed_step.as_deref().into_pyobject(py)?.into_any(),
            o.failed_attempt.into_pyobject(py)?.into_any(),
            PyList::new(py, compensation_errors)?.into_any(),
            o.completed_at_ms.into_pyobject(py)?.into_any(),
        ],
    )
}
