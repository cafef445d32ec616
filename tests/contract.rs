//! The `Store` contract, one suite run against every implementation: the in-memory
//! model, SQLite and PostgreSQL.

use std::sync::mpsc;
use std::time::Duration;

use integration::TempDb;
use queue_core::{
    AgentId, Caller, Change, Claim, Conflict, Content, Counts, Instruction, InstructionId,
    NewInstruction, Page, QueueError, QueueName, ResultType, SettingsPatch, Status, StatusFilter,
    Store, StoreError, Timestamp, Write,
};

fn t(n: i64) -> Timestamp {
    Timestamp::from_micros(1_800_000_000_000_000 + n)
}

fn id(n: u128) -> InstructionId {
    InstructionId::from_u128(n)
}

fn text(s: &str) -> Content {
    Content::parse(s).unwrap()
}

fn agent(s: &str) -> AgentId {
    AgentId::parse(s).unwrap()
}

/// `name` on the `default` queue.
fn who(name: &str) -> Caller {
    Caller::from(agent(name))
}

fn queue(name: &str) -> QueueName {
    QueueName::parse(name).unwrap()
}

/// `name` on `queue_name`.
fn on(queue_name: &str, name: &str) -> Caller {
    Caller::new(queue(queue_name), agent(name))
}

/// `content` queued on `queue_name`, for `to` alone when given.
fn new_on(queue_name: &str, n: u128, content: &str, to: Option<&str>) -> NewInstruction {
    NewInstruction::new(id(n), text(content))
        .on(queue(queue_name))
        .to(to.map(agent))
}

fn contents(items: &[Instruction]) -> Vec<&str> {
    items.iter().map(|i| i.content.as_str()).collect()
}

fn all(s: &dyn Store, filter: StatusFilter) -> Vec<Instruction> {
    all_on(s, "default", filter)
}

fn all_on(s: &dyn Store, queue_name: &str, filter: StatusFilter) -> Vec<Instruction> {
    s.list(&queue(queue_name), filter, Page::default())
        .unwrap()
        .items
}

/// Starts a call of `name` on the `default` queue and claims once.
fn take(s: &dyn Store, name: &str, now: Timestamp) -> Claim {
    take_as(s, &who(name), now)
}

/// Starts a call of `caller` and claims once.
fn take_as(s: &dyn Store, caller: &Caller, now: Timestamp) -> Claim {
    let ticket = s.begin_call(caller, now, now.plus_secs(10)).unwrap();
    s.claim(caller, ticket.generation, now).unwrap()
}

fn adds_go_to_the_end_and_are_listed_in_order(s: &dyn Store) {
    for (n, c) in ["a", "b", "c"].iter().enumerate() {
        let item = s
            .add(NewInstruction::new(id(n as u128 + 1), text(c)), t(n as i64))
            .unwrap();
        assert_eq!(item.status, Status::Pending);
        assert_eq!(item.created_at, t(n as i64));
        assert_eq!(item.consumed_at, None);
    }
    assert_eq!(contents(&all(s, StatusFilter::Pending)), ["a", "b", "c"]);
    assert_eq!(s.get(id(2)).unwrap().unwrap().content.as_str(), "b");
    assert_eq!(s.get(id(99)).unwrap(), None);
    let counts = s.counts(&QueueName::default()).unwrap();
    assert_eq!((counts.pending, counts.consumed), (3, 0));
}

fn claims_take_the_oldest_exactly_once(s: &dyn Store) {
    s.add(NewInstruction::new(id(1), text("first")), t(1))
        .unwrap();
    s.add(NewInstruction::new(id(2), text("second")), t(2))
        .unwrap();
    let Claim::Claimed(got) = take(s, "x", t(3)) else {
        panic!("expected a claim")
    };
    assert_eq!(got.id, id(1));
    assert_eq!(got.status, Status::Consumed);
    assert_eq!(got.consumed_at, Some(t(3)));
    assert_eq!(got.consumed_by, Some(agent("x")));
    let Claim::Claimed(got) = take(s, "x", t(4)) else {
        panic!("expected a claim")
    };
    assert_eq!(got.id, id(2));
    assert_eq!(take(s, "x", t(5)), Claim::Empty);
    let counts = s.counts(&QueueName::default()).unwrap();
    assert_eq!((counts.pending, counts.consumed), (0, 2));
}

