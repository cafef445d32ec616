//! The queue's operations on SQLite: [`queue_sql!`](crate::queue_sql) and the
//! SQLite side of its dialect. Every write runs in the one writer's `BEGIN
//! IMMEDIATE` transaction, which no other connection of any process can enter, so
//! the "locked" reads are plain reads.

use diesel::sqlite::SqliteConnection;

use crate::schema::sqlite_sequence;

type Conn = SqliteConnection;

queue_sql!();

/// The first row of `query`, read lazily, without the `LIMIT ?` of diesel's
/// `first`. SQLite (3.47 and later) treats a bound LIMIT as a constant when planning
/// and so marks the statement to be compiled again whenever the parameter is bound,
/// which diesel does on every run: a cached statement with `LIMIT ?` is re-parsed
/// and re-planned each time. The queries here walk an index in the wanted order,
/// so stopping after one row costs no more than a LIMIT would.
fn first_row<'q, Q, U>(query: Q, c: &mut Conn) -> Result<Option<U>>
where
    Q: diesel::query_dsl::LoadQuery<'q, Conn, U> + 'q,
    U: 'static,
{
    Ok(query
        .load_iter::<U, diesel::connection::DefaultLoadingMode>(c)?
        .next()
        .transpose()?)
}

fn lock_positions(_: &mut Conn) -> Result<()> {
    Ok(())
}

fn find_locked(c: &mut Conn, id: InstructionId) -> Result<Option<Instruction>> {
    find(c, id)
}

pending_locked!();

fn generation_locked(c: &mut Conn, caller: &Caller) -> Result<Option<i64>> {
    Ok(agents::table
        .find((caller.queue.as_str(), caller.agent.as_str()))
        .select(agents::generation)
        .get_result(c)
        .optional()?)
}

/// The queue's index gives its pending ones in order; those addressed to another
/// agent are passed over.
fn claim_head(c: &mut Conn, caller: &Caller) -> Result<Option<InstructionRow>> {
    first_row(claimable!(caller).select(InstructionRow::as_select()), c)
}

fn find_agent(c: &mut Conn, caller: &Caller) -> Result<Option<Agent>> {
    agents::table
        .find((caller.queue.as_str(), caller.agent.as_str()))
        .select(AgentRow::as_select())
        .get_result(c)
        .optional()?
        .map(AgentRow::into_domain)
        .transpose()
}

fn agent_for_call(c: &mut Conn, caller: &Caller, _: Timestamp) -> Result<Option<Agent>> {
    find_agent(c, caller)
}

fn agent_locked(c: &mut Conn, caller: &Caller) -> Result<Option<Agent>> {
    find_agent(c, caller)
}

fn settings_locked(c: &mut Conn) -> Result<StoredSettings> {
    stored_settings(c)
}

fn log_change(c: &mut Conn, now: Timestamp, change: &Change) -> Result<()> {
    let payload = serde_json::to_string(change)
        .map_err(|e| OpError::Queue(StoreError::Other(e.to_string()).into()))?;
    diesel::insert_into(events::table)
        .values((
            events::at.eq(now.as_micros()),
            events::kind.eq(change.event_type()),
            events::payload.eq(payload),
        ))
        .execute(c)?;
    Ok(())
}

pub(crate) fn events_after(c: &mut Conn, after: u64, limit: usize) -> Result<Vec<Event>> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    // Read lazily and stopped after `limit` rows instead of `LIMIT ?`: see
    // [`first_row`]. The rows come in `seq` order straight off the table.
    events::table
        .filter(events::seq.gt(after))
        .order(events::seq)
        .select(EventRow::as_select())
        .load_iter::<EventRow, diesel::connection::DefaultLoadingMode>(c)?
        .take(limit)
        .map(|row| row?.into_domain())
        .collect()
}

pub(crate) fn last_event_seq(c: &mut Conn) -> Result<u64> {
    // The AUTOINCREMENT counter survives pruning, unlike max(seq) of an empty table.
    // Through the query builder, so the statement stays prepared: every write of
    // the service reads it to find its own events.
    let seq: Option<i64> = sqlite_sequence::table
        .find("events")
        .select(sqlite_sequence::seq)
        .get_result(c)
        .optional()?;
    Ok(seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
}

/// Drops events beyond the replay window.
pub(crate) fn prune_events(c: &mut Conn, keep: u64) -> Result<()> {
    let last = i64::try_from(last_event_seq(c)?).unwrap_or(0);
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    diesel::delete(events::table.filter(events::seq.le(last.saturating_sub(keep)))).execute(c)?;
    Ok(())
}
