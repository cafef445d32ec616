//! Model-based property test: random sequences of queue operations applied to the
//! in-memory model and to SQLite must give the same results after every step.

use proptest::prelude::*;
use queue_core::{
    AgentId, Content, InstructionId, MemoryStore, Page, SettingsPatch, StatusFilter, Store,
    Timestamp,
};

#[derive(Clone, Debug)]
enum Op {
    Add(String),
    Edit(usize, String),
    Delete(usize),
    Requeue(usize),
    /// Reorder the pending set by rotating it; `broken` drops one id to test refusal.
    Reorder {
        rotate: usize,
        broken: bool,
    },
    /// Begin a call of agent `a` and claim with its newest generation.
    Claim(usize),
    /// Begin a call of agent `a`, then claim with the previous (superseded) one.
    ClaimStale(usize),
    EndCall(usize),
    Unclaim(usize),
    Settings(Option<i64>, Option<i64>),
}

fn op() -> impl Strategy<Value = Op> {
    let words = "[a-z ]{0,12}";
    prop_oneof![
        4 => words.prop_map(Op::Add),
        1 => (any::<usize>(), words).prop_map(|(i, s)| Op::Edit(i, s)),
        1 => any::<usize>().prop_map(Op::Delete),
        1 => any::<usize>().prop_map(Op::Requeue),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(rotate, broken)| Op::Reorder { rotate, broken }),
        3 => (0..3usize).prop_map(Op::Claim),
        1 => (0..3usize).prop_map(Op::ClaimStale),
        1 => (0..3usize).prop_map(Op::EndCall),
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

/// Applies `op` to `s`, returning a printable observation of its result.
fn apply(s: &dyn Store, h: &mut Harness, op: &Op, now: Timestamp, new_id: InstructionId) -> String {
    match op {
        Op::Add(text) => format!("{:?}", Content::parse(text).map(|c| s.add(new_id, c, now))),
        Op::Edit(i, text) => format!(
            "{:?}",
            Content::parse(text).map(|c| s.edit(h.pick(*i), c, now))
        ),
        Op::Delete(i) => format!("{:?}", s.delete(h.pick(*i), now)),
        Op::Requeue(i) => format!("{:?}", s.requeue(h.pick(*i), new_id, now)),
        Op::Reorder { rotate, broken } => {
            let mut ids: Vec<_> = s
                .list(StatusFilter::Pending, Page::default())
                .unwrap()
                .items
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
            format!("{:?}", s.reorder(&ids, now))
        }
        Op::Claim(a) => {
            let ticket = s.begin_call(&agent(*a), now, now.plus_secs(10));
            let claim = ticket
                .as_ref()
                .map(|t| s.claim(&agent(*a), t.generation, now));
            format!("{ticket:?} {claim:?}")
        }
        Op::ClaimStale(a) => {
            let ticket = s.begin_call(&agent(*a), now, now.plus_secs(10));
            let claim = ticket
                .as_ref()
                .map(|t| s.claim(&agent(*a), t.generation - 1, now));
            format!("{ticket:?} {claim:?}")
        }
        Op::EndCall(a) => {
            let generation = s
                .agents()
                .unwrap()
                .into_iter()
                .find(|r| r.id == agent(*a))
                .map(|r| r.generation);
            match generation {
                Some(g) => format!(
                    "{:?}",
                    s.end_call(&agent(*a), g, queue_core::ResultType::Empty, now)
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
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        s.list(StatusFilter::All, Page::default()),
        s.list(
            StatusFilter::Pending,
            Page {
                offset: 1,
                limit: Some(2)
            }
        ),
        s.counts(),
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
        let sqlite = db.open_fast();
        let model = MemoryStore::new();
        let mut h = Harness { ids: Vec::new(), next_id: 0, now: 0 };
        for (step, op) in ops.iter().enumerate() {
            let now = h.tick();
            let new_id = h.fresh();
            let expected = apply(&model, &mut h, op, now, new_id);
            let got = apply(&*sqlite, &mut h, op, now, new_id);
            prop_assert_eq!(&got, &expected, "step {} {:?}", step, op);
            prop_assert_eq!(observe(&*sqlite), observe(&model), "state after step {} {:?}", step, op);
        }
    }
}
