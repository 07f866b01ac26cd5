//! `duro._core`: the native half of the duro Python package.
//!
//! Thin by design: arguments are converted, the engine is called, results
//! come back as tuples and dicts. The GIL is released around everything that
//! can wait (disk, index catch-up, lanes). Rust never holds a user's Python
//! object: step functions stay in Python, referred to by index.

mod convert;
mod defs;
mod errors;
mod functions;
mod open;

use std::time::Duration;

use duro_core::journal::ErrorInfo;
use duro_core::limits::Limits;
use duro_core::summary::RunStatus;
use duro_core::time::Millis;
use duro_engine::{Engine, EngineConfig, LaneId, RunIdOrigin, Wait};
use duro_store::{Receipt, RunFilter};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use defs::{RetryTuple, StepTuple};
use errors::{to_py, InvalidArgument, StoreFailed};

/// One engine over one store.
#[pyclass(frozen, module = "duro._core")]
struct Core {
    engine: Engine,
    description: String,
    registered_at_open: Vec<u64>,
}

fn receipt_tuple(r: Receipt) -> (u64, bool) {
    (r.position, r.durable)
}

/// What `step_ok`/`step_err` hand back inline (see `Core::inline_next`).
type InlineNext<'py> = (Bound<'py, PyTuple>, u64, u64);

impl Core {
    /// `(work, position, round)`: the run's next work, the position that must be
    /// durable before it runs, and the sync round to wait for (`sync_round`, 0 if
    /// durable already), so the caller needs no second call per step.
    fn inline_next<'py>(
        &self,
        py: Python<'py>,
        (work, position): (duro_engine::ExecuteWork, u64),
    ) -> PyResult<InlineNext<'py>> {
        let round = self.engine.sync_round(position);
        Ok((
            convert::work(py, duro_engine::Work::Execute(work))?,
            position,
            round,
        ))
    }
}

