//! The clauses of the `Store` contract, one function each: given a fresh, empty
//! store, a clause drives it through one part of the contract (see the docs of
//! [`Store`]) and panics, saying what differed, where the store breaks it.
//!
//! Every clause expects a store nobody else writes to while it runs.

use std::sync::mpsc;
use std::time::Duration;

use queue_core::{
    Change, Claim, Conflict, Counts, InstructionId, NewInstruction, Page, QueueError, QueueName,
    ResultType, SettingsPatch, Status, StatusFilter, Store,
};

use crate::fixtures::*;

/// Adds go to the end and are listed in order.
pub fn adds_go_to_the_end_and_are_listed_in_order(s: &dyn Store) {
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

/// Claims take the oldest exactly once.
pub fn claims_take_the_oldest_exactly_once(s: &dyn Store) {
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

/// Only the newest call of an agent may claim.
pub fn only_the_newest_call_of_an_agent_may_claim(s: &dyn Store) {
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

/// Edit and delete only while pending.
pub fn edit_and_delete_only_while_pending(s: &dyn Store) {
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

/// Requeue copies a consumed one to the end.
pub fn requeue_copies_a_consumed_one_to_the_end(s: &dyn Store) {
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

/// Reorder needs exactly the pending set.
pub fn reorder_needs_exactly_the_pending_set(s: &dyn Store) {
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

/// Unclaim puts it back at the head.
pub fn unclaim_puts_it_back_at_the_head(s: &dyn Store) {
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

/// Listing orders and pages.
pub fn listing_orders_and_pages(s: &dyn Store) {
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

/// Agents record calls.
pub fn agents_record_calls(s: &dyn Store) {
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

/// Begin and claim starts a call and takes the head.
pub fn begin_and_claim_starts_a_call_and_takes_the_head(s: &dyn Store) {
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

/// Settings are saved by key.
pub fn settings_are_saved_by_key(s: &dyn Store) {
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

/// Every change and only changes are events.
pub fn every_change_and_only_changes_are_events(s: &dyn Store) {
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

/// Queued writes make their calls then report done.
pub fn queued_writes_make_their_calls_then_report_done(s: &dyn Store) {
    let (report, reports) = mpsc::channel();
    let starts: Vec<u128> = (0..20).map(|n| 1 + n * 2).collect();
    for &first in &starts {
        queue_it(s, Box::new(TwoAdds::new(first, report.clone())));
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

/// Queues keep their own order counts and listings.
pub fn queues_keep_their_own_order_counts_and_listings(s: &dyn Store) {
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

/// An addressed instruction is taken only by its agent.
pub fn an_addressed_instruction_is_taken_only_by_its_agent(s: &dyn Store) {
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

/// Agents are told apart per queue.
pub fn agents_are_told_apart_per_queue(s: &dyn Store) {
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

/// A queue exists once used.
pub fn a_queue_exists_once_used(s: &dyn Store) {
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
