//! Deterministic tests of the async `Service` over a `MemoryStore`: delivery order,
//! waiting and waking, superseding, cancellation safety, shutdown, events, agent
//! records and settings — all on tokio's paused clock except one real-runtime check.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use queue_core::{
    Agent, AgentId, AgentState, Caller, Change, Claim, Clock, Content, Counts,
    DEFAULT_EMPTY_RESPONSE, EndReason, Event, Fetch, FetchOutcome, IdSource, Inline, Instruction,
    InstructionId, MemoryStore, NewInstruction, Offload, Page, QueueError, QueueName, ResultType,
    Service, ServiceOptions, Settings, SettingsPatch, Status, StatusFilter, Store, StoreError,
    StoredSettings, Timestamp,
};
use store_contract::{FaultyStore, Method};
use tokio::task::JoinHandle;
use tokio::time::{self, Instant};

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// The service time at the moment a test builds its service.
const T0: Timestamp = Timestamp::from_micros(1_800_000_000_000_000);

/// The wait of the built-in default settings.
const WAIT: Duration = Duration::from_secs(10);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn t0_plus(seconds: i64) -> Timestamp {
    T0.plus_secs(seconds)
}

/// Service time that follows tokio's paused clock from a fixed start, so every
/// timestamp is exact: `T0` plus the paused time since the service was built.
struct PausedClock {
    start: Instant,
}

impl Clock for PausedClock {
    fn now(&self) -> Timestamp {
        T0.plus_micros(i64::try_from(self.start.elapsed().as_micros()).unwrap())
    }
}

/// Instruction ids 1, 2, 3, ... in order of creation.
#[derive(Default)]
struct SeqIds(AtomicU64);

impl IdSource for SeqIds {
    fn next_id(&self) -> InstructionId {
        id(self.0.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

fn id(n: u64) -> InstructionId {
    InstructionId::from_u128(u128::from(n))
}

type Job = Box<dyn FnOnce() + Send>;

/// An offload that holds store jobs until the test runs them, so a call can be
/// stopped between any two of its store steps.
#[derive(Default)]
struct ManualOffload {
    jobs: Mutex<VecDeque<Job>>,
}

impl ManualOffload {
    fn queued(&self) -> usize {
        self.jobs.lock().unwrap().len()
    }

    /// Runs the oldest queued job; whether there was one.
    fn run_next(&self) -> bool {
        // Take the job out first: it must not run under our lock.
        let job = self.jobs.lock().unwrap().pop_front();
        job.map(|job| job()).is_some()
    }

    /// Runs queued jobs until none is left; how many ran.
    fn run_all(&self) -> usize {
        let mut n = 0;
        while self.run_next() {
            n += 1;
        }
        n
    }
}

impl Offload for ManualOffload {
    fn run(&self, job: Job) {
        self.jobs.lock().unwrap().push_back(job);
    }
}

/// A `MemoryStore` shared with "another process", which commits one instruction
/// right after the first claim that finds the queue empty: the moment a waiting
/// call has looked and not yet gone to sleep. Nothing in this process is told.
fn racing_store(text: &str) -> FaultyStore {
    let store = FaultyStore::new(Arc::new(MemoryStore::new()));
    let foreign = Mutex::new(Some(Content::parse(text).unwrap()));
    store.after(Method::Claim, move |store, out| {
        let empty = out.downcast_ref::<Result<Claim, QueueError>>() == Some(&Ok(Claim::Empty));
        if empty && let Some(content) = foreign.lock().unwrap().take() {
            // The claim's own time: the call looks before any paused time passes.
            store
                .inner()
                .add(NewInstruction::new(id(1_000), content), T0)
                .unwrap();
        }
    });
    store
}

fn agent(name: &str) -> AgentId {
    AgentId::parse(name).unwrap()
}

fn options(wait_seconds: u32, empty_response: &str) -> ServiceOptions {
    ServiceOptions {
        defaults: Settings {
            default_wait_seconds: wait_seconds,
            default_empty_response: empty_response.to_owned(),
            agent_stale_after_seconds: 30,
        },
        ..ServiceOptions::default()
    }
}

/// A service over a fresh `MemoryStore` with the paused clock and sequential ids.
fn build(options: ServiceOptions, offload: Arc<dyn Offload>) -> Service {
    build_on(Arc::new(MemoryStore::new()), options, offload)
}

fn build_on(store: Arc<dyn Store>, options: ServiceOptions, offload: Arc<dyn Offload>) -> Service {
    Service::builder(store)
        .clock(Arc::new(PausedClock {
            start: Instant::now(),
        }))
        .ids(Arc::new(SeqIds::default()))
        .offload(offload)
        .options(options)
        .build()
        .unwrap()
}

/// The built-in defaults: a 10 s wait and the built-in default response.
fn service() -> Service {
    build(ServiceOptions::default(), Arc::new(Inline))
}

fn service_with(wait_seconds: u32, empty_response: &str) -> Service {
    build(options(wait_seconds, empty_response), Arc::new(Inline))
}

// ---------------------------------------------------------------------------
// Driving calls
// ---------------------------------------------------------------------------

async fn next(service: &Service, name: &str) -> Fetch {
    service.next_instruction(agent(name)).await.unwrap()
}

fn spawn_next(service: &Service, name: &str) -> JoinHandle<Fetch> {
    let (service, agent) = (service.clone(), agent(name));
    tokio::spawn(async move { service.next_instruction(agent).await.unwrap() })
}

fn spawn_watch(service: &Service) -> JoinHandle<()> {
    let service = service.clone();
    tokio::spawn(async move { service.watch().await })
}

/// Lets the other tasks run until `cond` holds. On the current-thread runtime with
/// the inline offload a few turns suffice, and no paused time passes.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..100 {
        if cond() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("never happened: {what}");
}

/// Lets every other task run until it blocks.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// Waits until call number `generation` of `name` is in flight.
async fn until_waiting(service: &Service, name: &str, generation: u64) {
    until(&format!("call {generation} of {name} in flight"), || {
        service.store().agents().unwrap().iter().any(|a| {
            a.id.as_str() == name && a.generation == generation && a.waiting_until.is_some()
        })
    })
    .await;
}

/// Polls `fut` once, as its own step.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    // A fresh scheduler turn for every step, so tokio's cooperative budget never
    // makes a ready store answer look pending.
    tokio::task::yield_now().await;
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *fut).poll(cx))).await
}

/// Drives `fut` to the end, running held store jobs whenever it waits for one.
async fn drive<F: Future + Unpin>(offload: &ManualOffload, mut fut: F) -> F::Output {
    loop {
        if let Poll::Ready(out) = poll_once(&mut fut).await {
            return out;
        }
        assert!(
            offload.run_all() > 0,
            "the future waits for something other than the store"
        );
    }
}

// ---------------------------------------------------------------------------
// Reading state (synchronously, straight from the store)
// ---------------------------------------------------------------------------

fn record(service: &Service, name: &str) -> Agent {
    service
        .store()
        .agents()
        .unwrap()
        .into_iter()
        .find(|a| a.id.as_str() == name)
        .unwrap_or_else(|| panic!("no record of agent {name}"))
}

fn counts(service: &Service) -> Counts {
    service.store().counts(&QueueName::default()).unwrap()
}

fn counts_of(pending: u64, consumed: u64) -> Counts {
    Counts { pending, consumed }
}

