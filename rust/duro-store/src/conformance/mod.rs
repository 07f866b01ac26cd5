//! The conformance suite: behaviour every [`Store`] must have. Stores run it
//! from their tests (`tests/conformance.rs`); the PostgreSQL store will too.
//!
//! A store joins through a [`StoreFactory`]: it opens stores by name (the same
//! name again opens the same store, as a restarted process would) and declares
//! its [`Capabilities`]. [`run_all`] runs every check that applies and returns
//! a [`Report`] naming what ran, what did not apply and why (never a silent
//! skip), and notes on how the store met a promise. Most checks take one
//! fresh, empty store; the reopen checks take the factory.

// The checks live with their subject: `appends` (starts, positions, ended runs,
// payloads, the size limit), `runs` (summaries and listing), `durability` (sync
// rounds and acknowledgements, with the `RecordingSink` test double), `claims`
// (`claim_due`, leased or not) and `reopen` (what a reopened store holds);
// `fixtures` builds the events and runs they share. This module declares what a
// store promises, lists the checks and runs them.

mod appends;
mod claims;
mod durability;
mod fixtures;
mod reopen;
mod runs;

use std::sync::Arc;

use crate::api::Store;

pub use appends::{
    appends_are_positioned, appends_over_the_limit_are_refused, concurrent_starts_make_one_run,
    ended_runs_refuse_appends, generated_ids_start_runs, payloads_round_trip, start_is_idempotent,
};
pub use claims::{
    claim_due_respects_now_and_limit, leased_runs_are_not_handed_out_twice,
    unleased_claims_hold_nothing,
};
pub use durability::{ack_tokens_reach_the_sink, sync_rounds_lead_to_durability, RecordingSink};
pub use fixtures::started;
pub use reopen::{acknowledged_appends_survive_reopen, reopened_store_is_empty};
pub use runs::{listing_filters, summaries_follow_events};

/// What a store can promise beyond the common contract; the suite checks the
/// promises a store makes, and checks the documented absence of the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Acknowledged appends are there after the store is closed and opened again
    /// (embedded: the same directory; PostgreSQL: the same database). False for
    /// the in-memory store, which keeps nothing when its process exits: the
    /// suite then checks that a reopened store is empty instead.
    pub survives_reopen: bool,
    /// `Some(lease)` for a store that leases what `claim_due` hands out (a store
    /// shared by processes, see [`Store::claim_due`]); `None` for single-process
    /// stores, which hold nothing and hand every unfinished run to every call.
    pub lease_ms: Option<u64>,
}

/// Opens the stores the checks run on.
pub trait StoreFactory {
    /// Names the store in the report (e.g. "embedded").
    fn name(&self) -> String;
    fn capabilities(&self) -> Capabilities;
    /// Opens the store called `name`, empty the first time, with the default
    /// limits ([`DEFAULT_MAX_APPEND_BYTES`]). After that store was closed and
    /// dropped, the same name opens it again.
    ///
    /// [`DEFAULT_MAX_APPEND_BYTES`]: crate::DEFAULT_MAX_APPEND_BYTES
    fn open(&self, name: &str) -> Arc<dyn Store>;
}

/// What [`run_all`] did with one store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub store: String,
    pub capabilities: Capabilities,
    /// Checks that ran (and passed: a failing check panics).
    pub ran: Vec<&'static str>,
    /// Checks that do not apply to this store, with the reason.
    pub not_applicable: Vec<(&'static str, String)>,
    /// How the store met a promise, where stores may differ (e.g. how acks arrive).
    pub notes: Vec<String>,
}

impl Report {
    fn run(&mut self, name: &'static str, check: impl FnOnce() -> Option<String>) {
        eprintln!("conformance [{}]: {name}", self.store);
        if let Some(note) = check() {
            self.notes.push(format!("{name}: {note}"));
        }
        self.ran.push(name);
    }

    fn not_applicable(&mut self, name: &'static str, why: impl Into<String>) {
        self.not_applicable.push((name, why.into()));
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "conformance of the {} store ({:?}):",
            self.store, self.capabilities
        )?;
        writeln!(f, "  ran ({}): {}", self.ran.len(), self.ran.join(", "))?;
        for (name, why) in &self.not_applicable {
            writeln!(f, "  not applicable: {name}: {why}")?;
        }
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        Ok(())
    }
}

