//! The queue's operations on PostgreSQL: [`queue_sql!`](crate::queue_sql) and the
//! PostgreSQL side of its dialect. Writers run side by side in READ COMMITTED
//! transactions and take row locks, always in one order — agent, instruction,
//! the position lock, a queue's counts, the event counter — so two writers never
//! wait on each other in a circle. A claim passes over rows other writers hold
//! (`FOR UPDATE SKIP LOCKED`), so claimers do not queue behind one another.

use std::cell::RefCell;

use diesel::pg::PgConnection;

use crate::schema::event_seq;

type Conn = PgConnection;

queue_sql!();

/// How many events a transaction number passes between prunes of the log.
const PRUNE_EVERY: i64 = 256;

/// The key of the advisory lock held, until commit, by whoever picks a new
/// position: "lmcp" in ASCII.
const POSITIONS_LOCK: i64 = 0x6c6d_6370;

thread_local! {
    /// The changes of the transaction running on this thread, written to the event
    /// log just before it commits ([`flush_events`]): taking the event counter
    /// last keeps the lock order.
    static LOGGED: RefCell<Vec<(i64, &'static str, String)>> = const { RefCell::new(Vec::new()) };
}

fn lock_positions(c: &mut Conn) -> Result<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(POSITIONS_LOCK)
        .execute(c)?;
    Ok(())
}

fn find_locked(c: &mut Conn, id: InstructionId) -> Result<Option<Instruction>> {
    instructions::table
        .find(id.to_string())
        .select(InstructionRow::as_select())
        .for_update()
        .get_result(c)
        .optional()?
        .map(InstructionRow::into_domain)
        .transpose()
}

pending_locked!(for_update);

fn generation_locked(c: &mut Conn, caller: &Caller) -> Result<Option<i64>> {
    Ok(agents::table
        .find((caller.queue.as_str(), caller.agent.as_str()))
        .select(agents::generation)
        .for_update()
        .get_result(c)
        .optional()?)
}

/// The first pending instruction for the caller that no other writer holds. When
/// every one is held (another claimer's, or an edit in flight), it waits for the
/// first rather than report an empty queue that is not.
fn claim_head(c: &mut Conn, caller: &Caller) -> Result<Option<InstructionRow>> {
    let head = || {
        claimable!(caller)
            .limit(1)
            .select(InstructionRow::as_select())
            .for_update()
    };
    if let Some(row) = head().skip_locked().get_result(c).optional()? {
        return Ok(Some(row));
    }
    // Waiting claimers can deadlock among themselves: a `FOR UPDATE ... LIMIT 1`
    // that finds its row taken moves on to the next and may keep locks on rows it
    // passed over. The loser's wait runs in a savepoint, so only that wait is
    // undone (with its locks) and tried again, not the whole call.
    for _ in 1..HEAD_WAIT_TRIES {
        match c.transaction(|c| head().get_result(c).optional()) {
            Err(diesel::result::Error::DatabaseError(_, info))
                if info.message().contains("deadlock detected") => {}
            out => return Ok(out?),
        }
    }
    Ok(c.transaction(|c| head().get_result(c).optional())?)
}

/// How many times a claim waits for a held head before giving up as busy.
const HEAD_WAIT_TRIES: u32 = 50;

fn agent_for_call(c: &mut Conn, caller: &Caller, now: Timestamp) -> Result<Option<Agent>> {
    // Two first calls at once: one inserts, the other waits for it and then finds
    // the row to lock.
    diesel::insert_into(agents::table)
        .values(AgentRow::from_domain(&Agent::first_seen(caller, now)))
        .on_conflict_do_nothing()
        .execute(c)?;
    Ok(Some(agent_locked(c, caller)?.ok_or_else(|| {
        corrupt(format!("agent {caller} vanished"))
    })?))
}

fn agent_locked(c: &mut Conn, caller: &Caller) -> Result<Option<Agent>> {
    agents::table
        .find((caller.queue.as_str(), caller.agent.as_str()))
        .select(AgentRow::as_select())
        .for_update()
        .get_result(c)
        .optional()?
        .map(AgentRow::into_domain)
        .transpose()
}

fn settings_locked(c: &mut Conn) -> Result<StoredSettings> {
    // The row first, so two first saves at once lock the same row and the second
    // patches what the first saved.
    let defaults = serde_json::to_string(&StoredSettings::default()).map_err(corrupt)?;
    diesel::insert_into(settings::table)
        .values((settings::id.eq(1), settings::stored.eq(defaults)))
        .on_conflict_do_nothing()
        .execute(c)?;
    let text: Option<String> = settings::table
        .find(1)
        .select(settings::stored)
        .for_update()
        .get_result(c)
        .optional()?;
    parse_settings(text)
}

fn log_change(_: &mut Conn, now: Timestamp, change: &Change) -> Result<()> {
    let payload = serde_json::to_string(change)
        .map_err(|e| OpError::Queue(StoreError::Other(e.to_string()).into()))?;
    LOGGED.with(|l| {
        l.borrow_mut()
            .push((now.as_micros(), change.event_type(), payload))
    });
    Ok(())
}

/// Forgets changes logged by a transaction that did not commit.
pub(super) fn discard_events() {
    LOGGED.with(|l| l.borrow_mut().clear());
}

/// Writes the transaction's changes to the event log, numbered in commit order,
/// and notifies listeners (delivered when the transaction commits).
pub(super) fn flush_events(c: &mut Conn) -> Result<()> {
    let logged = LOGGED.with(|l| std::mem::take(&mut *l.borrow_mut()));
    if logged.is_empty() {
        return Ok(());
    }
    let n = i64::try_from(logged.len()).unwrap_or(i64::MAX);
    let last: i64 = diesel::update(event_seq::table.find(1))
        .set(event_seq::last.eq(event_seq::last + n))
        .returning(event_seq::last)
        .get_result(c)?;
    let first = last - n + 1;
    let rows: Vec<_> = logged
        .iter()
        .zip(first..)
        .map(|((at, kind, payload), seq)| {
            (
                events::seq.eq(seq),
                events::at.eq(*at),
                events::kind.eq(*kind),
                events::payload.eq(payload),
            )
        })
        .collect();
    diesel::insert_into(events::table)
        .values(&rows)
        .execute(c)?;
    diesel::sql_query(format!("NOTIFY {}", super::CHANNEL)).execute(c)?;
    if last / PRUNE_EVERY != (first - 1) / PRUNE_EVERY {
        prune_events(c, queue_core::EVENT_RETENTION, last)?;
    }
    Ok(())
}

/// Drops events beyond the replay window below `last`.
fn prune_events(c: &mut Conn, keep: u64, last: i64) -> Result<()> {
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    diesel::delete(events::table.filter(events::seq.le(last.saturating_sub(keep)))).execute(c)?;
    Ok(())
}

pub(crate) fn events_after(c: &mut Conn, after: u64, limit: usize) -> Result<Vec<Event>> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    events::table
        .filter(events::seq.gt(after))
        .order(events::seq)
        .limit(i64::try_from(limit).unwrap_or(i64::MAX))
        .select(EventRow::as_select())
        .load(c)?
        .into_iter()
        .map(EventRow::into_domain)
        .collect()
}

/// The event counter, which survives pruning.
pub(crate) fn last_event_seq(c: &mut Conn) -> Result<u64> {
    let seq: i64 = event_seq::table
        .find(1)
        .select(event_seq::last)
        .get_result(c)?;
    Ok(u64::try_from(seq).unwrap_or(0))
}
