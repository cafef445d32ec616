//! The integration tests' fixtures: everything lives in the `test-support` crate,
//! shared with the other crates' tests and the load drivers.

pub use test_support::*;
