//! The queue's operations as SQL, each run inside a transaction it is handed, and the
//! conversions between rows and domain types.

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use queue_core::{
    Agent, AgentId, CallTicket, Caller, Change, Claim, Conflict, Content, Counts, Event,
    Instruction, InstructionId, Listing, NewInstruction, Page, QueueCounts, QueueError, QueueName,
    Reordered, ResultType, SettingsPatch, Status, StatusFilter, StoreError, StoredSettings,
    Timestamp, check_reorder,
};

use crate::error::OpError;
use crate::schema::{agents, events, instruction_counts, instructions, settings, sqlite_sequence};

type Result<T> = std::result::Result<T, OpError>;

/// The first row of `query`, read lazily, without the `LIMIT ?` of diesel's
/// `first`. SQLite (3.47 and later) treats a bound LIMIT as a constant when planning
/// and so marks the statement to be compiled again whenever the parameter is bound,
/// which diesel does on every run: a cached statement with `LIMIT ?` is re-parsed
/// and re-planned each time. The queries here walk an index in the wanted order,
/// so stopping after one row costs no more than a LIMIT would.
fn first_row<'q, Q, U>(query: Q, c: &mut SqliteConnection) -> Result<Option<U>>
where
    Q: diesel::query_dsl::LoadQuery<'q, SqliteConnection, U> + 'q,
    U: 'static,
{
    Ok(query
        .load_iter::<U, diesel::connection::DefaultLoadingMode>(c)?
        .next()
        .transpose()?)
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = instructions)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite))]
struct InstructionRow {
    id: String,
    content: String,
    status: String,
    created_at: i64,
    updated_at: i64,
    consumed_at: Option<i64>,
    consumed_by: Option<String>,
    position: i64,
    queue: String,
    to_agent: Option<String>,
}

impl InstructionRow {
    fn from_domain(i: &Instruction) -> Self {
        InstructionRow {
            queue: i.queue.as_str().to_owned(),
            to_agent: i.to.as_ref().map(|a| a.as_str().to_owned()),
            id: i.id.to_string(),
            content: i.content.as_str().to_owned(),
            status: i.status.as_str().to_owned(),
            created_at: i.created_at.as_micros(),
            updated_at: i.updated_at.as_micros(),
            consumed_at: i.consumed_at.map(Timestamp::as_micros),
            consumed_by: i.consumed_by.as_ref().map(|a| a.as_str().to_owned()),
            position: i.position,
        }
    }

    fn into_domain(self) -> Result<Instruction> {
        Ok(Instruction {
            id: InstructionId::parse(&self.id).map_err(corrupt)?,
            queue: QueueName::parse(&self.queue).map_err(corrupt)?,
            content: Content::parse(&self.content).map_err(corrupt)?,
            to: self
                .to_agent
                .as_deref()
                .map(AgentId::parse)
                .transpose()
                .map_err(corrupt)?,
            status: Status::parse(&self.status)
                .ok_or_else(|| corrupt(format!("unknown status {:?}", self.status)))?,
            created_at: Timestamp::from_micros(self.created_at),
            updated_at: Timestamp::from_micros(self.updated_at),
            consumed_at: self.consumed_at.map(Timestamp::from_micros),
            consumed_by: self
                .consumed_by
                .as_deref()
                .map(AgentId::parse)
                .transpose()
                .map_err(corrupt)?,
            position: self.position,
        })
    }
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = agents)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite))]
#[diesel(treat_none_as_null = true)]
struct AgentRow {
    queue: String,
    id: String,
    last_seen_at: i64,
    last_fetch_at: Option<i64>,
    last_result_type: Option<String>,
    generation: i64,
    waiting_until: Option<i64>,
}

impl AgentRow {
    fn from_domain(a: &Agent) -> Self {
        AgentRow {
            queue: a.queue.as_str().to_owned(),
            id: a.id.as_str().to_owned(),
            last_seen_at: a.last_seen_at.as_micros(),
            last_fetch_at: a.last_fetch_at.map(Timestamp::as_micros),
            last_result_type: a.last_result_type.map(|r| r.as_str().to_owned()),
            generation: i64::try_from(a.generation).unwrap_or(i64::MAX),
            waiting_until: a.waiting_until.map(Timestamp::as_micros),
        }
    }