fn only_the_newest_call_of_an_agent_may_claim(s: &dyn Store) {
    s.add(NewInstruction::new(id(1), text("a")), t(1)).unwrap();
    let x = who("x");
    let old = s.begin_call(&x, t(2), t(12)).unwrap();
    let new = s.begin_call(&x, t(3), t(13)).unwrap();
    assert_eq!(new.generation, old.generation + 1);
    assert_eq!(
        s.claim(&x, old.generation, t(4)).unwrap(),
        Claim::Superseded
    );
    assert_eq!(
        s.claim(&who("never-seen"), 1, t(4)).unwrap(),
        Claim::Superseded
    );
    // Another agent's calls do not supersede x's.
    s.begin_call(&who("y"), t(5), t(15)).unwrap();
    assert!(matches!(
        s.claim(&x, new.generation, t(6)).unwrap(),
        Claim::Claimed(_)
    ));
}

fn edit_and_delete_only_while_pending(s: &dyn Store) {
    s.add(NewInstruction::new(id(1), text("a")), t(1)).unwrap();
    s.add(NewInstruction::new(id(2), text("b")), t(2)).unwrap();
    let edited = s.edit(id(2), text("b2"), t(3)).unwrap();
    assert_eq!(edited.content.as_str(), "b2");
    assert_eq!(edited.updated_at, t(3));
    assert_eq!(edited.created_at, t(2));
    take(s, "x", t(4));
    assert_eq!(
        s.edit(id(1), text("z"), t(5)),
        Err(QueueError::Conflict(Conflict::AlreadyConsumed))
    );
    assert_eq!(
        s.delete(id(1), t(5)),
        Err(QueueError::Conflict(Conflict::AlreadyConsumed))
    );
    assert_eq!(
        s.edit(id(9), text("z"), t(5)),
        Err(QueueError::NotFound(id(9)))
    );
    assert_eq!(s.delete(id(9), t(5)), Err(QueueError::NotFound(id(9))));
    let gone = s.delete(id(2), t(6)).unwrap();
    assert_eq!(gone.content.as_str(), "b2");
    assert_eq!(s.get(id(2)).unwrap(), None);
    assert_eq!(s.counts(&QueueName::default()).unwrap().pending, 0);
}

fn requeue_copies_a_consumed_one_to_the_end(s: &dyn Store) {
    s.add(NewInstruction::new(id(1), text("a")), t(1)).unwrap();
    s.add(NewInstruction::new(id(2), text("b")), t(2)).unwrap();
    assert_eq!(
        s.requeue(id(1), id(10), t(3)),
        Err(QueueError::Conflict(Conflict::NotConsumed))
    );
    assert_eq!(
        s.requeue(id(9), id(10), t(3)),
        Err(QueueError::NotFound(id(9)))
    );
    take(s, "x", t(4));
    let copy = s.requeue(id(1), id(10), t(5)).unwrap();
    assert_eq!((copy.id, copy.status), (id(10), Status::Pending));
    assert_eq!(copy.content.as_str(), "a");
    assert_eq!(contents(&all(s, StatusFilter::Pending)), ["b", "a"]);
    // The original stays in the history.
    assert_eq!(s.get(id(1)).unwrap().unwrap().status, Status::Consumed);
}

