//! `zos-build-server`: the zos-build daemon.
fn main() {}
