//! One `get_user_request` call: its start, the wait with a deadline and wake-up,
//! the claim (its own, or what an add handed it), superseding by a newer call of
//! the agent, and the clean-up when its caller goes away ([`CallGuard`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Service, Undelivered};
use crate::audit::AuditEntry;
use crate::error::QueueError;
use crate::settings::Settings;
use crate::store::{CallTicket, Claim, Counts, Store};
use crate::types::{Agent, AgentId, Caller, Instruction, QueueName, ResultType};
use crate::waiters::{Handed, Slot, Turn};

/// A claim's outcome, with the count of what is left when it delivered.
type Look = (Claim, Option<Result<Counts, QueueError>>);

/// What the first store trip of a call found: the settings in force, the started
/// call, and the first look at the queue (`None` when it did not look).
type Started = (Settings, CallTicket, Option<Result<Look, QueueError>>);

/// How long a call waits on an empty queue under `settings`.
fn call_wait(settings: &Settings) -> Duration {
    Duration::from_secs(u64::from(settings.default_wait_seconds))
}

/// `claim`, with the count of what is left on the queue when it delivered.
fn counted(s: &dyn Store, queue: &QueueName, claim: Claim) -> Look {
    let counts = matches!(claim, Claim::Claimed(_)).then(|| s.counts(queue));
    (claim, counts)
}

/// What a call that found nothing returns under `settings`.
fn empty_outcome(settings: &Settings) -> FetchOutcome {
    if settings.default_empty_response.is_empty() {
        FetchOutcome::Empty
    } else {
        FetchOutcome::DefaultResponse(settings.default_empty_response.clone())
    }
}

/// What one `get_user_request` call produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchOutcome {
    /// The oldest pending instruction, now consumed.
    Instruction(Instruction),
    /// Nothing came; the default response is the empty string.
    Empty,
    /// Nothing came; here is the default response.
    DefaultResponse(String),
}

impl FetchOutcome {
    /// The result type the tool reports.
    pub fn result_type(&self) -> ResultType {
        match self {
            FetchOutcome::Instruction(_) => ResultType::Instruction,
            FetchOutcome::Empty => ResultType::Empty,
            FetchOutcome::DefaultResponse(_) => ResultType::DefaultResponse,
        }
    }
}

/// Why a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// It delivered an instruction.
    Delivered,
    /// The wait ran out.
    TimedOut,
    /// A newer call of the same agent started.
    Superseded,
    /// The server is shutting down.
    ShuttingDown,
}

impl EndReason {
    /// `delivered`, `timed_out`, `superseded` or `shutting_down`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EndReason::Delivered => "delivered",
            EndReason::TimedOut => "timed_out",
            EndReason::Superseded => "superseded",
            EndReason::ShuttingDown => "shutting_down",
        }
    }
}

/// The result of [`Service::next_instruction`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetch {
    /// The agent the call was made for.
    pub agent: AgentId,
    /// The queue it took from.
    pub queue: QueueName,
    /// What it produced.
    pub outcome: FetchOutcome,
    /// Why it ended.
    pub reason: EndReason,
    /// Pending instructions left on the queue after this call (for any of its
    /// agents); 0 when they could not be counted (see `count_error`).
    pub remaining_pending: u64,
    /// Why the pending instructions could not be counted after a delivery. The
    /// delivery stands: the caller should log this and go on.
    pub count_error: Option<QueueError>,
    /// How long the call waited.
    pub waited: Duration,
}

