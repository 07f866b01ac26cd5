//! Inputs to a run from outside: events, pause, resume, cancel. Each is one
//! appended event the run reacts to at its next step boundary, whether the
//! run is in memory, dormant, or of a workflow not registered here; that
//! shared path is why they are together and apart from the rest.

use duro_core::journal::{Event, RunKey};
use duro_core::replay::RunState;
use duro_core::time::Millis;
use duro_store::Receipt;

use super::{lock, Engine, Inner};
use crate::error::EngineError;
use crate::lanes::QueueItem;
use crate::table::Phase;

impl Engine {
    /// Records an event for the run; a wait for it continues.
    pub fn send_event(
        &self,
        run_key: RunKey,
        name: &str,
        payload: Vec<u8>,
    ) -> Result<Receipt, EngineError> {
        self.inner.config.limits.check_name("event name", name)?;
        self.inner
            .config
            .limits
            .check_payload("event payload", &payload)?;
        let name = name.to_owned();
        self.inner.input(run_key, "send an event", move |_, now| {
            Ok(Some(Event::EventReceived {
                name,
                payload,
                at_ms: now,
            }))
        })
    }

    /// Stops the run at its next step boundary.
    pub fn pause(&self, run_key: RunKey) -> Result<Receipt, EngineError> {
        self.inner.input(run_key, "pause", |state, now| {
            Ok((!state.is_paused()).then_some(Event::Paused { at_ms: now }))
        })
    }

    pub fn resume(&self, run_key: RunKey) -> Result<Receipt, EngineError> {
        self.inner.input(run_key, "resume", |state, now| {
            Ok(state.is_paused().then_some(Event::Resumed { at_ms: now }))
        })
    }

    /// Cancels the run at its next step boundary, compensating first if asked.
    pub fn cancel(&self, run_key: RunKey, compensate: bool) -> Result<Receipt, EngineError> {
        self.inner.input(run_key, "cancel", move |state, now| {
            let already = state.cancel_requested();
            Ok(
                (already.is_none() || (compensate && already == Some(false))).then_some(
                    Event::CancelRequested {
                        compensate,
                        at_ms: now,
                    },
                ),
            )
        })
    }
}

impl Inner {
    /// Appends an input event (event, pause, resume, cancel) and lets the run react.
    fn input(
        &self,
        run_key: RunKey,
        action: &'static str,
        make: impl FnOnce(&RunState, Millis) -> Result<Option<Event>, EngineError>,
    ) -> Result<Receipt, EngineError> {
        if let Some(cause) = lock(&self.fatal).clone() {
            return Err(EngineError::Fatal(cause));
        }
        let now = self.clock.now_ms();
        let mut table = lock(&self.table);
        let Some(handle) = self.ensure_loaded(&mut table, run_key)? else {
            // Its workflow is not defined here: record the input; it takes effect when it is.
            drop(table);
            return self.input_parked(run_key, action, make, now);
        };
        let run = table.get_mut(handle).expect("loaded above");
        if let Some(outcome) = run.state.outcome() {
            let (run_id, status) = (run.state.run_id.clone(), outcome.status_str());
            if run.phase == Phase::Queued && run.unacked == 0 {
                table.remove(handle);
            }
            return Err(EngineError::RunEnded {
                run_id,
                status,
                action,
            });
        }
        let Some(event) = make(&run.state, now)? else {
            return Ok(Receipt {
                position: 0,
                durable: true,
            });
        };
        run.state.apply(&event)?;
        let receipt = self.append(run, handle, std::slice::from_ref(&event))?;
        let lane = run.wf.lane;
        let push = match run.phase {
            Phase::Evicting => {
                run.dirty = true;
                false
            }
            // A freshly loaded run: let it react to the input.
            Phase::Queued => true,
            _ => false,
        };
        drop(table);
        if push {
            self.lanes[lane as usize].push_all([QueueItem::Run(handle)]);
        }
        Ok(receipt)
    }

    fn input_parked(
        &self,
        run_key: RunKey,
        action: &'static str,
        make: impl FnOnce(&RunState, Millis) -> Result<Option<Event>, EngineError>,
        now: Millis,
    ) -> Result<Receipt, EngineError> {
        let mut state = self.load_state(run_key)?;
        if let Some(outcome) = state.outcome() {
            return Err(EngineError::RunEnded {
                run_id: state.run_id.clone(),
                status: outcome.status_str(),
                action,
            });
        }
        let Some(event) = make(&state, now)? else {
            return Ok(Receipt {
                position: 0,
                durable: true,
            });
        };
        state.apply(&event)?;
        let receipt = self.store.append(
            run_key,
            state.event_count() - 1,
            std::slice::from_ref(&event),
            None,
        )?;
        // When its workflow is registered, the run must see this input at once.
        if let Some(parked) =
            lock(&self.parked).get_mut(&(state.workflow.clone(), state.version.clone()))
        {
            if let Some(entry) = parked.iter_mut().find(|p| p.key == run_key) {
                entry.wake_at_ms = Some(now);
            }
        }
        Ok(receipt)
    }
}