fn reorder_needs_exactly_the_pending_set(s: &dyn Store) {
    for n in 1..=4 {
        s.add(
            NewInstruction::new(id(n), text(&format!("i{n}"))),
            t(n as i64),
        )
        .unwrap();
    }
    take(s, "x", t(5)); // consumes i1
    let conflict = Err(QueueError::Conflict(Conflict::PendingSetChanged));
    assert_eq!(
        s.reorder(&QueueName::default(), &[id(4), id(3)], t(6)),
        conflict
    ); // missing one
    assert_eq!(
        s.reorder(&QueueName::default(), &[id(4), id(3), id(2), id(1)], t(6)),
        conflict
    ); // consumed one
    assert_eq!(
        s.reorder(&QueueName::default(), &[id(4), id(4), id(3)], t(6)),
        conflict
    ); // duplicate
    assert_eq!(
        s.reorder(&QueueName::default(), &[id(4), id(3), id(9)], t(6)),
        conflict
    ); // unknown
    let ordered = s
        .reorder(&QueueName::default(), &[id(4), id(2), id(3)], t(6))
        .unwrap();
    assert_eq!(contents(&ordered), ["i4", "i2", "i3"]);
    assert_eq!(contents(&all(s, StatusFilter::Pending)), ["i4", "i2", "i3"]);
    // New items still go to the end, and claims follow the new order.
    s.add(NewInstruction::new(id(5), text("i5")), t(7)).unwrap();
    let Claim::Claimed(got) = take(s, "x", t(8)) else {
        panic!("expected a claim")
    };
    assert_eq!(got.id, id(4));
    assert_eq!(contents(&all(s, StatusFilter::Pending)), ["i2", "i3", "i5"]);
}

fn unclaim_puts_it_back_at_the_head(s: &dyn Store) {
    s.add(NewInstruction::new(id(1), text("a")), t(1)).unwrap();
    s.add(NewInstruction::new(id(2), text("b")), t(2)).unwrap();
    take(s, "x", t(3));
    assert_eq!(
        s.unclaim(id(2), t(4)),
        Err(QueueError::Conflict(Conflict::NotConsumed))
    );
    let back = s.unclaim(id(1), t(4)).unwrap();
    assert_eq!(back.status, Status::Pending);
    assert_eq!((back.consumed_at, back.consumed_by), (None, None));
    assert_eq!(contents(&all(s, StatusFilter::Pending)), ["a", "b"]);
    // With nothing else pending it still comes back.
    take(s, "x", t(5));
    take(s, "x", t(6));
    s.unclaim(id(2), t(7)).unwrap();
    assert_eq!(contents(&all(s, StatusFilter::Pending)), ["b"]);
}

fn listing_orders_and_pages(s: &dyn Store) {
    for n in 1..=5 {
        s.add(
            NewInstruction::new(id(n), text(&format!("i{n}"))),
            t(n as i64),
        )
        .unwrap();
    }
    take(s, "x", t(10)); // i1
    take(s, "x", t(11)); // i2
    let names = |f, offset, limit| {
        let page = s
            .list(&QueueName::default(), f, Page { offset, limit })
            .unwrap();
        (
            page.items
                .iter()
                .map(|i| i.content.as_str().to_owned())
                .collect::<Vec<_>>(),
            page.total,
        )
    };
    assert_eq!(
        names(StatusFilter::All, 0, None),
        (
            vec![
                "i1".into(),
                "i2".into(),
                "i3".into(),
                "i4".into(),
                "i5".into()
            ],
            5
        )
    );
    assert_eq!(
        names(StatusFilter::All, 1, Some(2)),
        (vec!["i2".into(), "i3".into()], 5)
    );
    assert_eq!(
        names(StatusFilter::All, 3, Some(10)),
        (vec!["i4".into(), "i5".into()], 5)
    );
    assert_eq!(names(StatusFilter::All, 9, None), (vec![], 5));
    assert_eq!(names(StatusFilter::All, 0, Some(0)), (vec![], 5));
    assert_eq!(
        names(StatusFilter::Consumed, 0, None),
        (vec!["i1".into(), "i2".into()], 2)
    );
    assert_eq!(
        names(StatusFilter::Pending, 1, Some(1)),
        (vec!["i4".into()], 3)
    );
    assert_eq!(
        names(StatusFilter::Pending, u64::MAX, Some(u64::MAX)),
        (vec![], 3)
    );
}