/// Every check [`run_all`] knows; each one either runs or is reported not applicable.
pub const CHECKS: &[&str] = &[
    "start_is_idempotent",
    "generated_ids_start_runs",
    "concurrent_starts_make_one_run",
    "appends_are_positioned",
    "summaries_follow_events",
    "ended_runs_refuse_appends",
    "listing_filters",
    "payloads_round_trip",
    "sync_rounds_lead_to_durability",
    "ack_tokens_reach_the_sink",
    "claim_due_respects_now_and_limit",
    "unleased_claims_hold_nothing",
    "leased_runs_are_not_handed_out_twice",
    "appends_over_the_limit_are_refused",
    "acknowledged_appends_survive_reopen",
    "reopened_store_is_empty",
];

/// Runs every check that applies to the factory's stores, each on a store of its own.
pub fn run_all(factory: &dyn StoreFactory) -> Report {
    let capabilities = factory.capabilities();
    let mut report = Report {
        store: factory.name(),
        capabilities,
        ran: Vec::new(),
        not_applicable: Vec::new(),
        notes: Vec::new(),
    };
    let open = |name: &str| factory.open(name);
    report.run("start_is_idempotent", || {
        start_is_idempotent(&*open("start_is_idempotent"));
        None
    });
    report.run("generated_ids_start_runs", || {
        generated_ids_start_runs(&*open("generated_ids_start_runs"));
        None
    });
    report.run("concurrent_starts_make_one_run", || {
        concurrent_starts_make_one_run(open("concurrent_starts_make_one_run"));
        None
    });
    report.run("appends_are_positioned", || {
        appends_are_positioned(&*open("appends_are_positioned"));
        None
    });
    report.run("summaries_follow_events", || {
        summaries_follow_events(&*open("summaries_follow_events"));
        None
    });
    report.run("ended_runs_refuse_appends", || {
        ended_runs_refuse_appends(&*open("ended_runs_refuse_appends"));
        None
    });
    report.run("listing_filters", || {
        listing_filters(&*open("listing_filters"));
        None
    });
    report.run("payloads_round_trip", || {
        payloads_round_trip(&*open("payloads_round_trip"));
        None
    });
    report.run("sync_rounds_lead_to_durability", || {
        sync_rounds_lead_to_durability(&*open("sync_rounds_lead_to_durability"));
        None
    });
    report.run("ack_tokens_reach_the_sink", || {
        Some(ack_tokens_reach_the_sink(&*open(
            "ack_tokens_reach_the_sink",
        )))
    });
    report.run("claim_due_respects_now_and_limit", || {
        claim_due_respects_now_and_limit(&*open("claim_due_respects_now_and_limit"), &capabilities);
        None
    });
    match capabilities.lease_ms {
        None => {
            report.run("unleased_claims_hold_nothing", || {
                unleased_claims_hold_nothing(&*open("unleased_claims_hold_nothing"));
                None
            });
            report.not_applicable(
                "leased_runs_are_not_handed_out_twice",
                "a single-process store has no leases: claim_due holds nothing and hands every unfinished run to \
                 every caller (checked by unleased_claims_hold_nothing; see Store::claim_due for what a shared store adds)",
            );
        }
        Some(lease_ms) => {
            report.not_applicable(
                "unleased_claims_hold_nothing",
                format!("the store leases claimed runs for {lease_ms} ms"),
            );
            report.run("leased_runs_are_not_handed_out_twice", || {
                leased_runs_are_not_handed_out_twice(
                    &*open("leased_runs_are_not_handed_out_twice"),
                    lease_ms,
                );
                None
            });
        }
    }
    report.run("appends_over_the_limit_are_refused", || {
        appends_over_the_limit_are_refused(&*open("appends_over_the_limit_are_refused"));
        None
    });
    if capabilities.survives_reopen {
        report.run("acknowledged_appends_survive_reopen", || {
            acknowledged_appends_survive_reopen(factory, "acknowledged_appends_survive_reopen");
            None
        });
        report.not_applicable(
            "reopened_store_is_empty",
            "the store keeps its data across a reopen",
        );
    } else {
        report.not_applicable(
            "acknowledged_appends_survive_reopen",
            "the store keeps nothing across a restart of its process (capability survives_reopen = false)",
        );
        report.run("reopened_store_is_empty", || {
            reopened_store_is_empty(factory, "reopened_store_is_empty");
            None
        });
    }
    debug_assert_eq!(report.ran.len() + report.not_applicable.len(), CHECKS.len());
    report
}