impl Service {
    /// The `get_user_request` call of `caller` (an agent on a queue; an
    /// [`AgentId`] alone means the `default` queue): delivers the oldest pending
    /// instruction of the queue that is for the caller, waiting up to the
    /// `default_wait_seconds` setting for one to arrive. Only changes to its own
    /// queue wake it.
    ///
    /// Cancel-safe: dropping the returned future at any point consumes nothing; a
    /// claim that completes after the drop is returned to the head of the queue.
    /// A newer call for the same agent on the same queue makes this one return at
    /// once, empty.
    pub async fn next_instruction(&self, caller: impl Into<Caller>) -> Result<Fetch, QueueError> {
        let caller: Caller = caller.into();
        // Declared first so it drops last, after `CallGuard` has queued its clean-up.
        let _busy = self.busy();
        let started = Instant::now();
        let now = self.now();
        let (c, undo_caller, service) = (caller.clone(), caller.clone(), self.clone());
        // Registered before the first look, which the start below makes, so a change
        // between that look and the wait is not missed: its wake-up is kept.
        let waiting = self.shared.waiters.register(&caller);
        // A call that starts during shutdown takes nothing.
        let look_now = !self.is_shutting_down();
        // One store trip reads the settings, records the start and takes the head of
        // the queue if there is one, with the count of what is left: a call that finds
        // an instruction waiting needs no other trip before its audit line.
        // A call dropped while its start is being recorded must still record its end,
        // or the agent would look like it is waiting until the deadline passes; an
        // instruction it took goes back first in line.
        let (settings, ticket, mut first_look) = self
            .write(
                move |s| {
                    let settings = service.effective_settings(&s.settings()?);
                    let wait = call_wait(&settings).as_micros();
                    let until = now.plus_micros(i64::try_from(wait).unwrap_or(i64::MAX));
                    if !look_now {
                        return Ok((settings, s.begin_call(&c, now, until)?, None));
                    }
                    let (ticket, claim) = s.begin_and_claim(&c, now, until)?;
                    Ok((
                        settings,
                        ticket,
                        Some(claim.map(|claim| counted(s, &c.queue, claim))),
                    ))
                },
                move |service: &Service, (settings, ticket, look): Started| {
                    if let Some(Ok((Claim::Claimed(item), _))) = look {
                        Undelivered::new(service, item).put_back();
                    }
                    let empty_type = empty_outcome(&settings).result_type();
                    service.end_call_in_background(&undo_caller, ticket.generation, empty_type);
                },
            )
            .await?;
        // The start's write woke any older call of this agent, which it superseded,
        // and published its events; a newer call's start seen in the meantime wakes
        // this one now. The kick switches `watch` to its short interval while this
        // call waits.
        let slot = waiting.slot();
        let deadline = started + call_wait(&settings);
        let empty = empty_outcome(&settings);
        let mut guard = CallGuard {
            service: self.clone(),
            caller: caller.clone(),
            generation: ticket.generation,
            result: empty.result_type(),
            claimed: None,
            slot: Arc::clone(&slot),
            armed: true,
        };
        waiting.started(ticket.generation);
        self.shared.kick.notify_one();

        let mut shutdown = self.shared.shutdown.subscribe();
        // What is left after a delivery, counted in the claim's own store trip.
        let mut remaining = None;
        // What the call delivers, if anything, is held in `guard.claimed` from the
        // moment it is claimed until the caller has it: dropping this future in
        // between puts it back (see `CallGuard`).
        let mut reason = loop {
            let look = match first_look.take() {
                Some(look) => Some(look?),
                None => {
                    if *shutdown.borrow_and_update() {
                        break EndReason::ShuttingDown;
                    }
                    match slot.take_turn() {
                        Turn::Free => Some(self.claim(&caller, ticket.generation).await?),
                        // An add is claiming for this call: its answer wakes the call.
                        Turn::Reserved => None,
                        Turn::Handed(handed) => {
                            let Handed { claimed, counts } = *handed;
                            remaining = Some(counts);
                            guard.claimed = Some(claimed);
                            break EndReason::Delivered;
                        }
                    }
                }
            };
            match look {
                Some((Claim::Claimed(item), counts)) => {
                    remaining = counts;
                    guard.claimed = Some(Undelivered::new(self, item));
                    break EndReason::Delivered;
                }
                Some((Claim::Superseded, _)) => break EndReason::Superseded,
                Some((Claim::Empty, _)) => slot.open(),
                None => {}
            }
            tokio::select! {
                _ = slot.notify().notified() => {}
                _ = tokio::time::sleep_until(deadline) => break EndReason::TimedOut,
                _ = shutdown.changed() => {}
            }
        };
        // Nothing more can be claimed for this call. An add that claimed for it
        // while it was giving up is delivered all the same: the claim was made
        // while the call was the agent's newest and waiting, and its end is
        // recorded with it.
        loop {
            match slot.close() {
                Turn::Free => break,
                Turn::Reserved => slot.notify().notified().await,
                Turn::Handed(handed) => {
                    let Handed { claimed, counts } = *handed;
                    if guard.claimed.is_some() {
                        // One instruction per call: the second goes back first in line.
                        claimed.put_back();
                    } else {
                        remaining = Some(counts);
                        guard.claimed = Some(claimed);
                        reason = EndReason::Delivered;
                    }
                    break;
                }
            }
        }
        drop(waiting);

        // Once an instruction is claimed it is the caller's: failing the call over
        // the count would leave it consumed and undelivered if putting it back
        // failed too. The count is only informative, so it gives way instead.
        let delivering = guard.claimed.is_some();
        let counted = match remaining {
            Some(counted) => counted,
            None => self.counts(&caller.queue).await,
        };
        let (remaining_pending, count_error) = match counted {
            Ok(counts) => (counts.pending, None),
            Err(e) if delivering => (0, Some(e)),
            Err(e) => return Err(e),
        };
        let waited = started.elapsed();
        let (c, generation, result, now) = (
            caller.clone(),
            ticket.generation,
            if delivering {
                ResultType::Instruction
            } else {
                empty.result_type()
            },
            self.now(),
        );
        let audit = move |service: &Service, delivered: Option<&Instruction>| {
            service.audit(&AuditEntry::ToolCall {
                caller: &c,
                result,
                end: reason.as_str(),
                instruction: delivered,
                waited: Some(waited),
            })
        };
        let outcome = match guard.claimed.take() {
            Some(claimed) => {
                // The claim recorded the call's end in its own commit; only the audit
                // line is left. It is written before the answer goes out, so the log
                // never lags behind what the agent was told, and with no await before
                // it, so a dropped call cannot skip it. Nothing between here and the
                // return can stop the delivery.
                audit(self, Some(claimed.item()));
                FetchOutcome::Instruction(claimed.delivered())
            }
            None => {
                // The end is recorded after the answer, which waits for no commit of
                // its own: the write is queued here and its audit line follows once it
                // is durable, whoever learns that. The store runs writes in the order
                // they come, so the agent's next call starts after this one ended.
                let c = caller.clone();
                drop(self.start_write(
                    move |s| s.end_call(&c, generation, result, now),
                    |_, _| {},
                    move |service: &Service, _| audit(service, None),
                ));
                empty
            }
        };
        guard.armed = false;
        let Caller { queue, agent } = caller;
        Ok(Fetch {
            agent,
            queue,
            outcome,
            reason,
            remaining_pending,
            count_error,
            waited,
        })
    }

