//! The invariant checks: a snapshot of the recovered (or final) state of the
//! store, checked against the oracle, against the workload's end, against the
//! side-effect bound, and against an earlier snapshot (prefix).

use std::collections::{BTreeMap, HashMap, HashSet};

use duro_core::journal::{Event, RunKey};
use duro_core::replay::RunState;
use duro_store::{RunFilter, Store};

use super::oracle::{Oracle, Produced};
use super::workload::{step_name, Workload, WORKFLOW};

/// The recovered state of the store: run id -> (key, journal, event_count of its summary).
pub type Snapshot = BTreeMap<String, (RunKey, Vec<Event>, u32)>;

pub fn snapshot(store: &dyn Store) -> Result<Snapshot, String> {
    let runs = store
        .list(&RunFilter {
            limit: 1_000_000,
            ..RunFilter::default()
        })
        .map_err(|e| format!("list: {e}"))?;
    let mut snap = Snapshot::new();
    for s in runs {
        let events = store
            .events(s.run_key)
            .map_err(|e| format!("events of {}: {e}", s.run_id))?;
        snap.insert(s.run_id.clone(), (s.run_key, events, s.event_count));
    }
    Ok(snap)
}

/// Checks a recovered (or final) state against the oracle. `context` names the situation.
pub fn check_state(w: &Workload, oracle: &Oracle, snap: &Snapshot, context: &str) -> Vec<String> {
    let mut v = Vec::new();
    let ids: HashSet<String> = w.run_ids().into_iter().collect();
    for (run, (key, events, event_count)) in snap {
        if !ids.contains(run) {
            v.push(format!("{context}: phantom run {run:?}"));
            continue;
        }
        match events.first() {
            Some(Event::RunStarted {
                run_id,
                input,
                workflow,
                ..
            }) if run_id == run && *input == Workload::input(run) && workflow == WORKFLOW => {}
            other => v.push(format!("{context}: {run}: journal starts with {other:?}")),
        }
        if events.len() as u32 != *event_count {
            v.push(format!(
                "{context}: {run}: summary says {event_count} events, journal has {}",
                events.len()
            ));
        }
        if let Err(e) = RunState::replay(*key, events) {
            v.push(format!("{context}: {run}: journal does not replay: {e}"));
        }
        let mut completed: HashMap<u32, u32> = HashMap::new();
        for event in events {
            match event {
                Event::StepCompleted {
                    seq,
                    attempt,
                    output,
                    ..
                } => {
                    *completed.entry(*seq).or_default() += 1;
                    match oracle.produced.get(&(run.clone(), *seq, *attempt)) {
                        Some((_, Produced::Output(o))) if o == output => {}
                        other => v.push(format!(
                            "{context}: {run} seq {seq} attempt {attempt}: phantom output {:?} (the caller produced {other:?})",
                            String::from_utf8_lossy(&output[..output.len().min(48)])
                        )),
                    }
                }
                Event::StepFailed { seq, attempt, .. } => {
                    match oracle.produced.get(&(run.clone(), *seq, *attempt)) {
                        Some((_, Produced::Failed)) => {}
                        other => v.push(format!(
                        "{context}: {run} seq {seq} attempt {attempt}: phantom failure ({other:?})"
                    )),
                    }
                }
                _ => {}
            }
        }
        for (seq, n) in completed {
            if n > 1 {
                v.push(format!(
                    "{context}: {run} seq {seq}: {n} StepCompleted events (at most one allowed)"
                ));
            }
        }
    }
    // No lost acknowledgement.
    for run in &oracle.started {
        if !snap.contains_key(run) {
            v.push(format!(
                "{context}: {run}: start receipt was acknowledged, the run is gone"
            ));
        }
    }
    // Per run: (seq, attempt) started, seq -> [(attempt, output)] completed, (seq, attempt) failed.
    type Facts<'a> = (
        HashSet<(u32, u32)>,
        HashMap<u32, Vec<(u32, &'a [u8])>>,
        HashSet<(u32, u32)>,
    );
    let mut facts: HashMap<&str, Facts<'_>> = HashMap::new();
    for (run, (_, events, _)) in snap {
        let f = facts.entry(run.as_str()).or_default();
        for e in events {
            match e {
                Event::StepStarted { seq, attempt, .. } => {
                    f.0.insert((*seq, *attempt));
                }
                Event::StepCompleted {
                    seq,
                    attempt,
                    output,
                    ..
                } => f.1.entry(*seq).or_default().push((*attempt, output)),
                Event::StepFailed { seq, attempt, .. } => {
                    f.2.insert((*seq, *attempt));
                }
                _ => {}
            }
        }
    }
    for ((run, seq, attempt), life) in &oracle.handed {
        if !facts
            .get(run.as_str())
            .is_some_and(|f| f.0.contains(&(*seq, *attempt)))
        {
            v.push(format!(
                "{context}: {run} seq {seq} attempt {attempt} was handed out (life {life}) but its StepStarted is lost"
            ));
        }
    }
    for ((run, seq), (attempt, output, life)) in &oracle.acked {
        let found = facts
            .get(run.as_str())
            .and_then(|f| f.1.get(seq))
            .is_some_and(|c| {
                c.iter()
                    .any(|(a, o)| a == attempt && *o == output.as_slice())
            });
        if !found {
            v.push(format!(
                "{context}: {run} seq {seq}: acknowledged result (attempt {attempt}, life {life}) lost or changed"
            ));
        }
    }
    for (run, seq, attempt) in &oracle.acked_failures {
        if !facts
            .get(run.as_str())
            .is_some_and(|f| f.2.contains(&(*seq, *attempt)))
        {
            v.push(format!(
                "{context}: {run} seq {seq} attempt {attempt}: acknowledged failure lost"
            ));
        }
    }
    for (run, outputs) in &oracle.finished {
        let Some((_, events, _)) = snap.get(run) else {
            v.push(format!(
                "{context}: {run}: its outcome was published, the run is gone"
            ));
            continue;
        };
        if !events
            .last()
            .is_some_and(|e| matches!(e, Event::RunCompleted { .. }))
        {
            v.push(format!("{context}: {run}: its outcome was published, the journal does not end with RunCompleted"));
        }
        for (i, (name, output)) in outputs.iter().enumerate() {
            let ok = events
                .iter()
                .any(|e| matches!(e, Event::StepCompleted { seq, output: o, .. } if *seq == i as u32 && o == output));
            if !ok || *name != step_name(i as u32) {
                v.push(format!(
                    "{context}: {run}: published output of {name} is not in the journal"
                ));
            }
        }
    }
    v
}

