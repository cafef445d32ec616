//! Model-based property test: random sequences of queue operations applied to the
//! in-memory model and to SQLite, and to PostgreSQL where a test server is
//! configured, must give the same results after every step.

use proptest::prelude::*;
use queue_core::{
    AgentId, Caller, Content, InstructionId, MemoryStore, NewInstruction, Page, QueueName,
    SettingsPatch, StatusFilter, Store, Timestamp,
};

/// Queues 0..=2 get used; 3 never is, so reads of it are refused alike.
const QUEUES: usize = 4;

#[derive(Clone, Debug)]
enum Op {
    /// Text, queue, and the agent it is addressed to, if any.
    Add(String, usize, Option<usize>),
    Edit(usize, String),
    Delete(usize),
    Requeue(usize),
    /// Reorder a queue's pending set by rotating it; `broken` drops one id to test
    /// refusal.
    Reorder {
        queue: usize,
        rotate: usize,
        broken: bool,
    },
    /// Begin a call of agent `a` on queue `q` and claim with its newest generation.
    Claim(usize, usize),
    /// Begin a call of agent `a` on queue `q`, then claim with the previous
    /// (superseded) one.
    ClaimStale(usize, usize),
    EndCall(usize, usize),
    Unclaim(usize),
    Settings(Option<i64>, Option<i64>),
}

fn op() -> impl Strategy<Value = Op> {
    let words = "[a-z ]{0,12}";
    prop_oneof![
        4 => (words, 0..3usize, proptest::option::weighted(0.3, 0..3usize))
            .prop_map(|(w, q, to)| Op::Add(w, q, to)),
        1 => (any::<usize>(), words).prop_map(|(i, s)| Op::Edit(i, s)),
        1 => any::<usize>().prop_map(Op::Delete),
        1 => any::<usize>().prop_map(Op::Requeue),
        1 => (0..QUEUES, any::<usize>(), any::<bool>())
            .prop_map(|(queue, rotate, broken)| Op::Reorder { queue, rotate, broken }),
        3 => (0..3usize, 0..3usize).prop_map(|(q, a)| Op::Claim(q, a)),
        1 => (0..3usize, 0..3usize).prop_map(|(q, a)| Op::ClaimStale(q, a)),
        1 => (0..3usize, 0..3usize).prop_map(|(q, a)| Op::EndCall(q, a)),
        1 => any::<usize>().prop_map(Op::Unclaim),
        1 => (proptest::option::of(-5..20i64), proptest::option::of(-5..20i64))
            .prop_map(|(w, s)| Op::Settings(w, s)),
    ]
}

struct Harness {
    ids: Vec<InstructionId>,
    next_id: u128,
    now: i64,
}

impl Harness {
    fn pick(&self, i: usize) -> InstructionId {
        // Sometimes (one slot in the range) an id that never existed.
        if self.ids.is_empty() || i % (self.ids.len() + 1) == self.ids.len() {
            InstructionId::from_u128(u128::MAX)
        } else {
            self.ids[i % self.ids.len()]
        }
    }

    fn fresh(&mut self) -> InstructionId {
        self.next_id += 1;
        let id = InstructionId::from_u128(self.next_id);
        self.ids.push(id);
        id
    }

    fn tick(&mut self) -> Timestamp {
        self.now += 1_000;
        Timestamp::from_micros(1_800_000_000_000_000 + self.now)
    }
}

fn agent(i: usize) -> AgentId {
    AgentId::parse(&format!("agent-{i}")).unwrap()
}

fn queue(i: usize) -> QueueName {
    match i {
        0 => QueueName::default(),
        i => QueueName::parse(&format!("q{i}")).unwrap(),
    }
}

fn caller(q: usize, a: usize) -> Caller {
    Caller::new(queue(q), agent(a))
}

