//! Applying a plan at the rate limit, in dependency order: flows are written level by level (a
//! level's re-created flows created first, so every new id is known before anything that names it
//! is saved, whatever the cycles) — called flows saved and published before their callers — with up
//! to `--concurrency` flows in flight within a level. Each flow goes through the one safe per-flow
//! path ([`super::apply::restore_flow`]); every request, polls included, through the client's one
//! limiter and retry driver. The flows of a cycle are all saved before any of them is published.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use serde::Serialize;

use super::apply::{create_ahead, give_back, publish_after_cycle, restore_flow};
use super::remap::{is_flow_kind, map_for, rewrite};
use super::{Action, FlowOutcome, FlowRestore, RestoreOptions, RestoreReport, order};
use crate::export::StopSignal;
use crate::genesys::{ApiError, GenesysClient};

/// Requests per flow besides its operations: read its state, save, read it back at the end (a
/// flow that exists is also checked out; a re-created one is created, and locked by that).
const REQUESTS_PER_FLOW: u64 = 3;
/// Requests per check-in or publish: read state, start it, and about one poll at 0.4 s operations
/// (measured: about 10 requests per flow created and published, BENCHMARKS.md).
const REQUESTS_PER_OPERATION: u64 = 3;
/// The documented per-token limit (300/min), assumed when the client learns the limit from 429s.
const DOCUMENTED_RATE: f64 = 5.0;
/// Seconds one flow's chain of requests and operations takes at least (a level cannot be faster).
const SECONDS_PER_LEVEL: f64 = 2.0;

/// What applying the plan is expected to cost.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Expected {
    /// Flows to be written.
    pub flows: usize,
    /// Requests expected, polls included.
    pub requests: u64,
    /// Dependency levels (called flows before callers).
    pub levels: usize,
    /// The rate assumed, requests per second.
    pub rate_per_second: f64,
    /// Seconds expected.
    pub seconds: f64,
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "applying writes {} flows in {} dependency level(s): about {} requests, about {:.0} s at {:.1} requests/s",
            self.flows, self.levels, self.requests, self.seconds, self.rate_per_second
        )
    }
}

/// The writing flows' calls to each other, as indices into `writing`.
fn call_graph(flows: &[FlowRestore], writing: &[usize]) -> Vec<Vec<usize>> {
    let position: HashMap<&str, usize> = writing
        .iter()
        .enumerate()
        .map(|(k, i)| (flows[*i].id.as_str(), k))
        .collect();
    writing
        .iter()
        .map(|i| {
            flows[*i]
                .references
                .iter()
                .filter(|r| is_flow_kind(&r.kind))
                .filter_map(|r| position.get(r.id.as_str()).copied())
                .collect()
        })
        .collect()
}

fn writing(flows: &[FlowRestore]) -> Vec<usize> {
    (0..flows.len())
        .filter(|i| matches!(flows[*i].action, Action::Update | Action::Create))
        .collect()
}

/// The requests and time applying `flows` is expected to take at the client's pace.
pub fn expected(client: &GenesysClient, flows: &[FlowRestore], options: &RestoreOptions) -> Expected {
    let writing = writing(flows);
    let levels = order::levels(&call_graph(flows, &writing)).levels.len();
    let requests: u64 = writing
        .iter()
        .map(|i| {
            let f = &flows[*i];
            let operations = 1 + u64::from(options.publish && f.publishable) + 2 * u64::from(f.draft.is_some());
            REQUESTS_PER_FLOW + 1 + operations * REQUESTS_PER_OPERATION
        })
        .sum();
    let rate = client.limiter().paced_rate().unwrap_or(DOCUMENTED_RATE);
    Expected {
        flows: writing.len(),
        requests,
        levels,
        rate_per_second: rate,
        seconds: requests as f64 / rate + levels as f64 * SECONDS_PER_LEVEL,
    }
}

/// The flows at these indices, mutably.
fn pick<'a>(flows: &'a mut [FlowRestore], wanted: &HashSet<usize>) -> Vec<(usize, &'a mut FlowRestore)> {
    flows
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| wanted.contains(i))
        .collect()
}

