//! fuzzkit's reports and problem matching: the campaign report line, whether a problem is a
//! known one, what makes two failures the same, and inputs as `b"..."` literals.

/// Appends a campaign's summary line to the file named by `DURO_CAMPAIGN_REPORT`, if set:
/// scripts/test.sh sets it and prints the file at the end, under "Reliability campaigns".
pub fn report_campaign(line: &str) {
    report::append_to_report(line);
}

// The report file writer shared with the other campaign tests (its printing variant is
// theirs, hence the allow).
#[allow(dead_code)]
#[path = "../report.rs"]
mod report;

/// Whether a reported problem is a known one: `file|snippet` for a panic in `file` at a line
/// containing `snippet`, else a substring of the problem's text.
pub fn matches_known(problem: &str, pattern: &str) -> bool {
    let Some((file, snippet)) = pattern.split_once('|') else {
        return problem.contains(pattern);
    };
    let Some(at) = problem.find("panicked at ") else {
        return false;
    };
    let mut parts = problem[at + "panicked at ".len()..].splitn(3, ':');
    let (Some(path), Some(line)) = (
        parts.next(),
        parts.next().and_then(|l| l.parse::<usize>().ok()),
    ) else {
        return false;
    };
    if !path.ends_with(file) {
        return false;
    }
    source_line(path, line).is_some_and(|text| text.contains(snippet))
}

/// Line `line` (1-based) of a source file named as in a panic location: relative to the
/// workspace root (an ancestor of this crate's directory) or absolute.
fn source_line(path: &str, line: usize) -> Option<String> {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = std::iter::once(std::path::PathBuf::from(path))
        .chain(manifest.ancestors().map(|a| a.join(path)));
    for candidate in candidates {
        if let Ok(text) = std::fs::read_to_string(&candidate) {
            return text.lines().nth(line.checked_sub(1)?).map(str::to_string);
        }
    }
    None
}

/// What makes two failures "the same": the panic location, and the message without numbers.
pub(super) fn problem_key(what: &str) -> String {
    let first = what.split("; ").next().unwrap_or("");
    let (location, message) = match first.find(" panicked at ") {
        Some(at) => {
            let rest = &first[at + " panicked at ".len()..];
            // "file:line:col: message"
            let mut parts = rest.splitn(4, ':');
            let location: Vec<&str> = parts.by_ref().take(3).collect();
            (location.join(":"), parts.next().unwrap_or("").to_string())
        }
        None => (String::new(), first.to_string()),
    };
    let message: String = message.chars().filter(|c| !c.is_ascii_digit()).collect();
    format!("{location} {message}")
}

/// `b"..."` with escapes: paste into a regression test.
pub fn byte_literal(bytes: &[u8]) -> String {
    let mut out = String::from("b\"");
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}
