#!/usr/bin/env bash
# Long mode: AFL++ (through afl.rs, stable Rust) on one target, on one core, niced.
#
#   fuzz/run.sh <target> <seconds> [afl-fuzz options...]
#
# Targets: decode_event wal_recovery store_records index_rows. Builds the AFL binary and
# the replay tool, writes the seed corpus (fuzz/corpus/, once), fuzzes into fuzz/out/<target>
# (resuming a previous run there), then replays every crash and prints a summary line:
#   afl <target>: <execs> inputs, <n> crashes saved
# Needs `cargo install cargo-afl --locked` (it builds AFL++ on install).
set -euo pipefail
cd "$(dirname "$0")"
if [ $# -lt 2 ]; then
    echo "usage: $0 <decode_event|wal_recovery|store_records|index_rows> <seconds> [afl-fuzz options...]" >&2
    exit 2
fi
target=$1
seconds=$2
shift 2
build=${FUZZ_TARGET_DIR:-$PWD/target}
if ! cargo afl --version >/dev/null 2>&1; then
    echo "cargo-afl is missing: cargo install cargo-afl --locked" >&2
    exit 2
fi

# Two target directories: cargo afl builds with its own RUSTFLAGS (instrumentation,
# debug assertions, overflow checks), which would force rebuilds of a plain build.
CARGO_TARGET_DIR=$build/afl nice cargo afl build --release --features afl --bin "afl_$target"
CARGO_TARGET_DIR=$build/plain nice cargo build --release --bin replay
replay=$build/plain/release/replay
[ -d corpus/"$target" ] || "$replay" --corpus corpus

export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1 AFL_AUTORESUME=1
[ -t 1 ] || export AFL_NO_UI=1
# Inputs of a few KiB are enough to reach everything (segments are 4 KiB in wal_recovery).
case $target in
    decode_event | index_rows) max_len=4096 ;;
    *) max_len=65536 ;;
esac
dict=()
[ -f dict/"$target".dict ] && dict=(-x dict/"$target".dict)
mkdir -p out
nice -n 10 cargo afl fuzz -V "$seconds" -G "$max_len" "${dict[@]}" -i corpus/"$target" -o out/"$target" "$@" \
    "$build/afl/release/afl_$target"

stats=out/$target/default/fuzzer_stats
execs=$(awk -F' *: *' '$1=="execs_done"{print $2}' "$stats")
crashes=$(awk -F' *: *' '$1=="saved_crashes"{print $2}' "$stats")
echo "afl $target: $execs inputs, $crashes crashes saved (out/$target/default/crashes*)"
if [ "$crashes" != "0" ]; then
    # A resumed run moves earlier crashes to crashes.<date>: replay them all.
    "$replay" "$target" out/"$target"/default/crashes* || true
fi