/// Marks a flow not attempted, giving back the lock of a flow created ahead.
async fn not_attempted(client: &GenesysClient, f: &mut FlowRestore, why: Option<String>) {
    f.outcome = FlowOutcome::NotAttempted;
    f.notes.extend(why);
    give_back(client, f).await;
}

/// Applies every `update` and `create` of `report` in dependency order, concurrently within a
/// level. An `Err` is a run-level failure (credentials); flows not reached are `not attempted`.
pub async fn apply_in_order(
    client: &GenesysClient,
    report: &mut RestoreReport,
    options: &RestoreOptions,
    stop: &StopSignal,
) -> Result<(), ApiError> {
    apply_in_order_seeded(client, report, options, stop, HashMap::new()).await
}

/// [`apply_in_order`], with the ids already created by this restore (Architect objects written
/// before the flows: archived id → new id), so flows naming them are saved with the new ids.
pub async fn apply_in_order_seeded(
    client: &GenesysClient,
    report: &mut RestoreReport,
    options: &RestoreOptions,
    stop: &StopSignal,
    seed: HashMap<String, String>,
) -> Result<(), ApiError> {
    report.applied = true;
    report.published = options.publish;
    let writing = writing(&report.flows);
    let levels = order::levels(&call_graph(&report.flows, &writing));
    let fatal = AtomicBool::new(false);
    let mut first_fatal = None;
    let mut created: HashMap<String, String> = seed;
    for (depth, level) in levels.levels.iter().enumerate() {
        let members: Vec<usize> = level.iter().map(|k| writing[*k]).collect();
        let blocked = blocked_by_callees(&report.flows, &members, &writing, &levels, depth);
        for (i, why) in blocked {
            not_attempted(client, &mut report.flows[i], Some(why)).await;
        }
        // This level's flows are created before any of them is saved: its callers come in later
        // levels, and the flows of a cycle share it, so every new id is known when it is needed.
        let creating: HashSet<usize> = members
            .iter()
            .copied()
            .filter(|i| report.flows[*i].action == Action::Create && report.flows[*i].outcome == FlowOutcome::Planned)
            .collect();
        let run = create_all(client, pick(&mut report.flows, &creating), options, stop, &fatal).await;
        first_fatal = first_fatal.or(run);
        created.extend(
            creating
                .iter()
                .filter_map(|i| Some((report.flows[*i].id.clone(), report.flows[*i].new_id.clone()?))),
        );
        let ready: HashSet<usize> = members
            .iter()
            .copied()
            .filter(|i| report.flows[*i].outcome == FlowOutcome::Planned)
            .collect();
        let cycle: HashSet<usize> = level
            .iter()
            .filter(|k| levels.in_cycle[**k])
            .map(|k| writing[*k])
            .collect();
        let flows = pick(&mut report.flows, &ready);
        let run = write_level(client, flows, &cycle, &created, options, stop, &fatal).await;
        first_fatal = first_fatal.or(run);
        if options.publish && !cycle.is_empty() {
            let run = publish_cycles(client, pick(&mut report.flows, &cycle), options, &fatal).await;
            first_fatal = first_fatal.or(run);
        }
    }
    report.interrupted = stop.cause().map(|c| c.to_string());
    first_fatal.map_or(Ok(()), Err)
}

/// Creates every flow to be re-created, up to `concurrency` at once; the first run-level failure.
async fn create_all(
    client: &GenesysClient,
    flows: Vec<(usize, &mut FlowRestore)>,
    options: &RestoreOptions,
    stop: &StopSignal,
    fatal: &AtomicBool,
) -> Option<ApiError> {
    let results: Vec<Result<(), ApiError>> = futures::stream::iter(flows.into_iter().map(|(_, f)| async move {
        if stop.cause().is_some() || fatal.load(Ordering::SeqCst) {
            return Ok(());
        }
        let r = create_ahead(client, f).await;
        if r.is_err() {
            fatal.store(true, Ordering::SeqCst);
        }
        r
    }))
    .buffer_unordered(options.concurrency.max(1))
    .collect()
    .await;
    results.into_iter().find_map(Result::err)
}

