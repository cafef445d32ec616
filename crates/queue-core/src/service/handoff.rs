//! An add that claims for a call already waiting in this process, in the add's
//! own commit, so that the wake-up costs one durable commit, not two in a row
//! (the slot and reservation it uses live in `waiters`).

use super::{Service, Undelivered};
use crate::error::QueueError;
use crate::store::{Claim, Counts, Store};
use crate::types::{Instruction, Timestamp};
use crate::waiters::{Handed, Reservation};

impl Service {
    /// In the write that added `item`, claims the head of its queue for the
    /// longest-waiting call of this process that may take it, so that the wake-up
    /// costs no second commit. Calls that turn out superseded or unable to take
    /// anything are passed over, a few at most; a claim that fails leaves the
    /// instruction to the calls its event wakes.
    pub(super) fn hand_off(
        &self,
        s: &dyn Store,
        item: &Instruction,
        now: Timestamp,
    ) -> Option<HandOff> {
        const TRIES: usize = 4;
        let mut passed = Vec::new();
        while passed.len() < TRIES {
            let reservation =
                self.shared
                    .waiters
                    .reserve(&item.queue, item.to.as_ref(), &passed)?;
            match s.claim_and_end(reservation.caller(), reservation.generation(), now) {
                Ok(Claim::Claimed(claimed)) => {
                    let counts = s.counts(&item.queue);
                    return Some(HandOff {
                        reservation,
                        claimed,
                        counts,
                    });
                }
                Ok(Claim::Superseded | Claim::Empty) => passed.push(reservation.key()),
                Err(_) => return None,
            }
        }
        None
    }
}

/// What an add stored: the instruction, and what it claimed for a waiting call.
pub(super) struct Added {
    pub(super) item: Instruction,
    pub(super) hand_off: Option<HandOff>,
}

/// An instruction claimed for a reserved waiting call in an add's write. Not
/// yet an [`Undelivered`]: until the write is durable the claim may be rolled
/// back with it, and then there is nothing to put back.
pub(super) struct HandOff {
    reservation: Reservation,
    claimed: Instruction,
    counts: Result<Counts, QueueError>,
}

impl Added {
    /// Once the add is durable: leaves the claimed instruction for its call, or
    /// puts it back first in line if the call has gone meanwhile. (An add that
    /// never became durable drops its reservation, and the call looks itself.)
    pub(super) fn hand_over(service: &Service, added: &mut Added) {
        let Some(HandOff {
            reservation,
            claimed,
            counts,
        }) = added.hand_off.take()
        else {
            return;
        };
        let handed = Box::new(Handed {
            claimed: Undelivered::new(service, claimed),
            counts,
        });
        if let Err(handed) = reservation.give(handed) {
            handed.claimed.put_back();
        }
    }
}
