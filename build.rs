//! Rebuilds when a migration is added or changed: they are embedded in the binary, and a new
//! migration directory is not otherwise a change cargo notices.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