fn agents_record_calls(s: &dyn Store) {
    let x = who("x");
    let ticket = s.begin_call(&x, t(1), t(11)).unwrap();
    assert_eq!(ticket.agent.last_seen_at, t(1));
    assert_eq!(ticket.agent.waiting_until, Some(t(11)));
    assert_eq!(ticket.agent.last_fetch_at, None);
    let after = s
        .end_call(&x, ticket.generation, ResultType::Empty, t(2))
        .unwrap();
    assert_eq!(after.waiting_until, None);
    assert_eq!(after.last_fetch_at, Some(t(2)));
    assert_eq!(after.last_result_type, Some(ResultType::Empty));
    // An outdated call's end does not clear the newer call's wait.
    let old = s.begin_call(&x, t(3), t(13)).unwrap();
    let new = s.begin_call(&x, t(4), t(14)).unwrap();
    let after = s
        .end_call(&x, old.generation, ResultType::DefaultResponse, t(5))
        .unwrap();
    assert_eq!(after.waiting_until, Some(t(14)));
    assert_eq!(after.generation, new.generation);
    s.begin_call(&who("y"), t(6), t(16)).unwrap();
    let ids: Vec<_> = s
        .agents()
        .unwrap()
        .into_iter()
        .map(|a| a.id.to_string())
        .collect();
    assert_eq!(ids, ["y", "x"]);
}

fn begin_and_claim_starts_a_call_and_takes_the_head(s: &dyn Store) {
    let x = who("x");
    // On an empty queue the call is started and left waiting.
    let (first, claim) = s.begin_and_claim(&x, t(1), t(11)).unwrap();
    assert_eq!(claim.unwrap(), Claim::Empty);
    assert_eq!(first.agent.waiting_until, Some(t(11)));
    let record = s.agents().unwrap().remove(0);
    assert_eq!(
        (record.generation, record.waiting_until),
        (first.generation, Some(t(11)))
    );

    s.add(NewInstruction::new(id(1), text("a")), t(2)).unwrap();
    s.add(NewInstruction::new(id(2), text("b")), t(3)).unwrap();
    let seq = s.last_event_seq().unwrap();
    let (second, claim) = s.begin_and_claim(&x, t(4), t(14)).unwrap();
    assert!(second.generation > first.generation);
    let Claim::Claimed(item) = claim.unwrap() else {
        panic!("the head was waiting")
    };
    assert_eq!((item.id, item.status), (id(1), Status::Consumed));
    assert_eq!(item.consumed_at, Some(t(4)));
    assert_eq!(item.consumed_by.as_ref(), Some(&x.agent));
    assert_eq!(contents(&all(s, StatusFilter::Pending)), ["b"]);
    // The call that delivered is over: not waiting, its result recorded.
    let record = s.agents().unwrap().remove(0);
    assert_eq!(record.generation, second.generation);
    assert_eq!(record.waiting_until, None);
    assert_eq!(record.last_fetch_at, Some(t(4)));
    assert_eq!(record.last_result_type, Some(ResultType::Instruction));
    // The older call is superseded.
    assert_eq!(
        s.claim(&x, first.generation, t(5)).unwrap(),
        Claim::Superseded
    );
    // The same events as the separate steps.
    let kinds: Vec<_> = s
        .events_after(seq, 100)
        .unwrap()
        .iter()
        .map(|e| e.change.event_type())
        .collect();
    assert_eq!(
        kinds,
        ["agent.updated", "instruction.consumed", "agent.updated"]
    );
}

fn settings_are_saved_by_key(s: &dyn Store) {
    assert_eq!(s.settings().unwrap(), Default::default());
    let p = SettingsPatch::new(Some(3), None, None).unwrap();
    let stored = s.update_settings(&p, t(1)).unwrap();
    assert_eq!(stored.default_wait_seconds, Some(3));
    let p = SettingsPatch::new(None, Some(String::new()), Some(60)).unwrap();
    let stored = s.update_settings(&p, t(2)).unwrap();
    assert_eq!(stored.default_wait_seconds, Some(3));
    assert_eq!(stored.default_empty_response.as_deref(), Some(""));
    assert_eq!(stored.agent_stale_after_seconds, Some(60));
    assert_eq!(s.settings().unwrap(), stored);
}