/// Every run of the workload ended, completed, with every step's output in its journal.
pub fn check_final(w: &Workload, oracle: &Oracle, snap: &Snapshot, context: &str) -> Vec<String> {
    let mut v = check_state(w, oracle, snap, context);
    v.extend(check_executions(oracle, context));
    for run in w.run_ids() {
        let Some((_, events, _)) = snap.get(&run) else {
            v.push(format!("{context}: {run} never started"));
            continue;
        };
        if !events
            .last()
            .is_some_and(|e| matches!(e, Event::RunCompleted { .. }))
        {
            v.push(format!(
                "{context}: {run} did not complete: last event {:?}",
                events.last().map(Event::kind_name)
            ));
        }
        for seq in 0..w.steps as u32 {
            if !events
                .iter()
                .any(|e| matches!(e, Event::StepCompleted { seq: s, .. } if *s == seq))
            {
                v.push(format!("{context}: {run} step {seq} never completed"));
            }
        }
        match oracle.finished.get(&run) {
            Some(outputs) => {
                let names: Vec<String> = outputs.iter().map(|(n, _)| n.clone()).collect();
                let expected: Vec<String> = (0..w.steps as u32).map(step_name).collect();
                if names != expected {
                    v.push(format!("{context}: {run}: outcome outputs {names:?}"));
                }
            }
            None => v.push(format!("{context}: {run}: no outcome was published")),
        }
    }
    v
}

/// Side effects: in one life a step runs at most once per reported failure,
/// plus once (re-executions come only from crashes, one per life at most).
pub fn check_executions(oracle: &Oracle, context: &str) -> Vec<String> {
    let mut handed: HashMap<(&str, u32, u32), u32> = HashMap::new();
    let mut failed: HashMap<(&str, u32, u32), u32> = HashMap::new();
    for ((run, seq, _), life) in &oracle.handed {
        *handed.entry((run.as_str(), *seq, *life)).or_default() += 1;
    }
    for ((run, seq, _), (life, produced)) in &oracle.produced {
        if *produced == Produced::Failed {
            *failed.entry((run.as_str(), *seq, *life)).or_default() += 1;
        }
    }
    let mut v = Vec::new();
    for ((run, seq, life), n) in handed {
        let allowed = failed.get(&(run, seq, life)).copied().unwrap_or(0) + 1;
        if n > allowed {
            v.push(format!(
                "{context}: {run} seq {seq} ran {n} times in life {life} ({} failures reported)",
                allowed - 1
            ));
        }
    }
    v
}

/// Every journal of `before` is a prefix of the same run's journal in `after`.
pub fn check_prefix(before: &Snapshot, after: &Snapshot, context: &str) -> Vec<String> {
    let mut v = Vec::new();
    for (run, (_, events, _)) in before {
        match after.get(run) {
            None => v.push(format!(
                "{context}: {run} was recovered before and is gone now"
            )),
            Some((_, later, _)) => {
                if later.len() < events.len() || later[..events.len()] != events[..] {
                    let at = events
                        .iter()
                        .zip(later.iter())
                        .position(|(a, b)| a != b)
                        .unwrap_or(later.len().min(events.len()));
                    v.push(format!(
                        "{context}: {run}: the recovered history changed at position {at} ({} events before, {} now)",
                        events.len(),
                        later.len()
                    ));
                }
            }
        }
    }
    v
}
