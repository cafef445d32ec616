//! The `Store` contract (the `store-contract` crate's suite) run against SQLite and
//! PostgreSQL — the in-memory model runs it in that crate's own tests — and the
//! clauses only SQLite has: reopening, other connections, a write it cannot start.

use std::sync::mpsc;
use std::time::Duration;

use integration::TempDb;
use queue_core::{NewInstruction, QueueName, Status, StatusFilter, Store, StoreError};
use store_contract::fixtures::{TwoAdds, all, contents, id, queue_it, t, take, text};

mod sqlite {
    store_contract::tests!(|| {
        let db = integration::TempDb::new();
        (db.open_fast(), db)
    });
}

mod postgres {
    store_contract::tests!(|| { integration::TempPg::new().map(|pg| (pg.open(), pg)) });
}

/// The contract holds for a store seen through a `FaultyStore` without faults,
/// whose shortcuts then run through their parts; passed through whole, SQLite's
/// own shortcuts keep it too.
mod sqlite_faulty {
    store_contract::tests!(|| {
        let db = integration::TempDb::new();
        let store = store_contract::FaultyStore::new(db.open_fast());
        (store, db)
    });
}

/// SQLite keeps everything across a reopen; the in-memory model trivially does not
/// need to.
#[test]
fn sqlite_data_survives_reopen() {
    let db = TempDb::new();
    {
        let s = db.open();
        s.add(NewInstruction::new(id(1), text("kept")), t(1))
            .unwrap();
        take(&*s, "x", t(2));
        s.add(NewInstruction::new(id(2), text("also kept")), t(3))
            .unwrap();
    }
    let s = db.open();
    let items = all(&*s, StatusFilter::All);
    assert_eq!(contents(&items), ["kept", "also kept"]);
    assert_eq!(items[0].status, Status::Consumed);
    s.integrity_check().unwrap();
}

/// A second connection's commit changes the token seen by the first process's
/// watcher, which is what cross-process wake-up rests on.
#[test]
fn sqlite_change_token_sees_other_connections() {
    let db = TempDb::new();
    let a = db.open_fast();
    let b = db.open_fast();
    let before = a.change_token().unwrap();
    assert_eq!(a.change_token().unwrap(), before);
    b.add(NewInstruction::new(id(1), text("from b")), t(1))
        .unwrap();
    assert_ne!(a.change_token().unwrap(), before);
    let seen = a.events_after(0, 10).unwrap();
    assert_eq!(seen.len(), 1);
}

/// A write SQLite cannot start — another process holds the database locked past
/// the busy timeout — is reported done with that error and never runs.
#[test]
fn sqlite_a_queued_write_that_cannot_start_reports_the_error_without_running() {
    let db = TempDb::new();
    let holder = db.open();
    let waiter = queue_store::SqliteStore::open(
        db.path(),
        queue_store::StoreOptions {
            busy_timeout: Duration::from_millis(50),
            ..queue_store::StoreOptions::default()
        },
    )
    .unwrap();
    let (report, reports) = mpsc::channel();
    let write = TwoAdds::new(1, report);
    let waiter = std::sync::Arc::new(waiter);
    let queued = std::sync::Arc::clone(&waiter);
    let (first, ran, seen, outcome) = holder
        .with_write_lock(move || {
            queue_it(&*queued, Box::new(write));
            reports.recv_timeout(Duration::from_secs(30)).unwrap()
        })
        .unwrap();
    assert_eq!((first, ran, seen), (1, false, Vec::<String>::new()));
    assert_eq!(outcome, Err(StoreError::Busy));
    // Nothing was written, and the store works again once the lock is gone.
    assert_eq!(waiter.counts(&QueueName::default()).unwrap().pending, 0);
    waiter
        .add(NewInstruction::new(id(7), text("after")), t(2))
        .unwrap();
    assert_eq!(holder.counts(&QueueName::default()).unwrap().pending, 1);
}