/// Flows of a level whose called flows (in earlier levels) were not restored: they are not
/// written, since their publish would fail on the missing callee.
fn blocked_by_callees(
    flows: &[FlowRestore],
    members: &[usize],
    writing: &[usize],
    levels: &order::Levels,
    depth: usize,
) -> Vec<(usize, String)> {
    let earlier: HashMap<&str, &FlowRestore> = levels.levels[..depth]
        .iter()
        .flatten()
        .map(|k| (flows[writing[*k]].id.as_str(), &flows[writing[*k]]))
        .collect();
    members
        .iter()
        .filter_map(|i| {
            let f = &flows[*i];
            if f.outcome != FlowOutcome::Planned {
                return None;
            }
            let callee = f
                .references
                .iter()
                .filter(|r| is_flow_kind(&r.kind))
                .filter_map(|r| earlier.get(r.id.as_str()))
                .find(|c| c.outcome != FlowOutcome::Done)?;
            Some((
                *i,
                format!(
                    "not written: the flow it calls, {:?} ({}), was not restored ({})",
                    callee.name,
                    callee.id,
                    callee.outcome.as_str()
                ),
            ))
        })
        .collect()
}

/// Re-points one flow's configuration (and draft) at the target's ids before it is saved.
fn repoint(f: &mut FlowRestore, created: &HashMap<String, String>) {
    let map = map_for(f, created);
    let (configuration, counts) = rewrite(&f.configuration, &map);
    f.configuration = configuration;
    if let Some(draft) = f.draft.take() {
        f.draft = Some(rewrite(&draft, &map).0);
    }
    for p in &mut f.repointed {
        p.places = counts.get(&p.from).copied().unwrap_or(0);
    }
}

/// Writes one level's flows, up to `concurrency` at once; flows of a cycle are saved and checked
/// in here, and published once all of them are. The first run-level failure.
async fn write_level(
    client: &GenesysClient,
    flows: Vec<(usize, &mut FlowRestore)>,
    cycle: &HashSet<usize>,
    created: &HashMap<String, String>,
    options: &RestoreOptions,
    stop: &StopSignal,
    fatal: &AtomicBool,
) -> Option<ApiError> {
    let later = RestoreOptions {
        publish: false,
        ..options.clone()
    };
    let results: Vec<Result<(), ApiError>> = futures::stream::iter(flows.into_iter().map(|(i, f)| {
        let opts = if cycle.contains(&i) { &later } else { options };
        async move {
            // A flow just created is finished even after a stop, never left empty in the org.
            if fatal.load(Ordering::SeqCst) || (stop.cause().is_some() && f.new_id.is_none()) {
                not_attempted(client, f, None).await;
                return Ok(());
            }
            repoint(f, created);
            let r = restore_flow(client, f, opts, stop).await;
            if r.is_err() {
                fatal.store(true, Ordering::SeqCst);
            }
            r
        }
    }))
    .buffer_unordered(options.concurrency.max(1))
    .collect()
    .await;
    results.into_iter().find_map(Result::err)
}

/// Publishes the saved flows of a level's cycles, now that every flow of each cycle is saved.
async fn publish_cycles(
    client: &GenesysClient,
    flows: Vec<(usize, &mut FlowRestore)>,
    options: &RestoreOptions,
    fatal: &AtomicBool,
) -> Option<ApiError> {
    let results: Vec<Result<(), ApiError>> = futures::stream::iter(
        flows
            .into_iter()
            .filter(|(_, f)| f.outcome == FlowOutcome::Done && f.publishable)
            .map(|(_, f)| async move {
                if fatal.load(Ordering::SeqCst) {
                    return Ok(());
                }
                publish_after_cycle(client, f, options).await
            }),
    )
    .buffer_unordered(options.concurrency.max(1))
    .collect()
    .await;
    results.into_iter().find_map(Result::err)
}
