//! duro-core: the sans-IO heart of duro.
//!
//! This crate decides *what is durable and what happens next*; it never
//! touches files, threads, clocks or Python. Callers hand it events and the
//! current time, and it hands back decisions plus the events they must make
//! durable before acting on them.
//!
//! - [`journal`]: the event types of a run and their versioned binary codec.
//! - [`replay`]: [`replay::RunState`], the fold of a run's events, and the
//!   step-level questions the engine asks ("begin step (seq, name)").
//! - [`linear`]: the driver for builder workflows (a fixed list of steps,
//!   sleeps and event waits, saga compensation, an on-failure handler).
//! - [`retry`]: the backoff policy, validated once when built.
//! - [`summary`] and [`entries`]: the queryable views of a run (status,
//!   current step, …) and of its journal, derived from events only.
//!
//! Invariant kept throughout: the state after folding a run's events is the
//! state the live machine had when it emitted them. Every decision that
//! depends on the clock or on chance is itself recorded as an event, so a
//! replay never needs the clock to agree.

pub mod entries;
pub mod error;
pub mod journal;
pub mod limits;
pub mod linear;
pub mod replay;
pub mod retry;
pub mod summary;
pub mod time;
pub mod workflow;

pub use error::{CoreError, DecodeError, NonDeterminism, PolicyError};
pub use journal::{ErrorInfo, Event, RunKey, Seq, StepKind};
pub use limits::Limits;
pub use time::Millis;