#[pymethods]
impl Core {
    /// Opens a store (`path` a directory, or `None` for memory) and an engine over it,
    /// and registers `definitions` (an iterable of `Workflow._native_spec()` tuples)
    /// before any run is resumed; `registered_at_open` gives their generations.
    ///
    /// The store opens on its own thread while this one (holding the GIL) converts
    /// the definitions: recovering the log and converting a long definition both
    /// take milliseconds, and a crashed run resumes only once both are done.
    #[new]
    #[pyo3(signature = (path, *, max_payload_bytes=None, max_recovery_attempts=None, finished_capacity=None, segment_size=None, fsync=true, definitions=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: Option<String>,
        max_payload_bytes: Option<usize>,
        max_recovery_attempts: Option<u32>,
        finished_capacity: Option<usize>,
        segment_size: Option<u64>,
        fsync: bool,
        definitions: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Core> {
        let mut limits = Limits::default();
        if let Some(v) = max_payload_bytes {
            limits.max_payload_bytes = v;
        }
        if let Some(v) = max_recovery_attempts {
            limits.max_recovery_attempts = v;
        }
        let mut config = EngineConfig {
            limits,
            ..EngineConfig::default()
        };
        if let Some(v) = finished_capacity {
            config.finished_capacity = v;
        }
        let opening = std::thread::Builder::new()
            .name("duro-open".into())
            .spawn(move || open::open_engine(path, config, segment_size, fsync))
            .map_err(|e| {
                StoreFailed::new_err(format!("cannot start a thread to open the store: {e}"))
            })?;
        // Converted while the store opens. On an error the open is still waited
        // for, so the engine it made is closed (and the store unlocked) before
        // the error reaches Python.
        let converted = definitions.map_or(Ok(Vec::new()), |defs| {
            defs.try_iter()?
                .map(|spec| defs::workflow_def(spec?.extract()?))
                .collect::<PyResult<Vec<_>>>()
        });
        let opened = py.detach(|| opening.join());
        let (engine, description) = match opened {
            Ok(result) => result?,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        let registered = converted.and_then(|defs| {
            defs.into_iter()
                .map(|(def, lane)| engine.register(def, lane).map_err(to_py))
                .collect::<PyResult<Vec<u64>>>()
        });
        let registered_at_open = match registered {
            Ok(generations) => generations,
            Err(error) => {
                // Closed now, not when the last reference goes (the timer thread may hold
                // one for a while): the caller may open the store again at once.
                py.detach(|| engine.close()).map_err(to_py)?;
                return Err(error);
            }
        };
        Ok(Core {
            engine,
            description,
            registered_at_open,
        })
    }

    /// Defines a workflow; returns the registration's generation (echoed in work loads).
    /// `steps` items: `(name, kind, duration_ms, timeout_ms, retry, compensate_retry)`
    /// with kind 0 = function, 1 = sleep, 2 = wait for event.
    #[pyo3(signature = (name, version, lane, steps, on_failure_retry, timeout_ms))]
    fn register(
        &self,
        name: String,
        version: String,
        lane: u8,
        steps: Vec<StepTuple>,
        on_failure_retry: Option<RetryTuple>,
        timeout_ms: Option<u64>,
    ) -> PyResult<u64> {
        let (def, lane) =
            defs::workflow_def((name, version, lane, steps, on_failure_retry, timeout_ms))?;
        self.engine.register(def, lane).map_err(to_py)
    }

    /// The generations of the `definitions` given when the engine opened, in their order.
    fn registered_at_open(&self) -> Vec<u64> {
        self.registered_at_open.clone()
    }

    /// Starts a run (or finds it): `(run_key, created, receipt)`. Does not wait for durability.
    /// Keeps the GIL: it never blocks (an index lookup and an in-memory append), and
    /// releasing it would hand it to a worker for a whole switch interval.
    /// `generated_id`: the run id is fresh random bits (`new_run_id`), never a
    /// caller's, so it is not looked up in the index.
    #[pyo3(signature = (workflow, version, run_id, input, delay_ms=None, generated_id=false))]
    fn start(
        &self,
        workflow: &str,
        version: &str,
        run_id: &str,
        input: &Bound<'_, PyBytes>,
        delay_ms: Option<u64>,
        generated_id: bool,
    ) -> PyResult<(u64, bool, (u64, bool))> {
        let input = input.as_bytes().to_vec();
        let origin = if generated_id {
            RunIdOrigin::Generated
        } else {
            RunIdOrigin::Caller
        };
        let started = self
            .engine
            .start_with(workflow, version, run_id, input, delay_ms, origin)
            .map_err(to_py)?;
        Ok((
            started.run_key,
            started.created,
            receipt_tuple(started.receipt),
        ))
    }

    /// Blocks (GIL released) until the receipt's append is durable.
    fn wait_durable(&self, py: Python<'_>, receipt: (u64, bool)) -> PyResult<()> {
        let receipt = Receipt {
            position: receipt.0,
            durable: receipt.1,
        };
        py.detach(|| self.engine.wait_durable(receipt))
            .map_err(to_py)
    }

    /// The next work of a lane (see `convert::work`), waiting up to `timeout_s`; `None` on timeout.
    fn next_work<'py>(
        &self,
        py: Python<'py>,
        lane: u8,
        timeout_s: f64,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let lane = if lane == 1 {
            LaneId::Async
        } else {
            LaneId::Sync
        };
        // Fast path without releasing the GIL: work is usually waiting.
        let ready = self.engine.take_work(lane, 1).map_err(to_py)?;
        if let Some(work) = ready.into_iter().next() {
            return convert::work(py, work).map(Some);
        }
        let timeout = Duration::from_secs_f64(timeout_s.max(0.0));
        match py
            .detach(|| self.engine.next_work(lane, timeout))
            .map_err(to_py)?
        {
            Some(work) => convert::work(py, work).map(Some),
            None => Ok(None),
        }
    }

