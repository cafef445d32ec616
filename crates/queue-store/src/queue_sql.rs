//! The queue's operations as SQL, written once for both stores: [`queue_sql!`]
//! expands them in a module that says which connection they run on and how that
//! engine locks (the dialect functions it must define are listed on the macro).

/// Expands the queue's operations in the calling module, each run inside a
/// transaction it is handed. The module defines `type Conn` (its diesel
/// connection) and these dialect functions, where the two engines differ:
///
/// - `lock_positions(c)`: held until commit by whoever picks a new position;
/// - `find_locked(c, id)`: an instruction, locked against other writers;
/// - `pending_locked(c, queue)`: a queue's pending ones in order, locked;
/// - `generation_locked(c, caller)`: an agent's generation, its row locked;
/// - `claim_head(c, caller)`: the first pending row for the caller, locked;
/// - `agent_for_call(c, caller, now)`: the agent if known, locked, and kept
///   locked by a call starting for it (PostgreSQL inserts a first-seen row to
///   lock when new);
/// - `agent_locked(c, caller)`: the agent if known, locked;
/// - `settings_locked(c)`: the saved settings, locked;
/// - `log_change(c, now, change)`: records a change in the event log in the
///   transaction, in commit order;
/// - `events_after`, `last_event_seq`: read the event log.
///
/// SQLite runs every write in one `BEGIN IMMEDIATE` transaction at a time, so
/// its locking functions are plain reads; PostgreSQL runs writers side by side
/// and takes row locks.
///
/// Every decision is queue-core's ([`queue_core::rules`] and the transitions of
/// `Instruction` and `Agent`); the SQL here only finds, locks and writes rows. Where
/// a query must sort or filter, it mirrors a rule: `ORDER BY position, created_at,
/// id` is [`rules::queue_order`](queue_core::rules::queue_order), `ORDER BY
/// consumed_at, position, id` is `rules::consumed_order`, `ORDER BY last_seen_at
/// DESC, queue, id` is `rules::agent_order`, and a claim's `to_agent IS NULL OR
/// to_agent = ?` is `Instruction::is_for`, which `Instruction::consumed` checks
/// again on the row picked.
macro_rules! queue_sql {
    () => {
        use diesel::prelude::*;

        use queue_core::{
            Agent, CallTicket, Caller, Change, Claim, Content, Counts, Event, Instruction,
            InstructionId, Listing, NewInstruction, Page, QueueCounts, QueueError, QueueName,
            Reordered, ResultType, SettingsPatch, Status, StatusFilter, StoreError, StoredSettings,
            Timestamp, rules,
        };

        use crate::error::OpError;
        use crate::rows::{AgentRow, EventRow, InstructionRow, Result, conflict, corrupt};
        use crate::schema::{agents, events, instruction_counts, instructions, settings};

        fn find(c: &mut Conn, id: InstructionId) -> Result<Option<Instruction>> {
            instructions::table
                .find(id.to_string())
                .select(InstructionRow::as_select())
                .get_result(c)
                .optional()?
                .map(InstructionRow::into_domain)
                .transpose()
        }

        fn find_existing(c: &mut Conn, id: InstructionId) -> Result<Instruction> {
            find_locked(c, id)?.ok_or(OpError::Queue(QueueError::NotFound(id)))
        }

        fn save(c: &mut Conn, item: &Instruction) -> Result<()> {
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

        /// One past the highest position of any queue.
        fn next_position(c: &mut Conn) -> Result<i64> {
            lock_positions(c)?;
            let max: Option<i64> = instructions::table
                .select(diesel::dsl::max(instructions::position))
                .get_result(c)?;
            Ok(rules::next_position(max))
        }

        /// Refuses a queue that does not exist ([`rules::check_queue`]): used means
        /// it has count rows (an instruction was queued on it) or agents.
        fn ensure_queue(c: &mut Conn, queue: &QueueName) -> Result<()> {
            rules::check_queue(queue, || {
                let counted = diesel::dsl::select(diesel::dsl::exists(
                    instruction_counts::table.filter(instruction_counts::queue.eq(queue.as_str())),
                ))
                .get_result::<bool>(c)?;
                if counted {
                    return Ok(true);
                }
                Ok(diesel::dsl::select(diesel::dsl::exists(
                    agents::table.filter(agents::queue.eq(queue.as_str())),
                ))
                .get_result::<bool>(c)?)
            })
        }

        fn insert_pending(
            c: &mut Conn,
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
            c: &mut Conn,
            new: NewInstruction,
            now: Timestamp,
        ) -> Result<Instruction> {
            insert_pending(c, new, now)
        }

        pub(crate) fn get(c: &mut Conn, id: InstructionId) -> Result<Option<Instruction>> {
            find(c, id)
        }

        pub(crate) fn edit(
            c: &mut Conn,
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
            c: &mut Conn,
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
            c: &mut Conn,
            id: InstructionId,
            new_id: InstructionId,
            now: Timestamp,
        ) -> Result<Instruction> {
            let source = find(c, id)?.ok_or(OpError::Queue(QueueError::NotFound(id)))?;
            source.ensure_consumed().map_err(conflict)?;
            insert_pending(c, source.copy(new_id), now)
        }

        pub(crate) fn reorder(
            c: &mut Conn,
            queue: &QueueName,
            ids: &[InstructionId],
            now: Timestamp,
        ) -> Result<Vec<Instruction>> {
            ensure_queue(c, queue)?;
            let pending = pending_locked(c, queue)?;
            let mut out = Vec::with_capacity(ids.len());
            for (item, moved) in rules::reordered(pending, ids, now).map_err(OpError::Queue)? {
                if moved {
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

        /// Hands the window of `status` items to `each`, row by row as the database
        /// yields them; returns how many there were.
        fn page_each(
            c: &mut Conn,
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
        /// `instruction_counts`, which triggers keep in step with every change. A
        /// queue without them is checked for agents before it counts as empty.
        pub(crate) fn counts(c: &mut Conn, queue: &QueueName) -> Result<Counts> {
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
        pub(crate) fn queues(c: &mut Conn) -> Result<Vec<QueueCounts>> {
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
            c: &mut Conn,
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
            c: &mut Conn,
            queue: &QueueName,
            filter: StatusFilter,
            page: Page,
            each: &mut dyn FnMut(Instruction),
        ) -> Result<u64> {
            // No limit is the largest one: both engines take it, and neither a
            // negative LIMIT (SQLite's "none") nor a missing one is both's.
            let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            let mut window = |c: &mut Conn, status, page: Page| -> Result<()> {
                let limit = page.limit.map(clamp).unwrap_or(i64::MAX);
                if limit != 0 {
                    page_each(c, queue, status, clamp(page.offset), limit, each)?;
                }
                Ok(())
            };
            let Counts { pending, consumed } = counts(c, queue)?;
            match filter {
                StatusFilter::Pending => {
                    window(c, Status::Pending, page)?;
                    Ok(pending)
                }
                StatusFilter::Consumed => {
                    window(c, Status::Consumed, page)?;
                    Ok(consumed)
                }
                StatusFilter::All => {
                    let (consumed_page, pending_page) = rules::split_all_page(page, consumed);
                    window(c, Status::Consumed, consumed_page)?;
                    window(c, Status::Pending, pending_page)?;
                    Ok(pending + consumed)
                }
            }
        }

        fn save_agent(c: &mut Conn, agent: &Agent) -> Result<()> {
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
            c: &mut Conn,
            caller: &Caller,
            now: Timestamp,
            until: Timestamp,
        ) -> Result<CallTicket> {
            let agent_row =
                rules::call_started(agent_for_call(c, caller, now)?, caller, now, until);
            save_agent(c, &agent_row)?;
            log_change(c, now, &Change::AgentUpdated(agent_row.clone()))?;
            Ok(CallTicket {
                generation: agent_row.generation,
                agent: agent_row,
            })
        }

        pub(crate) fn claim(
            c: &mut Conn,
            caller: &Caller,
            generation: u64,
            now: Timestamp,
        ) -> Result<Claim> {
            let newest = generation_locked(c, caller)?.and_then(|g| u64::try_from(g).ok());
            if rules::is_superseded(newest, generation) {
                return Ok(Claim::Superseded);
            }
            let Some(head) = claim_head(c, caller)? else {
                return Ok(Claim::Empty);
            };
            let item = head
                .into_domain()?
                .consumed(caller, now)
                .map_err(conflict)?;
            // The status guard keeps the claim exactly-once whatever lock the
            // engine took on the row.
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
            c: &mut Conn,
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
            c: &mut Conn,
            caller: &Caller,
            generation: u64,
            result: ResultType,
            now: Timestamp,
        ) -> Result<Agent> {
            let agent_row =
                rules::call_ended(agent_locked(c, caller)?, caller, generation, result, now)
                    .map_err(OpError::Queue)?;
            save_agent(c, &agent_row)?;
            log_change(c, now, &Change::AgentUpdated(agent_row.clone()))?;
            Ok(agent_row)
        }

        pub(crate) fn unclaim(
            c: &mut Conn,
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
            let position = rules::head_position(head, || next_position(c))?;
            let item = item.returned(position, now).map_err(conflict)?;
            save(c, &item)?;
            log_change(c, now, &Change::InstructionUpdated(item.clone()))?;
            Ok(item)
        }

        pub(crate) fn agents(c: &mut Conn) -> Result<Vec<Agent>> {
            agents::table
                .order((agents::last_seen_at.desc(), agents::queue, agents::id))
                .select(AgentRow::as_select())
                .load(c)?
                .into_iter()
                .map(AgentRow::into_domain)
                .collect()
        }

        pub(crate) fn stored_settings(c: &mut Conn) -> Result<StoredSettings> {
            let text: Option<String> = settings::table
                .find(1)
                .select(settings::stored)
                .get_result(c)
                .optional()?;
            parse_settings(text)
        }

        fn parse_settings(text: Option<String>) -> Result<StoredSettings> {
            match text {
                None => Ok(StoredSettings::default()),
                Some(text) => serde_json::from_str(&text).map_err(corrupt),
            }
        }

        pub(crate) fn update_settings(
            c: &mut Conn,
            patch: &SettingsPatch,
            now: Timestamp,
        ) -> Result<StoredSettings> {
            let stored = settings_locked(c)?.patched(patch);
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
    };
}

/// The rows a claim by `caller` may take, first in line first: the queue's pending
/// instructions for everyone or addressed to the caller, in queue order. Each
/// dialect's `claim_head` adds its own locking to this one query.
macro_rules! claimable {
    ($caller:expr) => {
        instructions::table
            .filter(instructions::queue.eq($caller.queue.as_str()))
            .filter(instructions::status.eq(Status::Pending.as_str()))
            .filter(
                instructions::to_agent
                    .is_null()
                    .or(instructions::to_agent.eq($caller.agent.as_str())),
            )
            .order((
                instructions::position,
                instructions::created_at,
                instructions::id,
            ))
    };
}

/// `pending_locked` of a dialect: a queue's pending instructions in queue order,
/// as reorder and the head position need them, each row locked by the dialect's
/// `lock` (`for_update` on PostgreSQL; none on SQLite, whose one writer locks the
/// whole database).
macro_rules! pending_locked {
    ($($lock:ident)?) => {
        fn pending_locked(c: &mut Conn, queue: &QueueName) -> Result<Vec<Instruction>> {
            instructions::table
                .filter(instructions::queue.eq(queue.as_str()))
                .filter(instructions::status.eq(Status::Pending.as_str()))
                .order((
                    instructions::position,
                    instructions::created_at,
                    instructions::id,
                ))
                .select(InstructionRow::as_select())
                $(.$lock())?
                .load(c)?
                .into_iter()
                .map(InstructionRow::into_domain)
                .collect()
        }
    };
}
