//! What local-mcp's tests share: temporary databases, the server in the test's
//! own process ([`TestServer`]), `local-mcp` child processes for the tests that
//! need one ([`Serve`], [`Proc`]), one reader of live events ([`SseClient`],
//! [`RawSse`], [`SseParser`]), the fault-injecting store ([`FaultyStore`]) and the
//! fuzz runner ([`Fuzz`]).

mod db;
mod fuzz;
mod pg;
mod process;
mod server;
mod sse;
mod ui;

pub use db::{TempDb, as_store};
pub use fuzz::{Fuzz, fuzz_seed, json_tree};
pub use pg::{PG_URL_ENV, REQUIRE_PG_ENV, TempPg};
pub use process::*;
pub use server::TestServer;
pub use sse::*;
/// The one fault-injecting store wrapper, so a test that needs a failing store
/// finds it beside the other fixtures.
pub use store_contract::faults::{self, FaultyStore};
pub use ui::{UI_CSP, UiFolder, ui_assets};

/// Whether the long versions of the soak, fault and fuzz runs were asked for
/// (`LOCAL_MCP_LONG_TESTS=1`, set by `bash .ci/run --long`); CI runs the quick ones.
pub fn long_tests() -> bool {
    std::env::var("LOCAL_MCP_LONG_TESTS").is_ok_and(|v| v == "1")
}

/// `quick` normally, `long` when [`long_tests`] is on.
pub fn quick_or_long<T>(quick: T, long: T) -> T {
    if long_tests() { long } else { quick }
}