/// The pending instructions in queue order.
fn pending(service: &Service) -> Vec<Instruction> {
    service
        .store()
        .list(
            &QueueName::default(),
            StatusFilter::Pending,
            Page::default(),
        )
        .unwrap()
        .items
}

fn delivered(fetch: &Fetch) -> &Instruction {
    match &fetch.outcome {
        FetchOutcome::Instruction(item) => item,
        other => panic!("expected an instruction, got {other:?}"),
    }
}

/// `added` as it looks once `name` took it at `at`.
fn consumed(added: &Instruction, name: &str, at: Timestamp) -> Instruction {
    Instruction {
        status: Status::Consumed,
        consumed_at: Some(at),
        consumed_by: Some(agent(name)),
        updated_at: at,
        ..added.clone()
    }
}

fn default_response() -> FetchOutcome {
    FetchOutcome::DefaultResponse(DEFAULT_EMPTY_RESPONSE.to_owned())
}

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.change.event_type()).collect()
}

// ---------------------------------------------------------------------------
// Delivery order
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn delivers_oldest_first_one_per_call() {
    let service = service_with(0, "none left");
    for text in ["one", "two", "three"] {
        service.add(text).await.unwrap();
    }

    for (n, text, remaining) in [(1, "one", 2), (2, "two", 1), (3, "three", 0)] {
        let fetch = next(&service, "x").await;
        let item = delivered(&fetch);
        assert_eq!((item.id, item.content.as_str()), (id(n), text));
        assert_eq!(item.status, Status::Consumed);
        assert_eq!(item.consumed_by, Some(agent("x")));
        assert_eq!(item.consumed_at, Some(T0));
        assert_eq!(fetch.reason, EndReason::Delivered);
        assert_eq!(fetch.remaining_pending, remaining);
        assert_eq!(fetch.agent, agent("x"));
        assert_eq!(fetch.waited, Duration::ZERO);
    }

    let fetch = next(&service, "x").await;
    assert_eq!(
        fetch.outcome,
        FetchOutcome::DefaultResponse("none left".into())
    );
    assert_eq!(fetch.remaining_pending, 0);
    assert_eq!(counts(&service), counts_of(0, 3));
}

#[tokio::test(start_paused = true)]
async fn delivers_in_queue_order_after_a_reorder() {
    let service = service_with(0, "none left");
    for text in ["a", "b", "c"] {
        service.add(text).await.unwrap();
    }
    service
        .reorder(&QueueName::default(), vec![id(3), id(1), id(2)])
        .await
        .unwrap();

    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(
            delivered(&next(&service, "x").await)
                .content
                .as_str()
                .to_owned(),
        );
    }
    assert_eq!(got, ["c", "a", "b"]);
}

