//! AFL target `index_rows`: see `TARGETS` in src/lib.rs and fuzz/README.md.

use duro_fuzz::fuzzkit::CountingAlloc;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        duro_fuzz::check("index_rows", data);
    });
}
