#!/usr/bin/env bash
# Sets up what the tests need from this repository's own files, then runs
# every test: the Rust workspace and the Python suites (through the real
# native module). Works on a fresh machine with Rust, Python 3 and network
# access to crates.io and PyPI. Exits non-zero if any test fails.
#
# The reliability campaigns (crash points, kills, I/O faults, corruption,
# fuzzing, bad input) each append one summary line to $DURO_CAMPAIGN_REPORT;
# the file is printed at the end, under "Reliability campaigns", also when a
# test failed (the harnesses swallow what passing tests print).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# Builds duro._core with maturin (declared in pyproject.toml) and installs the test tools.
.venv/bin/python -m pip install --quiet ".[test]"

mkdir -p target
export DURO_CAMPAIGN_REPORT="$PWD/target/reliability-campaigns.txt"
: > "$DURO_CAMPAIGN_REPORT"

status=0
# duro-py is a Python extension (linked by the interpreter that loads it); it is tested through pytest.
cargo test --workspace --exclude duro-py --locked || status=$?

.venv/bin/python -m pytest "$@" || status=$?

echo
echo "== Reliability campaigns =="
if [ -s "$DURO_CAMPAIGN_REPORT" ]; then
    # Grouped by campaign (issue 5's order), in the order they ran within a campaign.
    kinds=("crash points" "kills" "I/O faults" "corruption" "fuzz" "bad input")
    for kind in "${kinds[@]}"; do
        grep -E "^$kind +" "$DURO_CAMPAIGN_REPORT" || true
    done
    pattern=$(printf '%s|' "${kinds[@]}")
    grep -Ev "^(${pattern%|}) " "$DURO_CAMPAIGN_REPORT" || true
    violations=$(awk '{ for (i = 1; i < NF; i++) if ($i == "violations") total += $(i + 1) + 0 }
                      END { print total + 0 }' "$DURO_CAMPAIGN_REPORT")
    echo "$(wc -l < "$DURO_CAMPAIGN_REPORT") campaign lines, violations found: $violations (must be 0)"
    if [ "$violations" -ne 0 ] && [ "$status" -eq 0 ]; then
        status=1
    fi
else
    echo "(no campaign reported)"
fi
if [ "$status" -ne 0 ]; then
    echo "FAILED (exit status $status): a test failed or a campaign found violations; see above" >&2
fi
exit "$status"
