//! What `FaultyStore` promises the tests that use it: a fault answers for the
//! method it is aimed at and nothing reaches the wrapped store; hooks run around
//! calls and see their outcome; shortcuts run through their parts unless forwarded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use queue_core::{
    Claim, MemoryStore, NewInstruction, QueueError, QueueName, Store, StoreError, Timestamp, Write,
};
use store_contract::fixtures::{id, t, text, who};
use store_contract::{FaultyStore, Method};

fn faulty() -> FaultyStore {
    FaultyStore::new(Arc::new(MemoryStore::new()))
}

fn add(s: &dyn Store, n: u128) -> Result<u128, QueueError> {
    s.add(NewInstruction::new(id(n), text("x")), t(n as i64))
        .map(|i| i.id.as_uuid().as_u128())
}

const BUSY: QueueError = QueueError::Store(StoreError::Busy);

#[test]
fn a_fault_answers_for_its_method_alone_until_healed() {
    let s = faulty();
    s.fail(Method::Add, BUSY);
    assert_eq!(add(&s, 1), Err(BUSY));
    assert_eq!(s.inner().get(id(1)), Ok(None), "the add never got through");
    assert_eq!(s.get(id(1)), Ok(None), "other methods still work");
    s.heal(Method::Add);
    assert_eq!(add(&s, 2), Ok(2));
    assert_eq!((s.calls(Method::Add), s.calls(Method::Get)), (2, 1));
}

#[test]
fn a_store_that_is_down_fails_every_method_in_its_own_way() {
    let s = faulty();
    s.fail_all(BUSY);
    assert_eq!(add(&s, 1), Err(BUSY));
    assert_eq!(s.counts(&QueueName::default()), Err(BUSY));
    assert_eq!(s.change_token(), Err(StoreError::Busy));
    assert_eq!(s.overview_at_once(), None);
    assert!(!s.notify_changes(Arc::new(|| {})));
    // An error that is not the store's reaches `change_token` as its message.
    s.heal(Method::ChangeToken);
    s.fail(Method::ChangeToken, QueueError::NotFound(id(3)));
    assert_eq!(
        s.change_token(),
        Err(StoreError::Other(QueueError::NotFound(id(3)).to_string()))
    );
    s.heal_all();
    assert_eq!(add(&s, 1), Ok(1));
}

#[test]
fn hooks_run_around_the_call_and_see_its_outcome() {
    let s = faulty();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let before = Arc::clone(&seen);
    s.before(Method::Claim, move |s| {
        // Another process adds just before the claim looks.
        let n = before.lock().unwrap().len() as u128 + 10;
        s.inner()
            .add(NewInstruction::new(id(n), text("raced")), t(1))
            .map(|_| ())
    });
    let after = Arc::clone(&seen);
    s.after(Method::Claim, move |_, out| {
        let out = out.downcast_ref::<Result<Claim, QueueError>>().unwrap();
        let Ok(Claim::Claimed(item)) = out else {
            panic!("the raced add was there to claim: {out:?}")
        };
        after.lock().unwrap().push(item.id.as_uuid().as_u128());
    });
    let x = who("x");
    let ticket = s.begin_call(&x, t(2), t(12)).unwrap();
    s.claim(&x, ticket.generation, t(3)).unwrap();
    s.claim(&x, ticket.generation, t(4)).unwrap();
    assert_eq!(*seen.lock().unwrap(), [10, 11]);
}

#[test]
fn shortcuts_run_through_their_parts_unless_forwarded() {
    let x = who("x");
    let through = faulty();
    add(&through, 1).unwrap();
    through.fail(Method::Claim, BUSY);
    let (ticket, claim) = through.begin_and_claim(&x, t(2), t(12)).unwrap();
    assert_eq!(claim, Err(BUSY), "the claim inside the shortcut failed");
    assert_eq!(ticket.generation, 1, "the call was started");
    assert_eq!(
        (
            through.calls(Method::BeginAndClaim),
            through.calls(Method::BeginCall)
        ),
        (1, 1)
    );

    let forwarded = FaultyStore::new(Arc::new(MemoryStore::new())).forwarding_shortcuts();
    add(&forwarded, 1).unwrap();
    forwarded.fail(Method::Claim, BUSY);
    let (_, claim) = forwarded.begin_and_claim(&x, t(2), t(12)).unwrap();
    assert!(matches!(claim, Ok(Claim::Claimed(_))), "{claim:?}");
    assert_eq!(forwarded.calls(Method::Claim), 0);
}

/// A queued write is given back, and its calls then meet the faults.
#[test]
fn a_queued_write_is_given_back_to_run_here() {
    struct AddOne(Arc<AtomicU64>);
    impl Write for AddOne {
        fn run(&mut self, store: &dyn Store) {
            let ok = add(store, 1).is_ok();
            self.0.store(u64::from(ok) + 1, Ordering::SeqCst);
        }
        fn done(self: Box<Self>, _: Result<(), StoreError>) {}
    }
    let s = faulty();
    s.fail(Method::Add, BUSY);
    let ran = Arc::new(AtomicU64::new(0));
    let Err(mut write) = s.queue_write(Box::new(AddOne(Arc::clone(&ran)))) else {
        panic!("the write is given back")
    };
    write.run(&s);
    assert_eq!(ran.load(Ordering::SeqCst), 1, "ran, and its add failed");
}

/// A fault can switch on from a hook: here the counts fail once something was
/// claimed, as a store that breaks down right after a delivery.
#[test]
fn a_hook_can_add_a_fault() {
    let s = faulty();
    add(&s, 1).unwrap();
    s.after(Method::Claim, |s, out| {
        if let Some(Ok(Claim::Claimed(_))) = out.downcast_ref::<Result<Claim, QueueError>>() {
            s.fail(Method::Counts, BUSY);
        }
    });
    assert_eq!(s.counts(&QueueName::default()).unwrap().pending, 1);
    let x = who("x");
    let now = Timestamp::from_micros(5);
    let ticket = s.begin_call(&x, now, now).unwrap();
    assert!(matches!(
        s.claim_and_end(&x, ticket.generation, now),
        Ok(Claim::Claimed(_))
    ));
    assert_eq!(s.counts(&QueueName::default()), Err(BUSY));
    assert_eq!(s.inner().counts(&QueueName::default()).unwrap().consumed, 1);
}