fn every_change_and_only_changes_are_events(s: &dyn Store) {
    let start = s.last_event_seq().unwrap();
    let token = s.change_token().unwrap();
    s.add(NewInstruction::new(id(1), text("a")), t(1)).unwrap();
    s.edit(id(1), text("a2"), t(2)).unwrap();
    // Refused changes record nothing.
    let _ = s.edit(id(9), text("z"), t(3));
    let _ = s.reorder(&QueueName::default(), &[id(9)], t(3));
    take(s, "x", t(4));
    s.add(NewInstruction::new(id(2), text("b")), t(5)).unwrap();
    s.delete(id(2), t(6)).unwrap();
    s.update_settings(&SettingsPatch::new(Some(1), None, None).unwrap(), t(7))
        .unwrap();
    let events = s.events_after(start, 100).unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.change.event_type()).collect();
    assert_eq!(
        kinds,
        [
            "instruction.created",
            "instruction.updated",
            "agent.updated",
            "instruction.consumed",
            "instruction.created",
            "instruction.deleted",
            "config.updated"
        ]
    );
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(events.last().unwrap().seq, s.last_event_seq().unwrap());
    let Change::InstructionConsumed(item) = &events[3].change else {
        panic!("expected the consumption")
    };
    assert_eq!(item.id, id(1));
    assert_eq!(events[3].at, t(4));
    // Paging through events.
    let first_two = s.events_after(start, 2).unwrap();
    assert_eq!(first_two, events[..2]);
    assert_eq!(s.events_after(events[5].seq, 100).unwrap(), events[6..]);
    assert_ne!(s.change_token().unwrap(), token);
}

/// What a [`TwoAdds`] reports when done: its first id, whether it ran, what its
/// calls returned, and the outcome the store gave.
type Report = (u128, bool, Vec<String>, Result<(), StoreError>);

/// A write for [`Store::queue_write`] that adds two instructions around a refused
/// delete, reads the second back, and reports what each call returned.
struct TwoAdds {
    first: u128,
    seen: Vec<String>,
    ran: bool,
    report: mpsc::Sender<Report>,
}

impl Write for TwoAdds {
    fn run(&mut self, s: &dyn Store) {
        self.ran = true;
        let (a, b) = (self.first, self.first + 1);
        let mut seen = vec![
            format!(
                "{:?}",
                s.add(NewInstruction::new(id(a), text(&format!("{a}"))), t(1))
                    .map(|i| i.id)
            ),
            format!("{:?}", s.delete(id(u128::MAX), t(1)).map(|i| i.id)),
            format!(
                "{:?}",
                s.add(NewInstruction::new(id(b), text(&format!("{b}"))), t(1))
                    .map(|i| i.id)
            ),
        ];
        // Calls see what the write's earlier calls did.
        seen.push(format!("{:?}", s.get(id(b)).map(|i| i.map(|i| i.id))));
        self.seen.append(&mut seen);
    }

    fn done(self: Box<Self>, outcome: Result<(), StoreError>) {
        let _ = self.report.send((self.first, self.ran, self.seen, outcome));
    }
}

/// Hands `write` to the store, or runs it here where the store gives it back, as
/// `Store::queue_write` asks of its caller.
fn queue_it(s: &dyn Store, write: Box<dyn Write>) {
    if let Err(mut write) = s.queue_write(write) {
        write.run(s);
        write.done(Ok(()));
    }
}

