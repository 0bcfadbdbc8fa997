//! Prints the text of `alloc/src/sizeclass.rs` (regenerate the file with
//! `GORT_REGEN_SIZECLASSES=1 cargo test -p gort-alloc generated_sizeclass`).

#[path = "../gen/sizeclasses.rs"]
mod sizeclasses;

fn main() {
    print!("{}", sizeclasses::generate());
}