/// Applies `op` to `s`, returning a printable observation of its result.
fn apply(s: &dyn Store, h: &mut Harness, op: &Op, now: Timestamp, new_id: InstructionId) -> String {
    match op {
        Op::Add(text, q, to) => format!(
            "{:?}",
            Content::parse(text).map(|c| {
                let new = NewInstruction::new(new_id, c)
                    .on(queue(*q))
                    .to(to.map(agent));
                s.add(new, now)
            })
        ),
        Op::Edit(i, text) => format!(
            "{:?}",
            Content::parse(text).map(|c| s.edit(h.pick(*i), c, now))
        ),
        Op::Delete(i) => format!("{:?}", s.delete(h.pick(*i), now)),
        Op::Requeue(i) => format!("{:?}", s.requeue(h.pick(*i), new_id, now)),
        Op::Reorder {
            queue: q,
            rotate,
            broken,
        } => {
            let mut ids: Vec<_> = s
                .list(&queue(*q), StatusFilter::Pending, Page::default())
                .map(|l| l.items)
                .unwrap_or_default()
                .iter()
                .map(|i| i.id)
                .collect();
            if !ids.is_empty() {
                let k = rotate % ids.len();
                ids.rotate_left(k);
            }
            if *broken {
                ids.pop();
                ids.push(InstructionId::from_u128(u128::MAX - 1));
            }
            format!("{:?}", s.reorder(&queue(*q), &ids, now))
        }
        Op::Claim(q, a) => {
            let c = caller(*q, *a);
            let ticket = s.begin_call(&c, now, now.plus_secs(10));
            let claim = ticket.as_ref().map(|t| s.claim(&c, t.generation, now));
            format!("{ticket:?} {claim:?}")
        }
        Op::ClaimStale(q, a) => {
            let c = caller(*q, *a);
            let ticket = s.begin_call(&c, now, now.plus_secs(10));
            let claim = ticket.as_ref().map(|t| s.claim(&c, t.generation - 1, now));
            format!("{ticket:?} {claim:?}")
        }
        Op::EndCall(q, a) => {
            let c = caller(*q, *a);
            let generation = s
                .agents()
                .unwrap()
                .into_iter()
                .find(|r| r.caller() == c)
                .map(|r| r.generation);
            match generation {
                Some(g) => format!(
                    "{:?}",
                    s.end_call(&c, g, queue_core::ResultType::Empty, now)
                ),
                None => String::from("no agent"),
            }
        }
        Op::Unclaim(i) => format!("{:?}", s.unclaim(h.pick(*i), now)),
        Op::Settings(w, st) => format!(
            "{:?}",
            SettingsPatch::new(*w, None, *st).map(|p| s.update_settings(&p, now))
        ),
    }
}

fn observe(s: &dyn Store) -> String {
    let per_queue: Vec<String> = (0..QUEUES)
        .map(|q| {
            let q = queue(q);
            format!(
                "{q}: {:?}\n{:?}\n{:?}",
                s.list(&q, StatusFilter::All, Page::default()),
                s.list(
                    &q,
                    StatusFilter::Pending,
                    Page {
                        offset: 1,
                        limit: Some(2)
                    }
                ),
                s.counts(&q),
            )
        })
        .collect();
    format!(
        "{}\n{:?}\n{:?}\n{:?}\n{:?}",
        per_queue.join("\n"),
        s.queues(),
        s.agents(),
        s.settings(),
        s.events_after(0, 100_000).map(|e| e
            .into_iter()
            .map(|e| (e.seq, e.at, e.change))
            .collect::<Vec<_>>()),
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn sqlite_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let db = integration::TempDb::new();
        check_against_model(&*db.open_fast(), &ops)?;
    }

    #[test]
    fn postgres_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let Some(pg) = integration::TempPg::new() else { return Ok(()) };
        check_against_model(&*pg.open(), &ops)?;
    }
}

fn check_against_model(store: &dyn Store, ops: &[Op]) -> Result<(), TestCaseError> {
    let model = MemoryStore::new();
    let mut h = Harness {
        ids: Vec::new(),
        next_id: 0,
        now: 0,
    };
    for (step, op) in ops.iter().enumerate() {
        let now = h.tick();
        let new_id = h.fresh();
        let expected = apply(&model, &mut h, op, now, new_id);
        let got = apply(store, &mut h, op, now, new_id);
        prop_assert_eq!(&got, &expected, "step {} {:?}", step, op);
        prop_assert_eq!(
            observe(store),
            observe(&model),
            "state after step {} {:?}",
            step,
            op
        );
    }
    Ok(())
}