fn queued_writes_make_their_calls_then_report_done(s: &dyn Store) {
    let (report, reports) = mpsc::channel();
    let starts: Vec<u128> = (0..20).map(|n| 1 + n * 2).collect();
    for &first in &starts {
        let write = TwoAdds {
            first,
            seen: Vec::new(),
            ran: false,
            report: report.clone(),
        };
        queue_it(s, Box::new(write));
    }
    let mut done: Vec<u128> = Vec::new();
    for _ in &starts {
        let (first, ran, seen, outcome) = reports
            .recv_timeout(Duration::from_secs(30))
            .expect("every queued write is reported done");
        assert_eq!(outcome, Ok(()), "write {first}");
        assert!(ran, "write {first}");
        let missing = id(u128::MAX);
        assert_eq!(
            seen,
            [
                format!("{:?}", Ok::<_, QueueError>(id(first))),
                format!(
                    "{:?}",
                    Err::<InstructionId, _>(QueueError::NotFound(missing))
                ),
                format!("{:?}", Ok::<_, QueueError>(id(first + 1))),
                format!("{:?}", Ok::<_, QueueError>(Some(id(first + 1)))),
            ],
            "write {first}"
        );
        // Once done, the calls are there for every reader.
        assert!(s.get(id(first + 1)).unwrap().is_some(), "write {first}");
        done.push(first);
    }
    done.sort_unstable();
    assert_eq!(done, starts, "each write reported done exactly once");
    assert!(reports.try_recv().is_err(), "no second report");
    // Each write's two adds are next to each other and in order: its calls ran
    // one after the other, in one place in the serial order.
    let pending = all(s, StatusFilter::Pending);
    assert_eq!(pending.len(), 40);
    for pair in pending.chunks(2) {
        assert_eq!(
            pair[1].id.as_uuid().as_u128(),
            pair[0].id.as_uuid().as_u128() + 1,
            "{pair:?}"
        );
    }
    let created = s
        .events_after(0, 1_000)
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.change, Change::InstructionCreated(_)))
        .count();
    assert_eq!(
        created, 40,
        "every add recorded its event, the refusal none"
    );
}

