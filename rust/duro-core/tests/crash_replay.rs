//! The crash/replay property of builder workflows: a run crashed anywhere (once
//! or several times, losing its last unacknowledged group or not) and replayed
//! decides exactly like one that never crashed.

mod sim;

use duro_core::journal::Event;
use duro_core::replay::{RunState, StepStatus};
use duro_core::workflow::StepDef;
use proptest::prelude::*;
use sim::*;

// ---- The property: a run crashed anywhere and replayed ends exactly like one that never crashed.

fn arb_step(i: usize) -> impl Strategy<Value = StepDef> {
    let name = format!("s{i}");
    prop_oneof![
        6 => (1u32..4, 0u64..2_000, any::<bool>(), 1u32..3).prop_map({
            let name = name.clone();
            move |(attempts, delay, compensate, comp_attempts)| {
                let step = StepDef::task(name.clone(), policy(attempts, delay));
                if compensate { step.with_compensation(policy(comp_attempts, 50)) } else { step }
            }
        }),
        1 => (0u64..5_000).prop_map({ let name = name.clone(); move |d| StepDef::sleep(name.clone(), d) }),
        2 => prop::option::of(0u64..10_000).prop_map(move |t| StepDef::wait_event(name.clone(), t)),
    ]
}

fn arb_case() -> impl Strategy<Value = (duro_core::workflow::WorkflowDef, World, Vec<Crash>)> {
    (1usize..7)
        .prop_flat_map(|n| {
            let steps: Vec<_> = (0..n).map(arb_step).collect();
            (
                steps,
                prop::option::of(1u32..3),
                prop::option::of(1_000u64..30_000),
                any::<u64>(),
                0u64..60,
                prop::collection::vec((0u64..20_000, 0usize..n + 3, any::<bool>()), 0..4),
                prop::collection::vec((1usize..16, any::<bool>()), 0..5),
            )
        })
        .prop_map(
            |(steps, on_failure, timeout, seed, fail_pct, raw_inputs, raw_crashes)| {
                let mut wf = def(steps);
                wf.on_failure = on_failure.map(|a| policy(a, 10));
                wf.timeout_ms = timeout;
                let n = wf.steps.len();
                let inputs = raw_inputs
                    .into_iter()
                    .map(|(t, which, flag)| {
                        let input = if which < n {
                            Input::Event {
                                name: format!("s{which}"),
                                payload: format!("p{t}").into_bytes(),
                            }
                        } else if which == n {
                            Input::Cancel { compensate: flag }
                        } else if flag {
                            Input::Pause
                        } else {
                            Input::Resume
                        };
                        (t, input)
                    })
                    .collect();
                let crashes = raw_crashes
                    .into_iter()
                    .map(|(g, lose)| Crash {
                        after_groups: g,
                        lose_last: lose,
                    })
                    .collect();
                (
                    wf,
                    World {
                        seed,
                        task_fail_pct: fail_pct,
                        inputs,
                    },
                    crashes,
                )
            },
        )
}

static CRASHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static CASES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    #[test]
    fn crashed_and_replayed_runs_decide_like_uncrashed_ones((wf, world, crashes) in arb_case()) {
        let mut clean = Sim::new(wf.clone(), world.clone());
        let expected = clean.run(&[]);
        // A single crash at every group boundary, losing the last group or not…
        for after_groups in 1..=clean.groups.len() {
            for lose_last in [false, true] {
                let mut once = Sim::new(wf.clone(), world.clone());
                let got = once.run(&[Crash { after_groups, lose_last }]);
                prop_assert_eq!(&got, &expected, "crash after group {} (lose_last {})", after_groups, lose_last);
                CRASHES.fetch_add(once.crashes_done, std::sync::atomic::Ordering::Relaxed);
            }
        }
        // …and several crashes in one run.
        let mut crashed = Sim::new(wf, world);
        let got = crashed.run(&crashes);
        prop_assert_eq!(&got, &expected, "crashes: {:?}", crashes);
        CRASHES.fetch_add(crashed.crashes_done, std::sync::atomic::Ordering::Relaxed);
        CASES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if CASES.load(std::sync::atomic::Ordering::Relaxed) % 500 == 0 {
            eprintln!("crash/replay property: {} cases, {} crashes replayed so far",
                CASES.load(std::sync::atomic::Ordering::Relaxed), CRASHES.load(std::sync::atomic::Ordering::Relaxed));
        }
        // Every forward step has at most one committed output, and replaying
        // the final journal reproduces the final state.
        let journal: Vec<Event> = crashed.groups.iter().flatten().cloned().collect();
        let mut completed = std::collections::HashSet::new();
        for e in &journal {
            if let Event::StepCompleted { seq, .. } = e {
                prop_assert!(completed.insert(*seq), "step #{} completed twice", seq);
            }
        }
        let replayed = RunState::replay(1, &journal).unwrap();
        for state in [&replayed, &crashed.state] {
            let scanned = state.steps().iter().position(|s| s.status != StepStatus::Completed);
            prop_assert_eq!(state.first_open_step(), scanned.unwrap_or(state.steps().len()));
        }
        prop_assert_eq!(&RunState::replay_owned(1, journal.clone()).unwrap(), &replayed);
        prop_assert_eq!(replayed.outcome(), crashed.state.outcome());
        prop_assert_eq!(replayed.event_count(), crashed.state.event_count());
    }
}