    /// Claims through the offload such that a claim finishing after the caller gave
    /// up is undone instead of lost.
    ///
    /// A delivering claim also counts what is left, in the same store trip; the
    /// count is `None` otherwise.
    async fn claim(&self, caller: &Caller, generation: u64) -> Result<Look, QueueError> {
        let caller = caller.clone();
        let now = self.now();
        let out = self
            .write(
                move |s| {
                    let claim = s.claim_and_end(&caller, generation, now)?;
                    Ok(counted(s, &caller.queue, claim))
                },
                |service: &Service, (claim, _): Look| {
                    if let Claim::Claimed(item) = claim {
                        // Nobody is waiting for this instruction any more: put it back
                        // first in line.
                        Undelivered::new(service, item).put_back();
                    }
                },
            )
            .await?;
        Ok(out)
    }

    /// Records the end of a call that went away, as a queued write: like putting
    /// an instruction back ([`Undelivered`]), this often starts on the store's
    /// writer thread, where waiting for a store call would wait for the thread
    /// itself.
    fn end_call_in_background(&self, caller: &Caller, generation: u64, result: ResultType) {
        let c = caller.clone();
        let now = self.now();
        drop(self.start_write(
            move |s| s.end_call(&c, generation, result, now),
            |_, _| {},
            move |service: &Service, agent: Agent| {
                service.audit(&AuditEntry::ToolCall {
                    caller: &agent.caller(),
                    result,
                    end: "abandoned",
                    instruction: None,
                    waited: None,
                });
            },
        ));
    }
}

/// Cleans up after a call whose future was dropped: puts back the instruction it
/// had claimed but not handed over (what it holds, and what an add left in its
/// slot, each an [`Undelivered`]), and records the end of the call so the agent
/// does not look like it is waiting until the deadline passes.
struct CallGuard {
    service: Service,
    caller: Caller,
    generation: u64,
    /// What the call returns when it delivers nothing: `DefaultResponse` unless the
    /// default response is the empty string. A dropped call delivered nothing.
    result: ResultType,
    /// What the call claimed and will deliver unless it is dropped first.
    claimed: Option<Undelivered>,
    /// Where an add leaves what it claimed for the call.
    slot: Arc<Slot>,
    armed: bool,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Explicitly, and in this order: the instruction is back in line before
        // the call's end is recorded, as it was claimed before.
        if let Some(claimed) = self.claimed.take() {
            claimed.put_back();
        }
        if let Some(handed) = self.slot.abandon() {
            handed.claimed.put_back();
        }
        self.service
            .end_call_in_background(&self.caller, self.generation, self.result);
    }
}
