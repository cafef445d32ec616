//! Small builders and drivers the contract's clauses share, public so a store's
//! own extra tests can speak the same language (times, ids, a claim in one step).

use std::sync::mpsc;

use queue_core::{
    AgentId, Caller, Claim, Content, Instruction, InstructionId, NewInstruction, Page, QueueName,
    StatusFilter, Store, StoreError, Timestamp, Write,
};

/// The `n`th microsecond of the suite's fixed epoch: every time a clause passes.
pub fn t(n: i64) -> Timestamp {
    Timestamp::from_micros(1_800_000_000_000_000 + n)
}

/// Instruction id `n`.
pub fn id(n: u128) -> InstructionId {
    InstructionId::from_u128(n)
}

/// `s` as instruction content.
pub fn text(s: &str) -> Content {
    Content::parse(s).unwrap()
}

/// The agent named `s`.
pub fn agent(s: &str) -> AgentId {
    AgentId::parse(s).unwrap()
}

/// `name` on the `default` queue.
pub fn who(name: &str) -> Caller {
    Caller::from(agent(name))
}

/// The queue named `name`.
pub fn queue(name: &str) -> QueueName {
    QueueName::parse(name).unwrap()
}

/// `name` on `queue_name`.
pub fn on(queue_name: &str, name: &str) -> Caller {
    Caller::new(queue(queue_name), agent(name))
}

/// `content` queued on `queue_name`, for `to` alone when given.
pub fn new_on(queue_name: &str, n: u128, content: &str, to: Option<&str>) -> NewInstruction {
    NewInstruction::new(id(n), text(content))
        .on(queue(queue_name))
        .to(to.map(agent))
}

/// The texts of `items`, in order.
pub fn contents(items: &[Instruction]) -> Vec<&str> {
    items.iter().map(|i| i.content.as_str()).collect()
}

/// Every instruction of the `default` queue that `filter` lists, in its order.
pub fn all(s: &dyn Store, filter: StatusFilter) -> Vec<Instruction> {
    all_on(s, "default", filter)
}

/// Every instruction of `queue_name` that `filter` lists, in its order.
pub fn all_on(s: &dyn Store, queue_name: &str, filter: StatusFilter) -> Vec<Instruction> {
    s.list(&queue(queue_name), filter, Page::default())
        .unwrap()
        .items
}

/// Starts a call of `name` on the `default` queue and claims once.
pub fn take(s: &dyn Store, name: &str, now: Timestamp) -> Claim {
    take_as(s, &who(name), now)
}

/// Starts a call of `caller` and claims once.
pub fn take_as(s: &dyn Store, caller: &Caller, now: Timestamp) -> Claim {
    let ticket = s.begin_call(caller, now, now.plus_secs(10)).unwrap();
    s.claim(caller, ticket.generation, now).unwrap()
}

/// What a [`TwoAdds`] reports when done: its first id, whether it ran, what its
/// calls returned, and the outcome the store gave.
pub type Report = (u128, bool, Vec<String>, Result<(), StoreError>);

/// A write for [`Store::queue_write`] that adds two instructions around a refused
/// delete, reads the second back, and reports what each call returned.
pub struct TwoAdds {
    first: u128,
    seen: Vec<String>,
    ran: bool,
    report: mpsc::Sender<Report>,
}

impl TwoAdds {
    /// A write adding ids `first` and `first + 1`, reporting to `report`.
    pub fn new(first: u128, report: mpsc::Sender<Report>) -> Self {
        TwoAdds {
            first,
            seen: Vec::new(),
            ran: false,
            report,
        }
    }
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
pub fn queue_it(s: &dyn Store, write: Box<dyn Write>) {
    if let Err(mut write) = s.queue_write(write) {
        write.run(s);
        write.done(Ok(()));
    }
}
