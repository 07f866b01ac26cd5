//! The campaign report shared by every crash, fault, corruption and fuzz campaign test:
//! each prints its summary line and appends it to the file named by `DURO_CAMPAIGN_REPORT`
//! (scripts/test.sh sets it and prints the file at the end, since the test harness
//! swallows what passing tests print). Included by path, like the rest of `fuzz/common`.

use std::io::Write;

pub fn report_campaign(line: &str) {
    println!("{line}");
    append_to_report(line);
}

/// Appends `line` to the report file only (the fuzz campaigns print their own summary).
pub fn append_to_report(line: &str) {
    let Some(path) = std::env::var_os("DURO_CAMPAIGN_REPORT").filter(|p| !p.is_empty()) else {
        return;
    };
    // One write of a whole line on an O_APPEND descriptor: lines of concurrent tests never mix.
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = file.write_all(format!("{line}\n").as_bytes());
    }
}