fn queues_keep_their_own_order_counts_and_listings(s: &dyn Store) {
    s.add(new_on("web", 1, "web 1", None), t(1)).unwrap();
    s.add(new_on("api", 2, "api 1", None), t(2)).unwrap();
    s.add(new_on("web", 3, "web 2", None), t(3)).unwrap();
    s.add(new_on("default", 4, "default 1", None), t(4))
        .unwrap();
    s.add(new_on("web", 5, "web 3", None), t(5)).unwrap();
    assert_eq!(
        contents(&all_on(s, "web", StatusFilter::All)),
        ["web 1", "web 2", "web 3"]
    );
    assert_eq!(
        contents(&all_on(s, "api", StatusFilter::Pending)),
        ["api 1"]
    );
    assert_eq!(contents(&all(s, StatusFilter::All)), ["default 1"]);
    let counts = |q: &str| s.counts(&queue(q)).unwrap();
    assert_eq!(
        counts("web"),
        Counts {
            pending: 3,
            consumed: 0
        }
    );
    assert_eq!(counts("api").pending, 1);

    // A claim takes its own queue's head, and only the queue's counts move.
    let Claim::Claimed(got) = take_as(s, &on("web", "x"), t(6)) else {
        panic!("web had instructions")
    };
    assert_eq!((got.id, got.queue.clone()), (id(1), queue("web")));
    assert_eq!(
        counts("web"),
        Counts {
            pending: 2,
            consumed: 1
        }
    );
    assert_eq!(
        counts("api"),
        Counts {
            pending: 1,
            consumed: 0
        }
    );
    assert_eq!(counts("default").pending, 1);

    // A reorder names its own queue's pending set, no other.
    let conflict = Err(QueueError::Conflict(Conflict::PendingSetChanged));
    assert_eq!(
        s.reorder(&queue("web"), &[id(5), id(3), id(4)], t(7)),
        conflict
    );
    assert_eq!(s.reorder(&queue("api"), &[id(5), id(3)], t(7)), conflict);
    let ordered = s.reorder(&queue("web"), &[id(5), id(3)], t(7)).unwrap();
    assert_eq!(contents(&ordered), ["web 3", "web 2"]);
    assert_eq!(contents(&all(s, StatusFilter::Pending)), ["default 1"]);

    // Back to the head of its own queue; a copy joins the end of its own queue.
    let back = s.unclaim(id(1), t(8)).unwrap();
    assert_eq!(back.queue, queue("web"));
    assert_eq!(
        contents(&all_on(s, "web", StatusFilter::Pending)),
        ["web 1", "web 3", "web 2"]
    );
    take_as(s, &on("api", "x"), t(9));
    let copy = s.requeue(id(2), id(20), t(10)).unwrap();
    assert_eq!(copy.queue, queue("api"));
    assert_eq!(
        contents(&all_on(s, "api", StatusFilter::All)),
        ["api 1", "api 1"]
    );

    let listed: Vec<_> = s
        .queues()
        .unwrap()
        .into_iter()
        .map(|q| (q.name.as_str().to_owned(), q.counts))
        .collect();
    assert_eq!(
        listed,
        [
            (
                "api".to_owned(),
                Counts {
                    pending: 1,
                    consumed: 1
                }
            ),
            (
                "default".to_owned(),
                Counts {
                    pending: 1,
                    consumed: 0
                }
            ),
            (
                "web".to_owned(),
                Counts {
                    pending: 3,
                    consumed: 0
                }
            ),
        ]
    );
    // Every event names its queue.
    let events = s.events_after(0, 100).unwrap();
    let reordered = events
        .iter()
        .find_map(|e| match &e.change {
            Change::InstructionReordered(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (reordered.queue, reordered.ids),
        (queue("web"), vec![id(5), id(3)])
    );
    assert!(events.iter().all(|e| e.change.queue().is_some()));
}

fn an_addressed_instruction_is_taken_only_by_its_agent(s: &dyn Store) {
    s.add(new_on("web", 1, "for bob", Some("bob")), t(1))
        .unwrap();
    s.add(new_on("web", 2, "for anyone", None), t(2)).unwrap();
    s.add(new_on("web", 3, "for anna", Some("anna")), t(3))
        .unwrap();
    let listed = all_on(s, "web", StatusFilter::Pending);
    assert_eq!(listed[0].to, Some(agent("bob")));
    assert_eq!(listed[1].to, None);

    // anna passes over bob's and takes what is hers or anyone's, in order.
    let anna = on("web", "anna");
    let Claim::Claimed(first) = take_as(s, &anna, t(4)) else {
        panic!("something was for anna")
    };
    assert_eq!(first.id, id(2));
    let Claim::Claimed(second) = take_as(s, &anna, t(5)) else {
        panic!("one was addressed to anna")
    };
    assert_eq!(
        (second.id, second.consumed_by.clone()),
        (id(3), Some(agent("anna")))
    );
    assert_eq!(take_as(s, &anna, t(6)), Claim::Empty);
    // Another queue's bob is not this bob.
    assert_eq!(take_as(s, &on("api", "bob"), t(7)), Claim::Empty);
    assert_eq!(s.counts(&queue("web")).unwrap().pending, 1);
    let Claim::Claimed(third) = take_as(s, &on("web", "bob"), t(8)) else {
        panic!("bob's was waiting")
    };
    assert_eq!(third.id, id(1));
    // A returned or requeued one keeps its addressee.
    assert_eq!(s.unclaim(id(1), t(9)).unwrap().to, Some(agent("bob")));
    take_as(s, &on("web", "bob"), t(10));
    assert_eq!(
        s.requeue(id(1), id(4), t(11)).unwrap().to,
        Some(agent("bob"))
    );
    assert_eq!(take_as(s, &anna, t(12)), Claim::Empty);
}

fn agents_are_told_apart_per_queue(s: &dyn Store) {
    s.add(new_on("web", 1, "web", None), t(1)).unwrap();
    let (web, api) = (on("web", "claude-code"), on("api", "claude-code"));
    let on_web = s.begin_call(&web, t(2), t(12)).unwrap();
    let on_api = s.begin_call(&api, t(3), t(13)).unwrap();
    assert_eq!((on_web.generation, on_api.generation), (1, 1));
    assert_eq!(
        (on_web.agent.queue.clone(), on_api.agent.queue.clone()),
        (queue("web"), queue("api"))
    );
    // The call on api did not supersede the one on web.
    assert!(matches!(s.claim(&web, 1, t(4)).unwrap(), Claim::Claimed(_)));
    let ended = s.end_call(&api, 1, ResultType::Empty, t(5)).unwrap();
    assert_eq!(ended.caller(), api);
    let agents: Vec<_> = s.agents().unwrap().iter().map(|a| a.caller()).collect();
    assert_eq!(agents, [api, web]);
}

fn a_queue_exists_once_used(s: &dyn Store) {
    let nowhere = queue("nowhere");
    let unknown = QueueError::UnknownQueue(nowhere.clone());
    assert_eq!(s.counts(&nowhere), Err(unknown.clone()));
    assert_eq!(
        s.list(&nowhere, StatusFilter::All, Page::default()),
        Err(unknown.clone())
    );
    assert_eq!(s.reorder(&nowhere, &[], t(1)), Err(unknown.clone()));
    let mut each = 0;
    assert_eq!(
        s.list_each(&nowhere, StatusFilter::All, Page::default(), &mut |_| {
            each += 1
        }),
        Err(unknown.clone())
    );
    // `default` always exists, also empty.
    assert_eq!(s.counts(&QueueName::default()).unwrap(), Counts::default());
    let names = |s: &dyn Store| -> Vec<String> {
        s.queues()
            .unwrap()
            .into_iter()
            .map(|q| q.name.as_str().to_owned())
            .collect()
    };
    assert_eq!(names(s), ["default"]);
    // An agent's call brings a queue into being, and so does an add.
    s.begin_call(&on("nowhere", "x"), t(2), t(12)).unwrap();
    assert_eq!(s.counts(&nowhere).unwrap(), Counts::default());
    s.add(new_on("web", 1, "w", None), t(3)).unwrap();
    assert_eq!(names(s), ["default", "nowhere", "web"]);
    // A queue stays once its instructions are gone.
    s.delete(id(1), t(4)).unwrap();
    assert_eq!(s.counts(&queue("web")).unwrap(), Counts::default());
    assert_eq!(names(s), ["default", "nowhere", "web"]);
    assert_eq!(s.reorder(&queue("web"), &[], t(5)).unwrap(), []);
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[test] fn $name() { super::$name(&queue_core::MemoryStore::new()) })*
        }
        mod sqlite {
            $(#[test] fn $name() {
                let db = integration::TempDb::new();
                super::$name(&*db.open_fast());
            })*
        }
        mod postgres {
            $(#[test] fn $name() {
                let Some(pg) = integration::TempPg::new() else { return };
                super::$name(&*pg.open());
            })*
        }
    };
}

contract!(
    adds_go_to_the_end_and_are_listed_in_order,
    claims_take_the_oldest_exactly_once,
    only_the_newest_call_of_an_agent_may_claim,
    edit_and_delete_only_while_pending,
    requeue_copies_a_consumed_one_to_the_end,
    reorder_needs_exactly_the_pending_set,
    unclaim_puts_it_back_at_the_head,
    listing_orders_and_pages,
    agents_record_calls,
    begin_and_claim_starts_a_call_and_takes_the_head,
    settings_are_saved_by_key,
    every_change_and_only_changes_are_events,
    queued_writes_make_their_calls_then_report_done,
    queues_keep_their_own_order_counts_and_listings,
    an_addressed_instruction_is_taken_only_by_its_agent,
    agents_are_told_apart_per_queue,
    a_queue_exists_once_used,
);

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
    let write = TwoAdds {
        first: 1,
        seen: Vec::new(),
        ran: false,
        report,
    };
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
