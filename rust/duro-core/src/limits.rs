//! Limits that are on by default (RELIABILITY rule 10). Each one, when hit,
//! gives a typed error naming the value, the limit and what to do.

use crate::error::CoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded input, step output or event payload.
    pub max_payload_bytes: usize,
    /// Longest run id (UTF-8 bytes).
    pub max_run_id_bytes: usize,
    /// Longest workflow, version, step or event name (UTF-8 bytes).
    pub max_name_bytes: usize,
    /// Longest recorded error message; longer ones are cut (and say so), never rejected,
    /// because losing a failure report is worse than shortening it.
    pub max_error_message_bytes: usize,
    /// Attempts of one step that may start without recording an outcome (the process
    /// died mid-step) before the run is failed with `RecoveryLimitExceeded`.
    pub max_recovery_attempts: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload_bytes: 1 << 20,
            max_run_id_bytes: 512,
            max_name_bytes: 256,
            max_error_message_bytes: 8 << 10,
            max_recovery_attempts: 50,
        }
    }
}

impl Limits {
    pub fn check_payload(&self, what: &'static str, bytes: &[u8]) -> Result<(), CoreError> {
        if bytes.len() > self.max_payload_bytes {
            return Err(CoreError::TooLarge {
                what,
                size: bytes.len(),
                limit: self.max_payload_bytes,
            });
        }
        Ok(())
    }

    pub fn check_run_id(&self, run_id: &str) -> Result<(), CoreError> {
        if run_id.is_empty() {
            return Err(CoreError::InvalidInput {
                what: "run_id",
                reason: "must not be empty; pass None to let duro generate one".into(),
            });
        }
        if run_id.len() > self.max_run_id_bytes {
            return Err(CoreError::TooLarge {
                what: "run_id",
                size: run_id.len(),
                limit: self.max_run_id_bytes,
            });
        }
        if run_id.chars().any(|c| c.is_control()) {
            return Err(CoreError::InvalidInput {
                what: "run_id",
                reason: "must not contain control characters (newlines, NUL, …)".into(),
            });
        }
        Ok(())
    }

    pub fn check_name(&self, what: &'static str, name: &str) -> Result<(), CoreError> {
        if name.is_empty() {
            return Err(CoreError::InvalidInput {
                what,
                reason: "must not be empty".into(),
            });
        }
        if name.len() > self.max_name_bytes {
            return Err(CoreError::TooLarge {
                what,
                size: name.len(),
                limit: self.max_name_bytes,
            });
        }
        if name.chars().any(|c| c.is_control()) {
            return Err(CoreError::InvalidInput {
                what,
                reason: "must not contain control characters".into(),
            });
        }
        Ok(())
    }

    /// Shortens an error message to the limit at a character boundary.
    pub fn clip_message(&self, message: &mut String) {
        if message.len() <= self.max_error_message_bytes {
            return;
        }
        let mut cut = self.max_error_message_bytes;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        let dropped = message.len() - cut;
        message.truncate(cut);
        message.push_str(&format!("… [{dropped} more bytes cut by duro]"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_limit_is_inclusive() {
        let limits = Limits {
            max_payload_bytes: 10,
            ..Limits::default()
        };
        assert!(limits.check_payload("output", &[0; 9]).is_ok());
        assert!(limits.check_payload("output", &[0; 10]).is_ok());
        assert!(matches!(
            limits.check_payload("output", &[0; 11]),
            Err(CoreError::TooLarge { size: 11, .. })
        ));
    }

    #[test]
    fn run_ids() {
        let limits = Limits::default();
        assert!(limits.check_run_id("order-1").is_ok());
        assert!(limits.check_run_id("ünïcødé \"quoted\" 'x'").is_ok());
        assert!(limits.check_run_id("").is_err());
        assert!(limits.check_run_id("a\nb").is_err());
        assert!(limits.check_run_id(&"x".repeat(513)).is_err());
    }

    #[test]
    fn clip_keeps_char_boundaries() {
        let limits = Limits {
            max_error_message_bytes: 5,
            ..Limits::default()
        };
        let mut message = "ééééé".to_string();
        limits.clip_message(&mut message);
        assert!(message.starts_with("éé"));
        assert!(message.contains("more bytes cut"));
    }
}
