//! The queue's rules as pure functions over what a store has read: which call may
//! claim, where positions go, how a reorder reassigns them, in which order things
//! are listed. Every [`Store`](crate::Store) decides through these (and through the
//! transitions on [`Instruction`] and [`Agent`]), so no store writes a rule again;
//! a store's own code only finds, locks and writes rows.
//!
//! A SQL store cannot sort or filter through a Rust function, so its queries
//! mirror the orders given here in `ORDER BY` and the claim's pick in `WHERE`; the
//! functions name the clauses they stand for, and the contract suite
//! (`store-contract`) holds every store to them.

use std::cmp::Ordering;

use crate::error::{Conflict, QueueError, StoreError};
use crate::store::Page;
use crate::types::{Agent, Caller, Instruction, InstructionId, QueueName, ResultType, Timestamp};

/// Queue order, the order pending instructions are delivered and listed in:
/// ascending position, then creation time, then id. SQL: `ORDER BY position,
/// created_at, id`.
pub fn queue_order(a: &Instruction, b: &Instruction) -> Ordering {
    (a.position, a.created_at, a.id).cmp(&(b.position, b.created_at, b.id))
}

/// The order consumed instructions are listed in: by consumption time, then
/// position, then id. SQL: `ORDER BY consumed_at, position, id`.
pub fn consumed_order(a: &Instruction, b: &Instruction) -> Ordering {
    (a.consumed_at, a.position, a.id).cmp(&(b.consumed_at, b.position, b.id))
}

/// The order agents are listed in: most recently seen first, then by queue and
/// name. SQL: `ORDER BY last_seen_at DESC, queue, id`.
pub fn agent_order(a: &Agent, b: &Agent) -> Ordering {
    (b.last_seen_at, &a.queue, &a.id).cmp(&(a.last_seen_at, &b.queue, &b.id))
}

/// Refuses a queue that does not exist. `default` always does; another once it
/// was used: an instruction was queued on it (even if none is left) or an agent
/// called on it, which `used` tells (asked only for a queue other than `default`).
pub fn check_queue<E: From<QueueError>>(
    queue: &QueueName,
    used: impl FnOnce() -> Result<bool, E>,
) -> Result<(), E> {
    if queue.is_default() || used()? {
        Ok(())
    } else {
        Err(QueueError::UnknownQueue(queue.clone()).into())
    }
}

/// The two windows of a page of [`StatusFilter::All`](crate::StatusFilter::All),
/// which lists a queue's `n_consumed` consumed instructions first (by
/// [`consumed_order`]) and then its pending ones (by [`queue_order`]): the window
/// of the consumed listing and the window of the pending listing that together
/// make `page`.
pub fn split_all_page(page: Page, n_consumed: u64) -> (Page, Page) {
    let consumed_offset = page.offset.min(n_consumed);
    let n_from_consumed = n_consumed - consumed_offset;
    let consumed_limit = page
        .limit
        .map_or(n_from_consumed, |l| l.min(n_from_consumed));
    let consumed = Page {
        offset: consumed_offset,
        limit: Some(consumed_limit),
    };
    let pending = Page {
        offset: page.offset.saturating_sub(n_consumed),
        limit: page.limit.map(|l| l - consumed_limit),
    };
    (consumed, pending)
}

/// Whether a claim carrying `generation` comes from a call that is no longer the
/// newest of its agent, given the agent's stored generation (`None`: the agent is
/// unknown, so no call of it was started here). Only the newest call may claim.
pub fn is_superseded(newest: Option<u64>, generation: u64) -> bool {
    newest != Some(generation)
}

/// The position of a new instruction, given the highest position of any queue
/// (`None` when there is no instruction at all): one past it. Positions are unique
/// across queues, so a later add always goes to the end of its queue.
pub fn next_position(highest: Option<i64>) -> i64 {
    highest.unwrap_or(0) + 1
}

/// The position an unclaimed instruction returns to, the head of its queue: just
/// before the queue's first pending one, or, when none is pending, the next free
/// position (asked of `next_position` only then, since a store may lock to find it).
pub fn head_position<E>(
    first_pending: Option<i64>,
    next_position: impl FnOnce() -> Result<i64, E>,
) -> Result<i64, E> {
    match first_pending {
        Some(first) => Ok(first - 1),
        None => next_position(),
    }
}

/// Checks a reorder request against the current pending ids (in queue order): it
/// must name each of them exactly once.
pub fn check_reorder(
    pending: &[InstructionId],
    requested: &[InstructionId],
) -> Result<(), QueueError> {
    let mut want: Vec<_> = requested.to_vec();
    want.sort_unstable();
    let before = want.len();
    want.dedup();
    let mut have: Vec<_> = pending.to_vec();
    have.sort_unstable();
    if want.len() != before || want != have {
        return Err(QueueError::Conflict(Conflict::PendingSetChanged));
    }
    Ok(())
}

