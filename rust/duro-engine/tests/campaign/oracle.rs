//! The oracle: the caller's own record, kept outside the store under test, of
//! the work it was handed, what it produced, and what the store acknowledged.

use std::collections::{HashMap, HashSet};

/// What the caller produced for one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Produced {
    Output(Vec<u8>),
    Failed,
}

/// The test's own record of what it was told and what it did (kept outside the store).
#[derive(Debug, Clone, Default)]
pub struct Oracle {
    /// (run, seq, attempt) -> (life, what the caller produced).
    pub produced: HashMap<(String, u32, u32), (u32, Produced)>,
    /// Work handed out: (run, seq, attempt) -> life.
    pub handed: HashMap<(String, u32, u32), u32>,
    /// Results acknowledged (a later step was handed out): (run, seq) -> (attempt, output, life).
    pub acked: HashMap<(String, u32), (u32, Vec<u8>, u32)>,
    /// Failed attempts acknowledged (the next attempt was handed out).
    pub acked_failures: HashSet<(String, u32, u32)>,
    /// Runs whose start receipt was waited on successfully.
    pub started: HashSet<String>,
    /// Runs whose outcome the engine published: run -> step outputs.
    pub finished: HashMap<String, Vec<(String, Vec<u8>)>>,
    /// The latest output produced per (run, seq): (attempt, output, life).
    pub latest: HashMap<(String, u32), (u32, Vec<u8>, u32)>,
    /// Executions per (run, seq), all lives together.
    pub executions: HashMap<(String, u32), u32>,
    pub violations: Vec<String>,
}

impl Oracle {
    pub(super) fn violation(&mut self, v: String) {
        if self.violations.len() < 50 {
            self.violations.push(v);
        }
    }

    /// Work (run, seq, attempt) was handed out in `life`.
    pub(super) fn handed_out(&mut self, run: &str, seq: u32, attempt: u32, life: u32) {
        let key = (run.to_owned(), seq, attempt);
        if let Some(before) = self.handed.insert(key, life) {
            self.violation(format!(
                "{run} seq {seq} attempt {attempt} handed out in life {before} and again in life {life}: the \
                 StepStarted of work already handed out was lost"
            ));
        }
        if let Some((a, _, l)) = self.acked.get(&(run.to_owned(), seq)) {
            self.violation(format!(
                "{run} seq {seq}: acknowledged (attempt {a}, life {l}) but handed out again (attempt {attempt}, life {life})"
            ));
        }
        // The failed attempt before this one is acknowledged, if this life reported it (an
        // attempt reported in an earlier life may have been lost: then this one follows an
        // interrupted attempt, and nothing is proven about the report).
        if attempt > 1 {
            if let Some((l, Produced::Failed)) =
                self.produced.get(&(run.to_owned(), seq, attempt - 1))
            {
                if *l != life {
                    return self.ack_earlier_steps(run, seq);
                }
                self.acked_failures
                    .insert((run.to_owned(), seq, attempt - 1));
            }
        }
        self.ack_earlier_steps(run, seq)
    }

    /// Every step before `seq` has a durable result: the one the caller produced last.
    fn ack_earlier_steps(&mut self, run: &str, seq: u32) {
        let mut s = seq;
        while s > 0 {
            s -= 1;
            let latest = self.latest.get(&(run.to_owned(), s)).cloned();
            let key = (run.to_owned(), s);
            match (self.acked.get(&key).cloned(), latest) {
                (Some(acked), Some(latest)) => {
                    if acked != latest {
                        self.violation(format!(
                            "{run} seq {s}: acknowledged result (attempt {}, life {}) was replaced by attempt {} of life {}",
                            acked.0, acked.2, latest.0, latest.2
                        ));
                    }
                    break;
                }
                (None, Some(latest)) => {
                    self.acked.insert(key, latest);
                }
                (_, None) => {
                    self.violation(format!(
                        "{run} seq {seq} handed out but the caller never produced seq {s}"
                    ));
                    break;
                }
            }
        }
    }

    pub(super) fn produce(
        &mut self,
        run: &str,
        seq: u32,
        attempt: u32,
        life: u32,
        produced: Produced,
    ) {
        *self.executions.entry((run.to_owned(), seq)).or_default() += 1;
        if let Produced::Output(output) = &produced {
            let latest = self
                .latest
                .entry((run.to_owned(), seq))
                .or_insert((0, Vec::new(), 0));
            if attempt >= latest.0 {
                *latest = (attempt, output.clone(), life);
            }
        }
        self.produced
            .insert((run.to_owned(), seq, attempt), (life, produced));
    }
}
