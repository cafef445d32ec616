//! A throwaway PostgreSQL database per test, on the server that
//! `LOCAL_MCP_TEST_PG_URL` names (`.ci/run` starts one on loopback and sets it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use queue_store::{PgOptions, PgStore};

/// The admin address of the test server: a database it may create others from.
pub const PG_URL_ENV: &str = "LOCAL_MCP_TEST_PG_URL";

/// Set to `1` (as `.ci/run` does) to make a missing server fail the tests that
/// need it instead of letting them pass without running.
pub const REQUIRE_PG_ENV: &str = "LOCAL_MCP_REQUIRE_PG";

/// A database created for one test and dropped after it, connections and all.
pub struct TempPg {
    admin: String,
    name: String,
    url: String,
}

impl TempPg {
    /// A new empty database, or `None` (with a note on standard error) when no
    /// test server is configured and none is required.
    pub fn new() -> Option<Self> {
        let Ok(admin) = std::env::var(PG_URL_ENV) else {
            assert!(
                std::env::var(REQUIRE_PG_ENV).as_deref() != Ok("1"),
                "{REQUIRE_PG_ENV}=1 but {PG_URL_ENV} is not set: no PostgreSQL server to test on"
            );
            eprintln!("note: {PG_URL_ENV} is not set; this PostgreSQL test has nothing to run on");
            return None;
        };
        Some(Self::on(&admin))
    }

    /// A new empty database on the server `admin` names.
    pub fn on(admin: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "lmcp_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        admin_sql(admin, &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("create a test database on {PG_URL_ENV}: {e}"));
        let base = admin
            .rsplit_once('/')
            .map(|(base, _)| base)
            .expect("a postgres://host/db address");
        let url = format!("{base}/{name}");
        TempPg {
            admin: admin.to_owned(),
            name,
            url,
        }
    }

    /// The database's address.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Opens the store on it.
    pub fn open(&self) -> Arc<PgStore> {
        Arc::new(PgStore::open(&self.url, PgOptions::default()).expect("open the PostgreSQL store"))
    }
}

impl Drop for TempPg {
    fn drop(&mut self) {
        let _ = admin_sql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Runs `sql` on the admin database, on a thread of its own: the synchronous
/// client runs a runtime of its own, which may not start inside a test's.
fn admin_sql(admin: &str, sql: &str) -> Result<(), postgres::Error> {
    std::thread::scope(|s| {
        s.spawn(|| postgres::Client::connect(admin, postgres::NoTls)?.batch_execute(sql))
            .join()
            .expect("the admin thread panicked")
    })
}