/// A queue's pending instructions (`pending`, in queue order) put in the order of
/// `ids` at `now`: checked with [`check_reorder`], then the existing positions are
/// handed out again in the new order, so positions stay unique and instructions
/// added later still go to the end. Returns each instruction in its new order with
/// whether it moved (only those need writing; their `updated_at` is `now`).
pub fn reordered(
    pending: Vec<Instruction>,
    ids: &[InstructionId],
    now: Timestamp,
) -> Result<Vec<(Instruction, bool)>, QueueError> {
    let current: Vec<_> = pending.iter().map(|i| i.id).collect();
    check_reorder(&current, ids)?;
    let positions: Vec<_> = pending.iter().map(|i| i.position).collect();
    let mut by_id: std::collections::HashMap<_, _> =
        pending.into_iter().map(|i| (i.id, i)).collect();
    ids.iter()
        .zip(positions)
        .map(|(id, position)| {
            let mut item = by_id
                .remove(id)
                .ok_or(QueueError::Conflict(Conflict::PendingSetChanged))?;
            let moved = item.position != position;
            if moved {
                item.position = position;
                item.updated_at = now;
            }
            Ok((item, moved))
        })
        .collect()
}

/// The record of `caller` once a call started at `now`, waiting until `until`,
/// given its stored record (`None` for an agent seen for the first time, which is
/// created with the call).
pub fn call_started(
    known: Option<Agent>,
    caller: &Caller,
    now: Timestamp,
    until: Timestamp,
) -> Agent {
    known
        .unwrap_or_else(|| Agent::first_seen(caller, now))
        .call_started(now, until)
}

/// The record of `caller` once its call of `generation` returned `result` at
/// `now`, given its stored record. Ending a call of an agent that never started
/// one is a store error: the caller lost track of its calls.
pub fn call_ended(
    known: Option<Agent>,
    caller: &Caller,
    generation: u64,
    result: ResultType,
    now: Timestamp,
) -> Result<Agent, QueueError> {
    let known = known
        .ok_or_else(|| StoreError::Other(format!("end of a call of unknown agent {caller}")))?;
    Ok(known.call_ended(generation, result, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Content, NewInstruction};

    fn item(n: u128, position: i64) -> Instruction {
        let new = NewInstruction::new(InstructionId::from_u128(n), Content::parse("x").unwrap());
        Instruction::pending(new, Timestamp::from_micros(0), position)
    }

    #[test]
    fn a_reorder_hands_the_old_positions_out_in_the_new_order() {
        let now = Timestamp::from_micros(9);
        let out = reordered(
            vec![item(1, 10), item(2, 20), item(3, 30)],
            &[3, 1, 2].map(InstructionId::from_u128),
            now,
        )
        .unwrap();
        let got: Vec<_> = out
            .iter()
            .map(|(i, moved)| (i.id.as_uuid().as_u128(), i.position, *moved, i.updated_at))
            .collect();
        let zero = Timestamp::from_micros(0);
        assert_eq!(
            got,
            [(3, 10, true, now), (1, 20, true, now), (2, 30, true, now)]
        );
        let same = reordered(vec![item(1, 10)], &[InstructionId::from_u128(1)], now).unwrap();
        assert_eq!((same[0].1, same[0].0.updated_at), (false, zero));
        assert_eq!(
            reordered(vec![item(1, 10)], &[], now),
            Err(QueueError::Conflict(Conflict::PendingSetChanged))
        );
    }

    #[test]
    fn a_page_of_everything_is_consumed_then_pending() {
        let page = |offset, limit| Page { offset, limit };
        // 2 consumed, then pending.
        assert_eq!(
            split_all_page(page(0, None), 2),
            (page(0, Some(2)), page(0, None))
        );
        assert_eq!(
            split_all_page(page(1, Some(2)), 2),
            (page(1, Some(1)), page(0, Some(1)))
        );
        assert_eq!(
            split_all_page(page(3, Some(10)), 2),
            (page(2, Some(0)), page(1, Some(10)))
        );
        assert_eq!(
            split_all_page(page(0, Some(0)), 2),
            (page(0, Some(0)), page(0, Some(0)))
        );
        assert_eq!(
            split_all_page(page(u64::MAX, Some(u64::MAX)), 2),
            (page(2, Some(0)), page(u64::MAX - 2, Some(u64::MAX)))
        );
    }

    #[test]
    fn positions_and_generations() {
        assert_eq!(next_position(None), 1);
        assert_eq!(next_position(Some(7)), 8);
        assert_eq!(head_position::<()>(Some(5), || Ok(99)), Ok(4));
        assert_eq!(head_position::<()>(None, || Ok(99)), Ok(99));
        assert!(is_superseded(None, 1));
        assert!(is_superseded(Some(2), 1));
        assert!(!is_superseded(Some(2), 2));
    }
}
