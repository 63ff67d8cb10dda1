//! `zos-build-client`: the terminal client of zos-build.
fn main() {}