    /// Up to `max` works of a lane, without waiting (for event loops).
    fn take_work<'py>(
        &self,
        py: Python<'py>,
        lane: u8,
        max: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let lane = if lane == 1 {
            LaneId::Async
        } else {
            LaneId::Sync
        };
        let works = self.engine.take_work(lane, max).map_err(to_py)?;
        let items: Vec<Bound<'py, PyTuple>> = works
            .into_iter()
            .map(|w| convert::work(py, w))
            .collect::<PyResult<_>>()?;
        PyList::new(py, items)
    }

    /// Reports a step's output. With `inline`, returns `(next work, position)` when the
    /// run's next step is decided: run it once `durable_position() >= position`.
    #[pyo3(signature = (handle, seq, attempt, output, inline=false))]
    fn step_ok<'py>(
        &self,
        py: Python<'py>,
        handle: u64,
        seq: u32,
        attempt: u32,
        output: &Bound<'_, PyBytes>,
        inline: bool,
    ) -> PyResult<Option<InlineNext<'py>>> {
        let next = self
            .engine
            .step_succeeded_inline(handle, seq, attempt, output.as_bytes().to_vec(), inline)
            .map_err(to_py)?;
        next.map(|next| self.inline_next(py, next)).transpose()
    }

    /// Reports a step's failure; `inline` as in `step_ok`.
    #[pyo3(signature = (handle, seq, attempt, error_type, message, retryable, inline=false))]
    #[allow(clippy::too_many_arguments)]
    fn step_err<'py>(
        &self,
        py: Python<'py>,
        handle: u64,
        seq: u32,
        attempt: u32,
        error_type: String,
        message: String,
        retryable: bool,
        inline: bool,
    ) -> PyResult<Option<InlineNext<'py>>> {
        let error = ErrorInfo {
            error_type,
            message,
            retryable,
        };
        let next = self
            .engine
            .step_failed_inline(handle, seq, attempt, error, inline)
            .map_err(to_py)?;
        next.map(|next| self.inline_next(py, next)).transpose()
    }

    /// This process cannot run the work it was handed (it cannot decode the
    /// run's input, say): the run is blocked with `reason`, unchanged, until its
    /// workflow is registered again or the store is reopened.
    fn cannot_run(&self, handle: u64, seq: u32, attempt: u32, reason: String) {
        self.engine.cannot_run(handle, seq, attempt, reason);
    }

    /// Every receipt position at or below this is durable.
    fn durable_position(&self) -> u64 {
        self.engine.durable_position()
    }

    /// Spins (the GIL released) until `position` is durable or `max_us`
    /// microseconds passed; true if it is durable. For an event loop with
    /// nothing else ready: a spin costs less than a trip through the
    /// notifier and the loop's selector when the fsync is about to end.
    fn spin_until_durable(&self, py: Python<'_>, position: u64, max_us: u64) -> bool {
        let engine = &self.engine;
        if engine.durable_position() >= position {
            return true;
        }
        py.detach(|| {
            let until =
                std::time::Instant::now() + std::time::Duration::from_micros(max_us.min(1_000));
            loop {
                if engine.durable_position() >= position {
                    return true;
                }
                if std::time::Instant::now() >= until {
                    return false;
                }
                std::hint::spin_loop();
            }
        })
    }

    fn send_event(
        &self,
        py: Python<'_>,
        run_key: u64,
        name: &str,
        payload: &Bound<'_, PyBytes>,
    ) -> PyResult<(u64, bool)> {
        let payload = payload.as_bytes().to_vec();
        py.detach(|| self.engine.send_event(run_key, name, payload))
            .map(receipt_tuple)
            .map_err(to_py)
    }

    fn pause(&self, py: Python<'_>, run_key: u64) -> PyResult<(u64, bool)> {
        py.detach(|| self.engine.pause(run_key))
            .map(receipt_tuple)
            .map_err(to_py)
    }

    fn resume(&self, py: Python<'_>, run_key: u64) -> PyResult<(u64, bool)> {
        py.detach(|| self.engine.resume(run_key))
            .map(receipt_tuple)
            .map_err(to_py)
    }

    fn cancel(&self, py: Python<'_>, run_key: u64, compensate: bool) -> PyResult<(u64, bool)> {
        py.detach(|| self.engine.cancel(run_key, compensate))
            .map(receipt_tuple)
            .map_err(to_py)
    }

    /// The summary dict of a run by id, or `None`.
    fn lookup<'py>(
        &self,
        py: Python<'py>,
        run_id: &str,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyDict>>> {
        let found = py.detach(|| self.engine.lookup(run_id)).map_err(to_py)?;
        found.map(|s| convert::summary(py, &s)).transpose()
    }

    fn summary<'py>(
        &self,
        py: Python<'py>,
        run_key: u64,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyDict>>> {
        let found = py.detach(|| self.engine.summary(run_key)).map_err(to_py)?;
        found.map(|s| convert::summary(py, &s)).transpose()
    }

    fn journal<'py>(&self, py: Python<'py>, run_key: u64) -> PyResult<Bound<'py, PyList>> {
        let entries = py.detach(|| self.engine.journal(run_key)).map_err(to_py)?;
        let items: Vec<_> = entries
            .iter()
            .map(|e| convert::entry(py, e))
            .collect::<PyResult<_>>()?;
        PyList::new(py, items)
    }

    /// Runs, newest first. `statuses` are status names; times in ms.
    #[pyo3(signature = (statuses=None, workflow=None, created_after_ms=None, created_before_ms=None, limit=100))]
    fn runs<'py>(
        &self,
        py: Python<'py>,
        statuses: Option<Vec<String>>,
        workflow: Option<String>,
        created_after_ms: Option<Millis>,
        created_before_ms: Option<Millis>,
        limit: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut parsed = Vec::new();
        for status in statuses.unwrap_or_default() {
            parsed.push(RunStatus::parse(&status).ok_or_else(|| {
                InvalidArgument::new_err(format!(
                    "unknown status {status:?}; use one of pending, running, sleeping, waiting, paused, completed, failed, cancelled"
                ))
            })?);
        }
        let filter = RunFilter {
            statuses: parsed,
            workflow,
            created_after_ms,
            created_before_ms,
            limit,
        };
        let found = py.detach(|| self.engine.list(&filter)).map_err(to_py)?;
        let items: Vec<_> = found
            .iter()
            .map(|s| convert::summary(py, s))
            .collect::<PyResult<_>>()?;
        PyList::new(py, items)
    }

    /// Waits (GIL released) for the run to end: the outcome tuple, `("blocked", reason)`
    /// (non-determinism), `("cannot_run", reason)` (see `cannot_run`), or `None` on timeout.
    #[pyo3(signature = (run_key, timeout_s=None))]
    fn wait_finished<'py>(
        &self,
        py: Python<'py>,
        run_key: u64,
        timeout_s: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let timeout = timeout_s.map(|t| Duration::from_secs_f64(t.max(0.0)));
        let waited = py
            .detach(|| self.engine.wait_finished(run_key, timeout))
            .map_err(to_py)?;
        match waited {
            Wait::Finished(outcome) => Ok(convert::outcome(py, &outcome)?.into_any()),
            Wait::Blocked(reason) => {
                Ok(PyTuple::new(py, ["blocked".to_string(), reason])?.into_any())
            }
            Wait::CannotRun(reason) => {
                Ok(PyTuple::new(py, ["cannot_run".to_string(), reason])?.into_any())
            }
            Wait::TimedOut => Ok(py.None().into_bound(py)),
        }
    }

    /// Why the run is blocked, if it is.
    fn blocked_reason(&self, run_key: u64) -> Option<String> {
        self.engine.blocked_reason(run_key)
    }

    fn watch(&self, run_key: u64) {
        self.engine.watch(run_key);
    }

    fn take_finished(&self) -> Vec<u64> {
        self.engine.take_finished_notices()
    }

    /// Asks for a durable notice (see `take_durable`) for a receipt position.
    fn watch_durable(&self, position: u64) {
        self.engine.watch_durable(position);
    }

    /// The position to watch so that `position` is durable, shared by the positions
    /// one sync makes durable; 0 if it is durable already.
    fn sync_round(&self, position: u64) -> u64 {
        self.engine.sync_round(position)
    }

    fn take_durable(&self) -> Vec<u64> {
        self.engine.take_durable_notices()
    }

    fn notify_fd(&self) -> i32 {
        self.engine.notify_fd()
    }

    fn drain_notifier(&self) {
        self.engine.drain_notifier();
    }

    fn fire_due_timers(&self, py: Python<'_>) {
        py.detach(|| self.engine.fire_due_timers());
    }

    /// `(runs in memory, queued sync, queued async, timers)`.
    fn stats(&self) -> (usize, usize, usize, usize) {
        self.engine.stats()
    }

    fn now_ms(&self) -> u64 {
        self.engine.now_ms()
    }

    #[getter]
    fn max_payload_bytes(&self) -> usize {
        self.engine.limits().max_payload_bytes
    }

    #[getter]
    fn description(&self) -> String {
        self.description.clone()
    }

    /// Stops handing out work; results of work in progress are still accepted until `close`.
    fn stop_work(&self, py: Python<'_>) {
        py.detach(|| self.engine.stop_work());
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.engine.close()).map_err(to_py)
    }
}

#[pymodule]
fn _core(module: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(module)?;
    module.add_class::<Core>()?;
    module.add_class::<convert::RecordedOutputs>()?;
    module.add_function(wrap_pyfunction!(functions::parse_duration, module)?)?;
    module.add_function(wrap_pyfunction!(functions::validate_retry, module)?)?;
    module.add_function(wrap_pyfunction!(functions::retry_delay_ms, module)?)?;
    module.add_function(wrap_pyfunction!(functions::idempotency_key, module)?)?;
    module.add("WORK_RELEASE", convert::WORK_RELEASE)?;
    module.add(
        "EVENT_FORMAT_VERSION",
        duro_core::journal::EVENT_FORMAT_VERSION,
    )?;
    Ok(())
}