    fn into_domain(self) -> Result<Agent> {
        Ok(Agent {
            queue: QueueName::parse(&self.queue).map_err(corrupt)?,
            id: AgentId::parse(&self.id).map_err(corrupt)?,
            last_seen_at: Timestamp::from_micros(self.last_seen_at),
            last_fetch_at: self.last_fetch_at.map(Timestamp::from_micros),
            last_result_type: self
                .last_result_type
                .as_deref()
                .map(|t| {
                    ResultType::parse(t).ok_or_else(|| corrupt(format!("unknown result {t:?}")))
                })
                .transpose()?,
            generation: u64::try_from(self.generation).unwrap_or(0),
            waiting_until: self.waiting_until.map(Timestamp::from_micros),
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = events)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite))]
struct EventRow {
    seq: i64,
    at: i64,
    #[allow(dead_code)]
    kind: String,
    payload: String,
}

fn conflict(c: Conflict) -> OpError {
    OpError::Queue(QueueError::Conflict(c))
}

fn corrupt(e: impl std::fmt::Display) -> OpError {
    OpError::Queue(StoreError::Corrupt(e.to_string()).into())
}

fn log_change(c: &mut SqliteConnection, now: Timestamp, change: &Change) -> Result<()> {
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

fn find(c: &mut SqliteConnection, id: InstructionId) -> Result<Option<Instruction>> {
    instructions::table
        .find(id.to_string())
        .select(InstructionRow::as_select())
        .get_result(c)
        .optional()?
        .map(InstructionRow::into_domain)
        .transpose()
}

fn find_existing(c: &mut SqliteConnection, id: InstructionId) -> Result<Instruction> {
    find(c, id)?.ok_or(OpError::Queue(QueueError::NotFound(id)))
}

fn save(c: &mut SqliteConnection, item: &Instruction) -> Result<()> {
    let row = InstructionRow::from_domain(item);
    diesel::update(instructions::table.find(&row.id))
        .set((
            instructions::content.eq(&row.content),
            instructions::status.eq(&row.status),
            instructions::updated_at.eq(row.updated_at),
            instructions::consumed_at.eq(row.consumed_at),
            instructions::consumed_by.eq(&row.consumed_by),
            instructions::position.eq(row.position),
        ))
        .execute(c)?;
    Ok(())
}

fn next_position(c: &mut SqliteConnection) -> Result<i64> {
    let max: Option<i64> = instructions::table
        .select(diesel::dsl::max(instructions::position))
        .get_result(c)?;
    Ok(max.unwrap_or(0) + 1)
}

fn pending_ordered(c: &mut SqliteConnection, queue: &QueueName) -> Result<Vec<Instruction>> {
    instructions::table
        .filter(instructions::queue.eq(queue.as_str()))
        .filter(instructions::status.eq(Status::Pending.as_str()))
        .order((
            instructions::position,
            instructions::created_at,
            instructions::id,
        ))
        .select(InstructionRow::as_select())
        .load(c)?
        .into_iter()
        .map(InstructionRow::into_domain)
        .collect()
}

/// Refuses a queue that does not exist: `default` always does, another once an
/// instruction was queued on it (its count rows) or an agent called on it.
fn ensure_queue(c: &mut SqliteConnection, queue: &QueueName) -> Result<()> {
    let counted = diesel::dsl::select(diesel::dsl::exists(
        instruction_counts::table.filter(instruction_counts::queue.eq(queue.as_str())),
    ))
    .get_result::<bool>(c)?;
    if counted || queue.is_default() {
        return Ok(());
    }
    let has_agents = diesel::dsl::select(diesel::dsl::exists(
        agents::table.filter(agents::queue.eq(queue.as_str())),
    ))
    .get_result::<bool>(c)?;
    if has_agents {
        Ok(())
    } else {
        Err(OpError::Queue(QueueError::UnknownQueue(queue.clone())))
    }
}

fn insert_pending(
    c: &mut SqliteConnection,
    new: NewInstruction,
    now: Timestamp,
) -> Result<Instruction> {
    let item = Instruction::pending(new, now, next_position(c)?);
    diesel::insert_into(instructions::table)
        .values(InstructionRow::from_domain(&item))
        .execute(c)?;
    log_change(c, now, &Change::InstructionCreated(item.clone()))?;
    Ok(item)
}

pub(crate) fn add(
    c: &mut SqliteConnection,
    new: NewInstruction,
    now: Timestamp,
) -> Result<Instruction> {
    insert_pending(c, new, now)
}

pub(crate) fn get(c: &mut SqliteConnection, id: InstructionId) -> Result<Option<Instruction>> {
    find(c, id)
}

pub(crate) fn edit(
    c: &mut SqliteConnection,
    id: InstructionId,
    content: Content,
    now: Timestamp,
) -> Result<Instruction> {
    let item = find_existing(c, id)?
        .edited(content, now)
        .map_err(conflict)?;
    save(c, &item)?;
    log_change(c, now, &Change::InstructionUpdated(item.clone()))?;
    Ok(item)
}

pub(crate) fn delete(
    c: &mut SqliteConnection,
    id: InstructionId,
    now: Timestamp,
) -> Result<Instruction> {
    let item = find_existing(c, id)?;
    item.ensure_pending().map_err(conflict)?;
    diesel::delete(instructions::table.find(id.to_string())).execute(c)?;
    log_change(c, now, &Change::InstructionDeleted(item.clone()))?;
    Ok(item)
}

pub(crate) fn requeue(
    c: &mut SqliteConnection,
    id: InstructionId,
    new_id: InstructionId,
    now: Timestamp,
) -> Result<Instruction> {
    let source = find_existing(c, id)?;
    source.ensure_consumed().map_err(conflict)?;
    insert_pending(c, source.copy(new_id), now)
}

pub(crate) fn reorder(
    c: &mut SqliteConnection,
    queue: &QueueName,
    ids: &[InstructionId],
    now: Timestamp,
) -> Result<Vec<Instruction>> {
    ensure_queue(c, queue)?;
    let pending = pending_ordered(c, queue)?;
    let current: Vec<_> = pending.iter().map(|i| i.id).collect();
    check_reorder(&current, ids).map_err(OpError::Queue)?;
    // Same rule as the in-memory store: the existing positions, reassigned in the new
    // order, so positions stay unique and later adds still go to the end.
    let mut by_id: std::collections::HashMap<_, _> =
        pending.iter().map(|i| (i.id, i.clone())).collect();
    let mut out = Vec::with_capacity(ids.len());
    for (id, position) in ids.iter().zip(pending.iter().map(|i| i.position)) {
        let Some(mut item) = by_id.remove(id) else {
            return Err(conflict(Conflict::PendingSetChanged));
        };
        if item.position != position {
            item.position = position;
            item.updated_at = now;
            save(c, &item)?;
        }
        out.push(item);
    }
    let reordered = Reordered {
        queue: queue.clone(),
        ids: ids.to_vec(),
    };
    log_change(c, now, &Change::InstructionReordered(reordered))?;
    Ok(out)
}

/// Hands the window of `status` items to `each`, row by row as SQLite yields
/// them; returns how many there were.
fn page_each(
    c: &mut SqliteConnection,
    queue: &QueueName,
    status: Status,
    offset: i64,
    limit: i64,
    each: &mut dyn FnMut(Instruction),
) -> Result<i64> {
    let query = instructions::table
        .filter(instructions::queue.eq(queue.as_str()))
        .filter(instructions::status.eq(status.as_str()))
        .select(InstructionRow::as_select())
        .offset(offset)
        .limit(limit);
    let mut n = 0;
    let mut visit = |row: QueryResult<InstructionRow>| -> Result<()> {
        each(row?.into_domain()?);
        n += 1;
        Ok(())
    };
    match status {
        Status::Pending => query
            .order((
                instructions::position,
                instructions::created_at,
                instructions::id,
            ))
            .load_iter::<InstructionRow, diesel::connection::DefaultLoadingMode>(c)?
            .try_for_each(&mut visit)?,
        Status::Consumed => query
            .order((
                instructions::consumed_at,
                instructions::position,
                instructions::id,
            ))
            .load_iter::<InstructionRow, diesel::connection::DefaultLoadingMode>(c)?
            .try_for_each(&mut visit)?,
    }
    Ok(n)
}

/// How many instructions of `queue` each status holds: its two rows of
/// `instruction_counts`, which triggers keep in step with every change
/// (migrations `000002_counts`, `000003_queues`). A queue without them is
/// checked for agents before it counts as empty.
pub(crate) fn counts(c: &mut SqliteConnection, queue: &QueueName) -> Result<Counts> {
    let rows = instruction_counts::table
        .filter(instruction_counts::queue.eq(queue.as_str()))
        .select((instruction_counts::status, instruction_counts::n))
        .load::<(String, i64)>(c)?;
    if rows.is_empty() {
        ensure_queue(c, queue)?;
    }
    let mut counts = Counts::default();
    for (status, n) in rows {
        add_count(&mut counts, &status, n)?;
    }
    Ok(counts)
}

fn add_count(counts: &mut Counts, status: &str, n: i64) -> Result<()> {
    let n = u64::try_from(n).unwrap_or(0);
    match status {
        "pending" => counts.pending = n,
        "consumed" => counts.consumed = n,
        other => {
            return Err(corrupt(format!(
                "unknown status {other:?} in instruction_counts"
            )));
        }
    }
    Ok(())
}

/// Every queue: those with count rows and those with agents, by name.
pub(crate) fn queues(c: &mut SqliteConnection) -> Result<Vec<QueueCounts>> {
    let mut by_name: std::collections::BTreeMap<String, Counts> = Default::default();
    for (queue, status, n) in instruction_counts::table
        .select((
            instruction_counts::queue,
            instruction_counts::status,
            instruction_counts::n,
        ))
        .load::<(String, String, i64)>(c)?
    {
        add_count(by_name.entry(queue).or_default(), &status, n)?;
    }
    for queue in agents::table
        .select(agents::queue)
        .distinct()
        .load::<String>(c)?
    {
        by_name.entry(queue).or_default();
    }
    by_name.entry(QueueName::DEFAULT.to_owned()).or_default();
    by_name
        .into_iter()
        .map(|(name, counts)| {
            Ok(QueueCounts {
                name: QueueName::parse(&name).map_err(corrupt)?,
                counts,
            })
        })
        .collect()
}

pub(crate) fn list(
    c: &mut SqliteConnection,
    queue: &QueueName,
    filter: StatusFilter,
    page: Page,
) -> Result<Listing> {
    let mut items = Vec::new();
    let total = list_each(c, queue, filter, page, &mut |item| items.push(item))?;
    Ok(Listing { items, total })
}

/// The listing of `filter` on `queue` in `page`, item by item; returns the total.
pub(crate) fn list_each(
    c: &mut SqliteConnection,
    queue: &QueueName,
    filter: StatusFilter,
    page: Page,
    each: &mut dyn FnMut(Instruction),
) -> Result<u64> {
    // SQLite reads LIMIT -1 as "no limit".
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let offset = clamp(page.offset);
    let limit = page.limit.map(clamp).unwrap_or(-1);
    let Counts { pending, consumed } = counts(c, queue)?;
    match filter {
        StatusFilter::Pending | StatusFilter::Consumed => {
            let status = if filter == StatusFilter::Pending {
                Status::Pending
            } else {
                Status::Consumed
            };
            page_each(c, queue, status, offset, limit, each)?;
            Ok(if status == Status::Pending {
                pending
            } else {
                consumed
            })
        }
        StatusFilter::All => {
            let n_consumed = clamp(consumed);
            let mut taken = 0;
            if offset < n_consumed {
                taken = page_each(c, queue, Status::Consumed, offset, limit, each)?;
            }
            let rest = if limit < 0 { -1 } else { limit - taken };
            if rest != 0 {
                let pending_offset = (offset - n_consumed).max(0);
                page_each(c, queue, Status::Pending, pending_offset, rest, each)?;
            }
            Ok(pending + consumed)
        }
    }
}

fn find_agent(c: &mut SqliteConnection, caller: &Caller) -> Result<Option<Agent>> {
    agents::table
        .find((caller.queue.as_str(), caller.agent.as_str()))
        .select(AgentRow::as_select())
        .get_result(c)
        .optional()?
        .map(AgentRow::into_domain)
        .transpose()
}

fn save_agent(c: &mut SqliteConnection, agent: &Agent) -> Result<()> {
    let row = AgentRow::from_domain(agent);
    diesel::insert_into(agents::table)
        .values(&row)
        .on_conflict((agents::queue, agents::id))
        .do_update()
        .set(&row)
        .execute(c)?;
    Ok(())
}

pub(crate) fn begin_call(
    c: &mut SqliteConnection,
    caller: &Caller,
    now: Timestamp,
    until: Timestamp,
) -> Result<CallTicket> {
    let agent_row = find_agent(c, caller)?
        .unwrap_or_else(|| Agent::first_seen(caller, now))
        .call_started(now, until);
    save_agent(c, &agent_row)?;
    log_change(c, now, &Change::AgentUpdated(agent_row.clone()))?;
    Ok(CallTicket {
        generation: agent_row.generation,
        agent: agent_row,
    })
}

pub(crate) fn claim(
    c: &mut SqliteConnection,
    caller: &Caller,
    generation: u64,
    now: Timestamp,
) -> Result<Claim> {
    let current: Option<i64> = agents::table
        .find((caller.queue.as_str(), caller.agent.as_str()))
        .select(agents::generation)
        .get_result(c)
        .optional()?;
    if current.and_then(|g| u64::try_from(g).ok()) != Some(generation) {
        return Ok(Claim::Superseded);
    }
    // The queue's index gives its pending ones in order; those addressed to
    // another agent are passed over.
    let head = instructions::table
        .filter(instructions::queue.eq(caller.queue.as_str()))
        .filter(instructions::status.eq(Status::Pending.as_str()))
        .filter(
            instructions::to_agent
                .is_null()
                .or(instructions::to_agent.eq(caller.agent.as_str())),
        )
        .order((
            instructions::position,
            instructions::created_at,
            instructions::id,
        ));
    let head = first_row(head.select(InstructionRow::as_select()), c)?;
    let Some(head) = head else {
        return Ok(Claim::Empty);
    };
    let item = head
        .into_domain()?
        .consumed(caller, now)
        .map_err(conflict)?;
    // The status guard makes the claim safe even if this ever ran outside the
    // writer's exclusive transaction.
    let n = diesel::update(
        instructions::table
            .find(item.id.to_string())
            .filter(instructions::status.eq(Status::Pending.as_str())),
    )
    .set((
        instructions::status.eq(Status::Consumed.as_str()),
        instructions::consumed_at.eq(now.as_micros()),
        instructions::consumed_by.eq(caller.agent.as_str()),
        instructions::updated_at.eq(now.as_micros()),
    ))
    .execute(c)?;
    if n != 1 {
        return Ok(Claim::Empty);
    }
    log_change(c, now, &Change::InstructionConsumed(item.clone()))?;
    Ok(Claim::Claimed(item))
}

/// [`claim`], and when it delivers, [`end_call`] of the same call, in the same
/// transaction.
pub(crate) fn claim_and_end(
    c: &mut SqliteConnection,
    caller: &Caller,
    generation: u64,
    now: Timestamp,
) -> Result<Claim> {
    let claim = claim(c, caller, generation, now)?;
    if matches!(claim, Claim::Claimed(_)) {
        end_call(c, caller, generation, ResultType::Instruction, now)?;
    }
    Ok(claim)
}

pub(crate) fn end_call(
    c: &mut SqliteConnection,
    caller: &Caller,
    generation: u64,
    result: ResultType,
    now: Timestamp,
) -> Result<Agent> {
    let agent_row = find_agent(c, caller)?
        .ok_or_else(|| {
            OpError::Queue(
                StoreError::Other(format!("end of a call of unknown agent {caller}")).into(),
            )
        })?
        .call_ended(generation, result, now);
    save_agent(c, &agent_row)?;
    log_change(c, now, &Change::AgentUpdated(agent_row.clone()))?;
    Ok(agent_row)
}

pub(crate) fn unclaim(
    c: &mut SqliteConnection,
    id: InstructionId,
    now: Timestamp,
) -> Result<Instruction> {
    let item = find_existing(c, id)?;
    item.ensure_consumed().map_err(conflict)?;
    let head: Option<i64> = instructions::table
        .filter(instructions::queue.eq(item.queue.as_str()))
        .filter(instructions::status.eq(Status::Pending.as_str()))
        .select(diesel::dsl::min(instructions::position))
        .get_result(c)?;
    let position = match head {
        Some(first) => first - 1,
        None => next_position(c)?,
    };
    let item = item.returned(position, now).map_err(conflict)?;
    save(c, &item)?;
    log_change(c, now, &Change::InstructionUpdated(item.clone()))?;
    Ok(item)
}

pub(crate) fn agents(c: &mut SqliteConnection) -> Result<Vec<Agent>> {
    agents::table
        .order((agents::last_seen_at.desc(), agents::queue, agents::id))
        .select(AgentRow::as_select())
        .load(c)?
        .into_iter()
        .map(AgentRow::into_domain)
        .collect()
}

pub(crate) fn stored_settings(c: &mut SqliteConnection) -> Result<StoredSettings> {
    let text: Option<String> = settings::table
        .find(1)
        .select(settings::stored)
        .get_result(c)
        .optional()?;
    match text {
        None => Ok(StoredSettings::default()),
        Some(text) => serde_json::from_str(&text).map_err(corrupt),
    }
}

pub(crate) fn update_settings(
    c: &mut SqliteConnection,
    patch: &SettingsPatch,
    now: Timestamp,
) -> Result<StoredSettings> {
    let stored = stored_settings(c)?.patched(patch);
    let text = serde_json::to_string(&stored).map_err(corrupt)?;
    diesel::insert_into(settings::table)
        .values((settings::id.eq(1), settings::stored.eq(&text)))
        .on_conflict(settings::id)
        .do_update()
        .set(settings::stored.eq(&text))
        .execute(c)?;
    log_change(c, now, &Change::ConfigUpdated(stored.clone()))?;
    Ok(stored)
}

pub(crate) fn events_after(
    c: &mut SqliteConnection,
    after: u64,
    limit: usize,
) -> Result<Vec<Event>> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    // Read lazily and stopped after `limit` rows instead of `LIMIT ?`: see
    // [`first_row`]. The rows come in `seq` order straight off the table.
    events::table
        .filter(events::seq.gt(after))
        .order(events::seq)
        .select(EventRow::as_select())
        .load_iter::<EventRow, diesel::connection::DefaultLoadingMode>(c)?
        .take(limit)
        .map(|row| {
            let row = row?;
            Ok(Event {
                seq: u64::try_from(row.seq).unwrap_or(0),
                at: Timestamp::from_micros(row.at),
                change: serde_json::from_str(&row.payload).map_err(corrupt)?,
            })
        })
        .collect()
}

pub(crate) fn last_event_seq(c: &mut SqliteConnection) -> Result<u64> {
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
pub(crate) fn prune_events(c: &mut SqliteConnection, keep: u64) -> Result<()> {
    let last = i64::try_from(last_event_seq(c)?).unwrap_or(0);
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    diesel::delete(events::table.filter(events::seq.le(last.saturating_sub(keep)))).execute(c)?;
    Ok(())
}