// ---------------------------------------------------------------------------
// Empty queue
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn empty_queue_without_wait_returns_the_default_response_at_once() {
    let service = service_with(0, "come back later");
    let fetch = next(&service, "x").await;
    assert_eq!(
        fetch.outcome,
        FetchOutcome::DefaultResponse("come back later".into())
    );
    assert_eq!(fetch.outcome.result_type(), ResultType::DefaultResponse);
    assert_eq!(fetch.reason, EndReason::TimedOut);
    assert_eq!(fetch.remaining_pending, 0);
    assert_eq!(fetch.waited, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn empty_default_response_gives_empty() {
    let service = service_with(0, "");
    let fetch = next(&service, "x").await;
    assert_eq!(fetch.outcome, FetchOutcome::Empty);
    assert_eq!(fetch.outcome.result_type(), ResultType::Empty);
    assert_eq!(fetch.reason, EndReason::TimedOut);
    assert_eq!(fetch.waited, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn empty_queue_times_out_after_the_wait() {
    let service = service();
    let started = Instant::now();
    let fetch = next(&service, "x").await;
    assert_eq!(fetch.outcome, default_response());
    assert_eq!(fetch.reason, EndReason::TimedOut);
    assert_eq!(fetch.remaining_pending, 0);
    assert_eq!(fetch.waited, WAIT);
    assert_eq!(started.elapsed(), WAIT);
    assert_eq!(counts(&service), counts_of(0, 0));
}

// ---------------------------------------------------------------------------
// Waking
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn add_wakes_a_waiting_call_at_once() {
    for after in [0, 3] {
        let service = service();
        let call = spawn_next(&service, "x");
        until_waiting(&service, "x", 1).await;
        time::advance(secs(after)).await;
        assert!(!call.is_finished(), "still waiting after {after} s");

        let added = service.add("wake up").await.unwrap();
        let fetch = call.await.unwrap();
        let at = t0_plus(after as i64);
        assert_eq!(
            fetch.outcome,
            FetchOutcome::Instruction(consumed(&added, "x", at))
        );
        assert_eq!(fetch.reason, EndReason::Delivered);
        assert_eq!(fetch.remaining_pending, 0);
        assert_eq!(fetch.waited, secs(after));
    }
}

/// SPEC §3 rule 3: an add by another process wakes the call within 100 ms, even
/// when it lands just after the call looked, while a local change of this process
/// has the watcher publishing already.
#[tokio::test(start_paused = true)]
async fn add_by_another_process_wakes_a_call_that_just_looked() {
    let service = build_on(
        Arc::new(racing_store("from another process")),
        ServiceOptions::default(),
        Arc::new(Inline),
    );
    let watcher = spawn_watch(&service);
    settle().await;

    // The call's own start is a local change; the other process adds right after
    // the call found the queue empty.
    let fetch = next(&service, "x").await;
    assert_eq!(fetch.reason, EndReason::Delivered);
    assert_eq!(delivered(&fetch).id, id(1_000));
    assert!(
        fetch.waited <= ServiceOptions::default().poll_interval,
        "woken by the watcher's next poll, not the deadline: waited {:?}",
        fetch.waited
    );

    service.shutdown();
    watcher.await.unwrap();
}

// ---------------------------------------------------------------------------
// Superseding (SPEC §3 rule 4)
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn newer_call_of_the_same_agent_supersedes_the_waiting_one() {
    let service = service();
    let older = spawn_next(&service, "x");
    until_waiting(&service, "x", 1).await;
    time::advance(secs(2)).await;

    let newer = spawn_next(&service, "x");
    until("the older call returned", || older.is_finished()).await;
    let older = older.await.unwrap();
    assert_eq!(older.outcome, default_response());
    assert_eq!(older.reason, EndReason::Superseded);
    assert_eq!(older.waited, secs(2));
    assert_eq!(older.remaining_pending, 0);

    // The newer call is the one in flight.
    let x = record(&service, "x");
    assert_eq!(x.generation, 2);
    assert_eq!(x.waiting_until, Some(t0_plus(2 + 10)));
    assert!(!newer.is_finished());

    time::advance(secs(1)).await;
    let added = service.add("for the newer call").await.unwrap();
    let newer = newer.await.unwrap();
    assert_eq!(
        newer.outcome,
        FetchOutcome::Instruction(consumed(&added, "x", t0_plus(3)))
    );
    assert_eq!(newer.reason, EndReason::Delivered);
    assert_eq!(newer.waited, secs(1));
    assert_eq!(counts(&service), counts_of(0, 1));
}

#[tokio::test(start_paused = true)]
async fn different_agents_do_not_supersede_each_other() {
    let service = service();
    let x = spawn_next(&service, "x");
    until_waiting(&service, "x", 1).await;
    let y = spawn_next(&service, "y");
    until_waiting(&service, "y", 1).await;
    settle().await;
    assert!(!x.is_finished() && !y.is_finished(), "y's call ended x's");

    service.add("only one").await.unwrap();
    until("one call took it", || x.is_finished() || y.is_finished()).await;
    let ((winner, winner_call), (loser, loser_call)) = if x.is_finished() {
        (("x", x), ("y", y))
    } else {
        (("y", y), ("x", x))
    };
    settle().await;
    assert!(!loser_call.is_finished(), "{loser} kept waiting");

    let won = winner_call.await.unwrap();
    assert_eq!(delivered(&won).id, id(1));
    assert_eq!(delivered(&won).consumed_by, Some(agent(winner)));
    assert_eq!(won.reason, EndReason::Delivered);
    assert!(record(&service, loser).waiting_until.is_some());

    time::advance(secs(4)).await;
    service.add("the second").await.unwrap();
    let lost = loser_call.await.unwrap();
    assert_eq!(delivered(&lost).id, id(2));
    assert_eq!(delivered(&lost).consumed_by, Some(agent(loser)));
    assert_eq!(lost.waited, secs(4));
    assert_eq!(counts(&service), counts_of(0, 2));
}

// ---------------------------------------------------------------------------
// Queues and addressing
// ---------------------------------------------------------------------------

fn queue(name: &str) -> QueueName {
    QueueName::parse(name).unwrap()
}

fn on(queue_name: &str, name: &str) -> Caller {
    Caller::new(queue(queue_name), agent(name))
}

fn spawn_on(service: &Service, caller: Caller) -> JoinHandle<Fetch> {
    let service = service.clone();
    tokio::spawn(async move { service.next_instruction(caller).await.unwrap() })
}

/// Waits until call number `generation` of `caller` is in flight.
async fn until_waiting_on(service: &Service, caller: &Caller, generation: u64) {
    until(&format!("call {generation} of {caller} in flight"), || {
        service.store().agents().unwrap().iter().any(|a| {
            a.caller() == *caller && a.generation == generation && a.waiting_until.is_some()
        })
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn each_queue_delivers_its_own_instructions_in_its_own_order() {
    let service = service_with(0, "");
    service.add_to(&queue("web"), None, "web 1").await.unwrap();
    service.add_to(&queue("api"), None, "api 1").await.unwrap();
    service.add_to(&queue("web"), None, "web 2").await.unwrap();
    service.add("default 1").await.unwrap();

    let web = service.next_instruction(on("web", "x")).await.unwrap();
    assert_eq!(delivered(&web).content.as_str(), "web 1");
    assert_eq!(delivered(&web).queue, queue("web"));
    assert_eq!(
        (web.queue.clone(), web.remaining_pending),
        (queue("web"), 1)
    );
    let api = service.next_instruction(on("api", "x")).await.unwrap();
    assert_eq!(delivered(&api).content.as_str(), "api 1");
    assert_eq!(api.remaining_pending, 0);
    let empty = service.next_instruction(on("api", "x")).await.unwrap();
    assert_eq!(empty.outcome, FetchOutcome::Empty);
    assert_eq!(empty.queue, queue("api"));
    // An agent id alone is the default queue.
    let default = next(&service, "x").await;
    assert_eq!(delivered(&default).content.as_str(), "default 1");

    let names: Vec<_> = service
        .queues()
        .await
        .unwrap()
        .into_iter()
        .map(|q| {
            (
                q.name.as_str().to_owned(),
                q.counts.pending,
                q.counts.consumed,
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("api".to_owned(), 0, 1),
            ("default".to_owned(), 0, 1),
            ("web".to_owned(), 1, 1)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiting_call_is_woken_only_by_adds_it_may_take() {
    let offload = Arc::new(ManualOffload::default());
    let service = build(ServiceOptions::default(), offload.clone());
    let mut call = Box::pin(service.next_instruction(on("web", "anna")));
    // The call starts, looks, finds nothing and waits.
    while poll_once(&mut call).await.is_pending() {
        if offload.run_all() == 0 {
            break;
        }
    }
    assert!(poll_once(&mut call).await.is_pending());
    assert_eq!(offload.queued(), 0, "waiting, not looking");

    // Adds to another queue, or for another agent of the same queue, do not make
    // the call look again.
    for (q, to) in [("api", None), ("default", None), ("web", Some("bob"))] {
        let q = queue(q);
        drive(
            &offload,
            Box::pin(service.add_to(&q, to.map(agent), "not for anna")),
        )
        .await
        .unwrap();
        assert!(poll_once(&mut call).await.is_pending());
        assert_eq!(
            offload.queued(),
            0,
            "an add to {q} for {to:?} woke the call"
        );
    }
    // Nor does a call of anna on another queue: it is another agent.
    let mut elsewhere = Box::pin(service.next_instruction(on("api", "anna")));
    let other = drive(&offload, &mut elsewhere).await.unwrap();
    assert_eq!(delivered(&other).content.as_str(), "not for anna");
    assert!(poll_once(&mut call).await.is_pending());
    assert_eq!(offload.queued(), 0, "anna on api superseded anna on web");

    // An add for anna on web, addressed or not, is claimed for her waiting call
    // in the add's own write: the call returns with no store trip of its own.
    let web = queue("web");
    let add = service.add_to(&web, Some(agent("anna")), "for anna");
    let added = drive(&offload, Box::pin(add)).await.unwrap();
    let Poll::Ready(fetch) = poll_once(&mut call).await else {
        panic!("the call still waits after the add claimed for it")
    };
    assert_eq!(offload.queued(), 0, "the call made no claim of its own");
    let fetch = fetch.unwrap();
    assert_eq!(delivered(&fetch).id, added.id);
    assert_eq!(fetch.reason, EndReason::Delivered);
    // bob's instruction is still there, for bob only.
    assert_eq!(fetch.remaining_pending, 1);
}

/// An add claims the instruction for a call waiting in this process in the add's
/// own write (one commit for the whole wake-up): the store shows it taken before
/// the call has run again. The longest-waiting call that may take it gets it.
#[tokio::test(start_paused = true)]
async fn an_add_is_claimed_for_the_longest_waiting_call_in_its_own_write() {
    let service = service();
    let anna = spawn_on(&service, on("web", "anna"));
    until_waiting_on(&service, &on("web", "anna"), 1).await;
    let bob = spawn_on(&service, on("web", "bob"));
    until_waiting_on(&service, &on("web", "bob"), 1).await;

    let first = service.add_to(&queue("web"), None, "first").await.unwrap();
    let taken = |id| {
        let item = service.store().get(id).unwrap().unwrap();
        (item.status, item.consumed_by)
    };
    assert_eq!(taken(first.id), (Status::Consumed, Some(agent("anna"))));
    // An addressed add goes to its addressee, however long others waited.
    let carol = spawn_on(&service, on("web", "carol"));
    until_waiting_on(&service, &on("web", "carol"), 1).await;
    let for_bob = service
        .add_to(&queue("web"), Some(agent("bob")), "for bob")
        .await
        .unwrap();
    assert_eq!(taken(for_bob.id), (Status::Consumed, Some(agent("bob"))));

    let (anna, bob) = (anna.await.unwrap(), bob.await.unwrap());
    assert_eq!(delivered(&anna).id, first.id);
    assert_eq!(delivered(&bob).id, for_bob.id);
    assert_eq!(
        (anna.reason, bob.reason),
        (EndReason::Delivered, EndReason::Delivered)
    );
    assert_eq!((anna.remaining_pending, bob.remaining_pending), (0, 0));
    // Each call's end went into its add's commit.
    for name in ["anna", "bob"] {
        let record = service
            .store()
            .agents()
            .unwrap()
            .into_iter()
            .find(|a| a.caller() == on("web", name))
            .unwrap();
        assert_eq!(
            (record.waiting_until, record.last_result_type),
            (None, Some(ResultType::Instruction)),
            "{name}"
        );
    }
    assert!(!carol.is_finished(), "carol was given bob's instruction");
    carol.abort();
}

#[tokio::test(start_paused = true)]
async fn an_addressed_instruction_waits_for_its_agent() {
    let service = service();
    let anna = spawn_on(&service, on("web", "anna"));
    until_waiting_on(&service, &on("web", "anna"), 1).await;
    let for_bob = service
        .add_to(&queue("web"), Some(agent("bob")), "for bob")
        .await
        .unwrap();
    assert_eq!(for_bob.to, Some(agent("bob")));
    settle().await;
    assert!(!anna.is_finished(), "anna took bob's instruction");

    // bob comes and takes it at once, past anna's call.
    let bob = service.next_instruction(on("web", "bob")).await.unwrap();
    assert_eq!(delivered(&bob).id, for_bob.id);
    assert_eq!(delivered(&bob).consumed_by, Some(agent("bob")));
    assert_eq!(bob.waited, Duration::ZERO);

    // Anything for anyone of the queue still reaches anna.
    let open = service.add_to(&queue("web"), None, "anyone").await.unwrap();
    let anna = anna.await.unwrap();
    assert_eq!(delivered(&anna).id, open.id);
}

#[tokio::test(start_paused = true)]
async fn an_agent_on_two_queues_is_two_agents() {
    let service = service();
    let web = spawn_on(&service, on("web", "claude-code"));
    until_waiting_on(&service, &on("web", "claude-code"), 1).await;
    let api = spawn_on(&service, on("api", "claude-code"));
    until_waiting_on(&service, &on("api", "claude-code"), 1).await;
    settle().await;
    assert!(
        !web.is_finished() && !api.is_finished(),
        "one superseded the other"
    );

    let agents = service.agents().await.unwrap();
    let callers: Vec<_> = agents.iter().map(Agent::caller).collect();
    assert_eq!(callers.len(), 2);
    assert!(callers.contains(&on("web", "claude-code")));
    assert!(callers.contains(&on("api", "claude-code")));

    // A newer call on web supersedes web's only.
    let newer = spawn_on(&service, on("web", "claude-code"));
    let web = web.await.unwrap();
    assert_eq!(web.reason, EndReason::Superseded);
    settle().await;
    assert!(!api.is_finished());
    service
        .add_to(&queue("api"), None, "api work")
        .await
        .unwrap();
    assert_eq!(delivered(&api.await.unwrap()).content.as_str(), "api work");
    service
        .add_to(&queue("web"), None, "web work")
        .await
        .unwrap();
    assert_eq!(
        delivered(&newer.await.unwrap()).content.as_str(),
        "web work"
    );
}

#[tokio::test(start_paused = true)]
async fn a_requeued_copy_stays_on_its_queue_and_with_its_agent() {
    let service = service_with(0, "");
    let first = service
        .add_to(&queue("web"), Some(agent("bob")), "again")
        .await
        .unwrap();
    service.next_instruction(on("web", "bob")).await.unwrap();
    let copy = service.requeue(first.id).await.unwrap();
    assert_eq!(
        (copy.queue.clone(), copy.to.clone()),
        (queue("web"), Some(agent("bob")))
    );
    let anna = service.next_instruction(on("web", "anna")).await.unwrap();
    assert_eq!(anna.outcome, FetchOutcome::Empty);
    let bob = service.next_instruction(on("web", "bob")).await.unwrap();
    assert_eq!(delivered(&bob).id, copy.id);
}

#[tokio::test(start_paused = true)]
async fn a_queue_nobody_used_is_unknown() {
    let service = service();
    let nowhere = queue("nowhere");
    let unknown = Err(QueueError::UnknownQueue(nowhere.clone()));
    assert_eq!(service.counts(&nowhere).await, unknown);
    assert_eq!(
        service
            .list(&nowhere, StatusFilter::All, Page::default())
            .await
            .map(|l| l.total),
        unknown.clone().map(|_: Counts| 0)
    );
    assert_eq!(
        service.reorder(&nowhere, vec![]).await.map(|v| v.len()),
        unknown.clone().map(|_: Counts| 0)
    );
    // `default` always exists, even empty.
    assert_eq!(
        service.counts(&QueueName::default()).await,
        Ok(counts_of(0, 0))
    );
    // An agent's call brings its queue into being.
    let call = spawn_on(&service, on("nowhere", "x"));
    until_waiting_on(&service, &on("nowhere", "x"), 1).await;
    assert_eq!(service.counts(&nowhere).await, Ok(counts_of(0, 0)));
    service.shutdown();
    assert_eq!(call.await.unwrap().reason, EndReason::ShuttingDown);
}

// ---------------------------------------------------------------------------
// Cancellation (SPEC §3 rule 5)
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn dropped_waiting_call_consumes_nothing() {
    let service = service_with(5, "nothing yet");
    let gave_up = time::timeout(secs(1), service.next_instruction(agent("x"))).await;
    assert!(gave_up.is_err(), "the client's time limit ended the call");

    // The call's guard recorded its end: no longer waiting.
    let x = record(&service, "x");
    assert_eq!(x.waiting_until, None);
    assert_eq!(x.last_fetch_at, Some(t0_plus(1)));
    assert_eq!(x.last_result_type, Some(ResultType::DefaultResponse));
    assert!(!x.is_waiting(service.now()));

    let added = service.add("for a live call").await.unwrap();
    assert_eq!(counts(&service), counts_of(1, 0));
    assert_eq!(pending(&service), std::slice::from_ref(&added));

    let fetch = next(&service, "x").await;
    assert_eq!(
        fetch.outcome,
        FetchOutcome::Instruction(consumed(&added, "x", t0_plus(1)))
    );
    assert_eq!(fetch.remaining_pending, 0);
}

#[tokio::test(start_paused = true)]
async fn call_dropped_just_as_an_add_wakes_it_consumes_nothing() {
    let service = service();
    let added = tokio::select! {
        biased;
        fetch = service.next_instruction(agent("x")) => panic!("the call ended: {fetch:?}"),
        added = async {
            time::sleep(secs(2)).await;
            service.add("raced").await.unwrap()
        } => added,
    };
    // The add claimed the instruction for the call, but the select dropped the
    // call before it could read it: the instruction is back in line.
    assert_eq!(counts(&service), counts_of(1, 0));
    let back = pending(&service);
    assert_eq!(back.len(), 1);
    assert_eq!(
        (back[0].id, back[0].status, back[0].consumed_by.as_ref()),
        (added.id, Status::Pending, None)
    );
    assert_eq!(record(&service, "x").waiting_until, None);

    let fetch = next(&service, "x").await;
    assert_eq!(delivered(&fetch).id, added.id);
}

/// Where a call with a claim in progress is dropped.
#[derive(Clone, Copy, Debug)]
enum DropPoint {
    /// The claim job is queued but has not run.
    BeforeClaimRuns,
    /// The store claimed and answered; the call has not read the answer.
    AfterClaimAnswered,
}

/// When the instructions of a drop test arrive.
#[derive(Clone, Copy, Debug)]
enum Arrives {
    /// Queued before the call: its first store trip (start and claim) takes one.
    BeforeTheCall,
    /// Added while the call waits: a claim of its own, after the wake-up, takes one.
    WhileWaiting,
}

/// Stops a call of `x` at `point`, drops it, and checks the claimed instruction
/// went back to the head of the queue.
async fn drop_call_at(point: DropPoint) {
    let offload = Arc::new(ManualOffload::default());
    let service = build(options(10, "nothing yet"), offload.clone());
    let add = |text: &'static str| drive(&offload, Box::pin(service.add(text)));
    let step = |what: &str| {
        assert_eq!(offload.queued(), 1, "{point:?}: one job for {what}");
        assert!(offload.run_next());
    };

    // A call makes one store job when it finds an instruction at once: the start
    // (settings, begin_call, claim and count). The audit line follows without
    // another await (see `a_delivering_call_ends_when_it_reads_its_claim`). (A
    // call that waits is handed its instruction by the add: see
    // `drop_waiting_call_as_an_add_comes`.)
    let first = add("first").await.unwrap();
    let second = add("second").await.unwrap();
    let mut call = Box::pin(service.next_instruction(agent("x")));
    let seq_before = service.store().last_event_seq().unwrap();
    assert!(poll_once(&mut call).await.is_pending());
    match point {
        DropPoint::BeforeClaimRuns => assert_eq!(offload.queued(), 1, "the claim is queued"),
        DropPoint::AfterClaimAnswered => {
            step("the claim");
            assert_eq!(counts(&service), counts_of(1, 1), "the store claimed");
        }
    }
    drop(call);
    // The clean-up is queued: the service is not drained until it ran.
    let mut drained = Box::pin(service.drained());
    assert!(poll_once(&mut drained).await.is_pending(), "{point:?}");
    offload.run_all();
    assert!(poll_once(&mut drained).await.is_ready(), "{point:?}");

    // Nothing lost: "first" is pending again, ahead of "second".
    assert_eq!(counts(&service), counts_of(2, 0), "{point:?}");
    let queue = pending(&service);
    let ids: Vec<_> = queue.iter().map(|i| i.id).collect();
    assert_eq!(ids, [first.id, second.id], "{point:?}");
    assert!(queue[0].position < queue[1].position, "{point:?}");
    assert_eq!((queue[0].consumed_at, &queue[0].consumed_by), (None, &None));

    // The store recorded the claim and the return to the queue.
    let events = service.store().events_after(seq_before, 100).unwrap();
    let item_events: Vec<_> = events
        .iter()
        .filter(|e| !matches!(e.change, Change::AgentUpdated(_)))
        .map(|e| &e.change)
        .collect();
    assert_eq!(
        item_events,
        [
            &Change::InstructionConsumed(consumed(&first, "x", T0)),
            &Change::InstructionUpdated(queue[0].clone()),
        ],
        "{point:?}"
    );

    // The dropped call's end is recorded like any call that delivered nothing.
    let x = record(&service, "x");
    assert_eq!(x.waiting_until, None, "{point:?}");
    assert_eq!(
        x.last_result_type,
        Some(ResultType::DefaultResponse),
        "{point:?}"
    );

    // The next call gets it.
    let fetch = drive(&offload, Box::pin(service.next_instruction(agent("x"))))
        .await
        .unwrap();
    assert_eq!(delivered(&fetch).id, first.id, "{point:?}");
    assert_eq!(fetch.remaining_pending, 1, "{point:?}");
}

#[tokio::test(start_paused = true)]
async fn dropped_before_the_claim_runs_loses_nothing() {
    drop_call_at(DropPoint::BeforeClaimRuns).await;
    drop_waiting_call_as_an_add_comes(DropPoint::BeforeClaimRuns).await;
}

#[tokio::test(start_paused = true)]
async fn dropped_after_the_store_claimed_loses_nothing() {
    drop_call_at(DropPoint::AfterClaimAnswered).await;
    drop_waiting_call_as_an_add_comes(DropPoint::AfterClaimAnswered).await;
}

/// A waiting call is dropped just before an add claims for it (the add finds no
/// call to claim for), or just after (the add's claim is durable and left for
/// the call, which never reads it): either way the instruction stays first in
/// line, and the call's end is recorded as one that delivered nothing.
async fn drop_waiting_call_as_an_add_comes(point: DropPoint) {
    let offload = Arc::new(ManualOffload::default());
    let service = build(options(10, "nothing yet"), offload.clone());
    let mut call = Box::pin(service.next_instruction(agent("x")));
    assert!(poll_once(&mut call).await.is_pending());
    assert!(offload.run_next(), "the start");
    assert!(poll_once(&mut call).await.is_pending());
    assert_eq!(offload.queued(), 0, "waiting on an empty queue");

    let seq_before = service.store().last_event_seq().unwrap();
    let mut add_first = Box::pin(service.add("first"));
    assert!(poll_once(&mut add_first).await.is_pending());
    assert_eq!(offload.queued(), 1, "{point:?}: the add's write is queued");
    if let DropPoint::AfterClaimAnswered = point {
        assert!(offload.run_next());
        assert_eq!(counts(&service), counts_of(0, 1), "claimed for the call");
    }
    drop(call);
    let first = drive(&offload, add_first).await.unwrap();
    let second = drive(&offload, Box::pin(service.add("second")))
        .await
        .unwrap();
    offload.run_all();
    assert!(poll_once(&mut Box::pin(service.drained())).await.is_ready());

    // Nothing lost: "first" is pending, ahead of "second".
    assert_eq!(counts(&service), counts_of(2, 0), "{point:?}");
    let queue = pending(&service);
    let ids: Vec<_> = queue.iter().map(|i| i.id).collect();
    assert_eq!(ids, [first.id, second.id], "{point:?}");
    assert_eq!((queue[0].consumed_at, &queue[0].consumed_by), (None, &None));
    let kinds: Vec<_> = service
        .store()
        .events_after(seq_before, 100)
        .unwrap()
        .into_iter()
        .filter(|e| match &e.change {
            Change::InstructionCreated(i)
            | Change::InstructionConsumed(i)
            | Change::InstructionUpdated(i) => i.id == first.id,
            _ => false,
        })
        .map(|e| e.change.event_type())
        .collect();
    let expected: &[&str] = match point {
        DropPoint::BeforeClaimRuns => &["instruction.created"],
        DropPoint::AfterClaimAnswered => &[
            "instruction.created",
            "instruction.consumed",
            "instruction.updated",
        ],
    };
    assert_eq!(kinds, expected, "{point:?}");

    let x = record(&service, "x");
    assert_eq!(x.waiting_until, None, "{point:?}");
    assert_eq!(x.last_result_type, Some(ResultType::DefaultResponse));
}

/// A claim that finds nothing changes nothing and wakes nobody — least of all the
/// call that made it, which would otherwise claim again and again while it waits.
#[tokio::test(start_paused = true)]
async fn an_empty_claim_does_not_wake_the_waiting_call() {
    let offload = Arc::new(ManualOffload::default());
    let service = build(options(10, "nothing yet"), offload.clone());
    // Another agent takes one, to be requeued below.
    let taken = drive(&offload, Box::pin(service.add("taken")))
        .await
        .unwrap();
    drive(&offload, Box::pin(service.next_instruction(agent("y"))))
        .await
        .unwrap();
    let mut call = Box::pin(service.next_instruction(agent("x")));
    assert!(poll_once(&mut call).await.is_pending());
    assert!(offload.run_next(), "the start");
    assert!(poll_once(&mut call).await.is_pending());
    assert_eq!(offload.queued(), 0, "waiting on an empty queue");

    // Something comes and goes before the call looks: its claim finds nothing.
    // (A requeued copy wakes the call; an add would be claimed for it at once.)
    let item = drive(&offload, Box::pin(service.requeue(taken.id)))
        .await
        .unwrap();
    drive(&offload, Box::pin(service.delete(item.id)))
        .await
        .unwrap();
    assert!(poll_once(&mut call).await.is_pending());
    assert_eq!(offload.queued(), 1, "woken by the copy, the call claims");
    assert!(offload.run_next());
    for _ in 0..3 {
        assert!(poll_once(&mut call).await.is_pending());
        assert_eq!(offload.queued(), 0, "no claim after an empty one");
    }
    let added = drive(&offload, Box::pin(service.add("kept")))
        .await
        .unwrap();
    let fetch = drive(&offload, call).await.unwrap();
    assert_eq!(delivered(&fetch).id, added.id);
}

/// A call that delivers nothing answers at once; its end is recorded after the
/// answer (issue 18: the end-of-call record no longer delays the result), and the
/// service counts that write as work in progress until it is durable.
#[tokio::test(start_paused = true)]
async fn an_empty_answer_does_not_wait_for_its_end_to_be_recorded() {
    let offload = Arc::new(ManualOffload::default());
    let service = build(options(1, "nothing yet"), offload.clone());
    let mut call = Box::pin(service.next_instruction(agent("x")));
    assert!(poll_once(&mut call).await.is_pending());
    assert!(offload.run_next(), "the start");
    assert!(poll_once(&mut call).await.is_pending());
    time::advance(secs(2)).await;
    // Timed out, it counts what is left (a read), and answers.
    assert!(poll_once(&mut call).await.is_pending());
    assert!(offload.run_next(), "the count");
    let Poll::Ready(fetch) = poll_once(&mut call).await else {
        panic!("the call waits for its end to be recorded")
    };
    let fetch = fetch.unwrap();
    assert_eq!(
        (fetch.reason, fetch.outcome),
        (
            EndReason::TimedOut,
            FetchOutcome::DefaultResponse("nothing yet".into())
        )
    );
    assert_eq!(offload.queued(), 1, "the end's write, queued");
    assert!(record(&service, "x").waiting_until.is_some());
    let mut drained = Box::pin(service.drained());
    assert!(poll_once(&mut drained).await.is_pending());
    assert!(offload.run_next());
    assert!(poll_once(&mut drained).await.is_ready());
    let x = record(&service, "x");
    assert_eq!(
        (x.waiting_until, x.last_result_type),
        (None, Some(ResultType::DefaultResponse))
    );
}

/// Once a call has read its claim, nothing is left to await: the audit line and
/// the answer follow in the same poll, so no drop can come between the claim and
/// the caller.
#[tokio::test(start_paused = true)]
async fn a_delivering_call_ends_when_it_reads_its_claim() {
    for arrives in [Arrives::BeforeTheCall, Arrives::WhileWaiting] {
        let offload = Arc::new(ManualOffload::default());
        let service = build(options(10, "nothing yet"), offload.clone());
        let mut call = Box::pin(service.next_instruction(agent("x")));
        if let Arrives::WhileWaiting = arrives {
            assert!(poll_once(&mut call).await.is_pending());
            assert!(offload.run_next(), "the start");
            assert!(poll_once(&mut call).await.is_pending());
            assert_eq!(offload.queued(), 0, "waiting on an empty queue");
        }
        let first = drive(&offload, Box::pin(service.add("first")))
            .await
            .unwrap();
        // A waiting call finds the add's claim for it in its slot; one that starts
        // later claims in its start.
        if let Arrives::BeforeTheCall = arrives {
            assert!(poll_once(&mut call).await.is_pending(), "{arrives:?}");
            assert_eq!(offload.queued(), 1, "{arrives:?}: the claim is queued");
            assert!(offload.run_next());
        }
        let Poll::Ready(fetch) = poll_once(&mut call).await else {
            panic!("{arrives:?}: the call still waits after reading its claim")
        };
        assert_eq!(delivered(&fetch.unwrap()).id, first.id, "{arrives:?}");
        assert_eq!(offload.queued(), 0, "{arrives:?}: no job after the claim");
    }
}

// ---------------------------------------------------------------------------
// Shutdown (SPEC §3 rule 8)
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn shutdown_ends_waiting_calls_at_once_and_consumes_nothing() {
    let service = service();
    let watcher = spawn_watch(&service);
    let call = spawn_next(&service, "x");
    until_waiting(&service, "x", 1).await;
    time::advance(secs(1)).await;

    service.shutdown();
    assert!(service.is_shutting_down());
    let fetch = call.await.unwrap();
    assert_eq!(fetch.outcome, default_response());
    assert_eq!(fetch.reason, EndReason::ShuttingDown);
    assert_eq!(fetch.waited, secs(1));
    assert_eq!(record(&service, "x").waiting_until, None);

    // Added during shutdown: stays pending, even for a call started now.
    let added = service.add("after shutdown").await.unwrap();
    let late = next(&service, "y").await;
    assert_eq!(late.outcome, default_response());
    assert_eq!(late.reason, EndReason::ShuttingDown);
    assert_eq!(late.waited, Duration::ZERO);
    assert_eq!(late.remaining_pending, 1);
    assert_eq!(pending(&service), [added]);
    assert_eq!(counts(&service), counts_of(1, 0));

    time::timeout(secs(1), watcher)
        .await
        .expect("watch returns after shutdown")
        .unwrap();
}

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

/// A write publishes its own events as soon as they are durable, without the
/// watcher; when another process's changes came first and are not published yet,
/// it leaves its own to the watcher, which sends everything once and in order.
#[tokio::test(start_paused = true)]
async fn writes_publish_their_own_events_in_order_with_another_process() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let here = build_on(
        Arc::clone(&store),
        ServiceOptions::default(),
        Arc::new(Inline),
    );
    // Random ids, so the two never pick the same one.
    let there = Service::builder(store).build().unwrap();
    let mut events = here.subscribe();

    // No watcher runs yet: the add's own write published it.
    let first = here.add("first").await.unwrap();
    let seen = events.try_recv().expect("published by the write");
    assert_eq!(seen.change, Change::InstructionCreated(first));
    assert_eq!(here.published_seq(), 1);

    // The other process's change is unknown here until a watcher reads it, so the
    // next local write must not go out ahead of it.
    let second = there.add("second").await.unwrap();
    let third = here.add("third").await.unwrap();
    assert!(events.try_recv().is_err(), "nothing out of order");
    assert_eq!(here.published_seq(), 1);

    let watcher = spawn_watch(&here);
    let mut rest = Vec::new();
    while rest.len() < 2 {
        let event = time::timeout(secs(1), events.recv())
            .await
            .expect("the watcher publishes the rest")
            .unwrap();
        rest.push(Event::clone(&event));
    }
    assert_eq!(
        rest.iter().map(|e| (e.seq, &e.change)).collect::<Vec<_>>(),
        [
            (2, &Change::InstructionCreated(second)),
            (3, &Change::InstructionCreated(third)),
        ]
    );
    // Once caught up, a write publishes by itself again, and nothing came twice.
    let fourth = here.add("fourth").await.unwrap();
    let seen = events.try_recv().expect("published by the write");
    assert_eq!(
        (seen.seq, &seen.change),
        (4, &Change::InstructionCreated(fourth))
    );
    settle().await;
    assert!(events.try_recv().is_err(), "each event once");
    here.shutdown();
    watcher.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn events_arrive_in_order_and_replay() {
    let service = service_with(0, "none left");
    let mut events = service.subscribe();
    let watcher = spawn_watch(&service);

    let added = service.add("hello").await.unwrap();
    let fetch = next(&service, "x").await;
    assert_eq!(fetch.reason, EndReason::Delivered);

    let mut seen = Vec::new();
    while seen.len() < 4 {
        let event = time::timeout(secs(1), events.recv())
            .await
            .expect("the watcher publishes")
            .unwrap();
        seen.push(Event::clone(&event));
    }
    assert_eq!(
        kinds(&seen),
        [
            "instruction.created",
            "agent.updated",
            "instruction.consumed",
            "agent.updated"
        ]
    );
    assert_eq!(seen.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(seen[0].change, Change::InstructionCreated(added.clone()));
    assert_eq!(
        seen[2].change,
        Change::InstructionConsumed(consumed(&added, "x", T0))
    );
    let Change::AgentUpdated(began) = &seen[1].change else {
        panic!("{:?}", seen[1])
    };
    assert_eq!((began.generation, began.waiting_until), (1, Some(T0)));
    let Change::AgentUpdated(ended) = &seen[3].change else {
        panic!("{:?}", seen[3])
    };
    assert_eq!(ended.waiting_until, None);
    assert_eq!(ended.last_result_type, Some(ResultType::Instruction));

    assert_eq!(service.published_seq(), 4);
    assert_eq!(service.events_after(0, 100).await.unwrap(), seen);
    assert_eq!(service.events_after(2, 100).await.unwrap(), seen[2..]);
    assert_eq!(service.events_after(0, 1).await.unwrap(), seen[..1]);

    service.shutdown();
    time::timeout(secs(1), watcher).await.unwrap().unwrap();
    assert!(events.try_recv().is_err(), "nothing more was published");
}

// ---------------------------------------------------------------------------
// Agent records (SPEC §3 rule 7)
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn calls_record_agent_activity() {
    let service = service();
    time::advance(secs(5)).await;

    let call = spawn_next(&service, "x");
    until_waiting(&service, "x", 1).await;
    let during = record(&service, "x");
    assert_eq!(
        during,
        Agent {
            queue: QueueName::default(),
            id: agent("x"),
            last_seen_at: t0_plus(5),
            last_fetch_at: None,
            last_result_type: None,
            generation: 1,
            waiting_until: Some(t0_plus(5 + 10)),
        }
    );
    assert_eq!(during.state(service.now(), 30), AgentState::Waiting);

    assert_eq!(call.await.unwrap().reason, EndReason::TimedOut);
    let after = record(&service, "x");
    assert_eq!(
        after,
        Agent {
            last_fetch_at: Some(t0_plus(15)),
            last_result_type: Some(ResultType::DefaultResponse),
            waiting_until: None,
            ..during
        }
    );
    assert_eq!(after.state(service.now(), 30), AgentState::Idle);

    service.add("work").await.unwrap();
    time::advance(secs(2)).await;
    assert_eq!(next(&service, "x").await.reason, EndReason::Delivered);
    let working = record(&service, "x");
    assert_eq!(
        working,
        Agent {
            queue: QueueName::default(),
            id: agent("x"),
            last_seen_at: t0_plus(17),
            last_fetch_at: Some(t0_plus(17)),
            last_result_type: Some(ResultType::Instruction),
            generation: 2,
            waiting_until: None,
        }
    );
    assert_eq!(working.state(service.now(), 30), AgentState::Working);
    assert_eq!(working.state(t0_plus(17 + 31), 30), AgentState::Gone);

    let patch = SettingsPatch::new(Some(0), Some(String::new()), None).unwrap();
    service.update_settings(patch).await.unwrap();
    assert_eq!(next(&service, "x").await.outcome, FetchOutcome::Empty);
    assert_eq!(
        record(&service, "x").last_result_type,
        Some(ResultType::Empty)
    );
}

// ---------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn stored_settings_override_the_defaults() {
    let defaults = Settings {
        default_wait_seconds: 7,
        default_empty_response: "from the defaults".into(),
        agent_stale_after_seconds: 45,
    };
    let service = build(
        ServiceOptions {
            defaults: defaults.clone(),
            ..ServiceOptions::default()
        },
        Arc::new(Inline),
    );
    assert_eq!(service.settings().await.unwrap(), defaults);
    assert_eq!(
        service.store().settings().unwrap(),
        StoredSettings::default()
    );
    let fetch = next(&service, "x").await;
    assert_eq!(fetch.waited, secs(7));
    assert_eq!(
        fetch.outcome,
        FetchOutcome::DefaultResponse("from the defaults".into())
    );

    let wait_3 = SettingsPatch::new(Some(3), None, None).unwrap();
    let expected = Settings {
        default_wait_seconds: 3,
        ..defaults.clone()
    };
    assert_eq!(service.update_settings(wait_3).await.unwrap(), expected);
    assert_eq!(service.settings().await.unwrap(), expected);
    assert_eq!(
        service.store().settings().unwrap(),
        StoredSettings {
            default_wait_seconds: Some(3),
            ..StoredSettings::default()
        }
    );
    assert_eq!(next(&service, "x").await.waited, secs(3));

    let quiet = SettingsPatch::new(None, Some(String::new()), Some(60)).unwrap();
    let expected = Settings {
        default_wait_seconds: 3,
        default_empty_response: String::new(),
        agent_stale_after_seconds: 60,
    };
    assert_eq!(service.update_settings(quiet).await.unwrap(), expected);
    let fetch = next(&service, "x").await;
    assert_eq!(fetch.outcome, FetchOutcome::Empty);
    assert_eq!(fetch.waited, secs(3));
}

// ---------------------------------------------------------------------------
// Real runtime
// ---------------------------------------------------------------------------

/// Same-process waking on a real multi-thread runtime. Only correctness is
/// asserted; the wake latency is a benchmark's business, not a test's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_calls_are_woken_on_a_real_runtime() {
    const TRIALS: u64 = 200;
    let service = Service::builder(Arc::new(MemoryStore::new()))
        .ids(Arc::new(SeqIds::default()))
        .build()
        .unwrap();
    let mut events = service.subscribe();
    let watcher = spawn_watch(&service);

    for trial in 0..TRIALS {
        let call = spawn_next(&service, "x");
        // Wait for this call to begin, from its own event, before adding.
        loop {
            let event = time::timeout(secs(10), events.recv())
                .await
                .expect("the call begins")
                .unwrap();
            if let Change::AgentUpdated(a) = &event.change
                && a.generation == trial + 1
                && a.waiting_until.is_some()
            {
                break;
            }
        }
        let added = service.add(&format!("trial {trial}")).await.unwrap();
        let fetch = call.await.unwrap();
        assert_eq!(fetch.reason, EndReason::Delivered, "trial {trial}");
        assert_eq!(delivered(&fetch).id, added.id, "trial {trial}");
        assert_eq!(delivered(&fetch).content, added.content, "trial {trial}");
        assert_eq!(fetch.remaining_pending, 0, "trial {trial}");
    }
    assert_eq!(counts(&service), counts_of(0, TRIALS));

    service.shutdown();
    watcher.await.unwrap();
}

/// A call dropped while its start is being recorded still records its end, whether
/// the store had answered yet or not: the agent must not look like it is waiting.
#[tokio::test(start_paused = true)]
async fn dropped_while_starting_leaves_no_call_in_flight() {
    for answered in [false, true] {
        let offload = Arc::new(ManualOffload::default());
        let service = build(options(10, "nothing yet"), offload.clone());
        let mut call = Box::pin(service.next_instruction(agent("x")));
        assert!(poll_once(&mut call).await.is_pending());
        assert_eq!(offload.queued(), 1, "settings and begin_call are queued");
        if answered {
            assert!(offload.run_next(), "settings and begin_call");
            assert!(record(&service, "x").waiting_until.is_some());
        }
        drop(call);
        offload.run_all();
        let after = record(&service, "x");
        assert_eq!(after.waiting_until, None, "answered: {answered}");
        assert_eq!(after.generation, 1, "answered: {answered}");
        assert_eq!(counts(&service), counts_of(0, 0));
    }
}

// ---------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------

/// Keeps each audited action with the instruction or agent it names.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl queue_core::Audit for Recorder {
    fn record(&self, entry: &queue_core::AuditEntry<'_>) {
        use queue_core::AuditEntry as E;
        let detail = match entry {
            E::InstructionCreated {
                item,
                requeued_from,
            } => format!(
                "{} from {}",
                item.content.as_str(),
                requeued_from.map_or_else(|| "-".to_owned(), |id| id.to_string())
            ),
            E::InstructionUpdated { item } | E::InstructionDeleted { item } => {
                item.content.as_str().to_owned()
            }
            E::InstructionReordered { ids, .. } => format!("{} ids", ids.len()),
            E::InstructionReturned { item, reason } => {
                format!("{} ({reason})", item.content.as_str())
            }
            E::ConfigUpdated { settings, .. } => format!("wait {}", settings.default_wait_seconds),
            E::ToolCall {
                caller,
                result,
                end,
                instruction,
                waited,
            } => format!(
                "{} {} {end} {} waited={}",
                caller.agent,
                result.as_str(),
                instruction.map_or("-", |i| i.content.as_str()),
                waited.is_some()
            ),
            E::AuthFailure { method, path, .. } => format!("{method} {path}"),
            _ => String::from("?"),
        };
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {detail}", entry.action()));
    }
}

#[tokio::test(start_paused = true)]
async fn every_change_and_call_is_audited_once() {
    let recorder = Arc::new(Recorder::default());
    let service = Service::builder(Arc::new(MemoryStore::new()))
        .clock(Arc::new(PausedClock {
            start: Instant::now(),
        }))
        .ids(Arc::new(SeqIds::default()))
        .options(options(0, "nothing yet"))
        .audit(recorder.clone())
        .build()
        .unwrap();
    let a = service.add("first").await.unwrap();
    let b = service.add("second").await.unwrap();
    service.edit(b.id, "second, reworded").await.unwrap();
    service
        .reorder(&QueueName::default(), vec![b.id, a.id])
        .await
        .unwrap();
    let fetch = next(&service, "agent-1").await;
    assert_eq!(delivered(&fetch).id, b.id);
    service.requeue(b.id).await.unwrap();
    service
        .return_to_queue(b.id, "the write failed")
        .await
        .unwrap();
    service.delete(a.id).await.unwrap();
    service
        .update_settings(SettingsPatch::new(Some(5), None, None).unwrap())
        .await
        .unwrap();
    service.audit(&queue_core::AuditEntry::AuthFailure {
        method: "GET",
        path: "/api/status",
        reason: "no token",
    });
    // Refused changes are not audited.
    assert!(service.edit(a.id, "gone").await.is_err());
    let got = recorder.0.lock().unwrap().clone();
    assert_eq!(
        got,
        [
            "instruction.created first from -".to_owned(),
            "instruction.created second from -".to_owned(),
            "instruction.updated second, reworded".to_owned(),
            "instruction.reordered 2 ids".to_owned(),
            "tool.call agent-1 instruction delivered second, reworded waited=true".to_owned(),
            format!("instruction.created second, reworded from {}", b.id),
            "instruction.returned second, reworded (the write failed)".to_owned(),
            "instruction.deleted first".to_owned(),
            "config.updated wait 5".to_owned(),
            "auth.failure GET /api/status".to_owned(),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_call_is_audited_as_such() {
    let recorder = Arc::new(Recorder::default());
    let service = Service::builder(Arc::new(MemoryStore::new()))
        .clock(Arc::new(PausedClock {
            start: Instant::now(),
        }))
        .options(options(10, "nothing yet"))
        .audit(recorder.clone())
        .build()
        .unwrap();
    let call = spawn_next(&service, "agent-1");
    until_waiting(&service, "agent-1", 1).await;
    call.abort();
    until("the abandoned call is recorded", || {
        !recorder.0.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(
        recorder.0.lock().unwrap().clone(),
        ["tool.call agent-1 default_response abandoned - waited=false"]
    );
}

/// A `MemoryStore` whose counts fail once an instruction has been claimed.
fn counts_fail_after_claim() -> Arc<FaultyStore> {
    let store = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
    store.after(Method::Claim, |store, out| {
        if let Some(Ok(Claim::Claimed(_))) = out.downcast_ref::<Result<Claim, QueueError>>() {
            store.fail(Method::Counts, StoreError::Busy.into());
        }
    });
    store
}

#[tokio::test]
async fn a_failed_count_after_a_claim_still_delivers() {
    let store = counts_fail_after_claim();
    let service = Service::builder(store.clone()).build().unwrap();
    let queued = service.add("ship it").await.unwrap();
    let default = QueueName::default_queue();
    assert_eq!(service.counts(&default).await.unwrap().pending, 1);

    let fetch = service
        .next_instruction(AgentId::default_agent())
        .await
        .unwrap();

    let FetchOutcome::Instruction(item) = &fetch.outcome else {
        panic!("expected the instruction, got {:?}", fetch.outcome)
    };
    assert_eq!(item.id, queued.id);
    assert_eq!(item.content.as_str(), "ship it");
    assert_eq!(fetch.reason, EndReason::Delivered);
    assert_eq!(fetch.remaining_pending, 0);
    assert_eq!(fetch.count_error, Some(StoreError::Busy.into()));
    // Delivered once and left consumed: not put back behind the caller's back.
    let consumed = store
        .inner()
        .list(&default, StatusFilter::Consumed, Page::default())
        .unwrap();
    assert_eq!(consumed.total, 1);
    assert_eq!(consumed.items[0].id, queued.id);
    assert_eq!(store.inner().counts(&default).unwrap().pending, 0);
}
