//! The detectors: a bounded view of each client in the memory of the isolate that
//! serves it: the record its diagnostics object last sent back ([`ClientRecord`]) with
//! the facts seen here since. Judging a request reads no storage; the facts reach the
//! object after the response, at most once per [`SYNC_INTERVAL_MS`] per client.

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::json;

use super::record::{ClientRecord, Delta, ReadFact, RunFact, SYNC_INTERVAL_MS};
use super::{ClientKey, HintCode, Observation, Outcome};

/// Fewer runs than this say nothing yet: a client's first conversations all start, and
/// a burst of new users is not a client that forgets its threads.
const RUNS_JUDGED_MIN: usize = 16;
/// The clients an isolate keeps state for; the least recently seen goes first (with the
/// facts it had not synced yet: at most one interval of one client).
pub const CLIENTS_MAX: usize = 512;
/// A hint is logged at most once per client per this interval (it is counted always).
pub const LOG_INTERVAL_MS: i64 = 60_000;

/// What an isolate keeps of one client.
#[derive(Debug, Default)]
struct ClientState {
    /// The client as judged: its object's record and the facts seen here since.
    view: ClientRecord,
    /// The facts seen here not yet sent to its object.
    pending: Delta,
    last_seen_ms: i64,
    /// When this isolate last sent its facts (none yet: the record is not loaded).
    synced_ms: Option<i64>,
    /// A sync is under way.
    syncing: bool,
}

/// The hints of one response: those it carries, and those to log now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// For [`super::HINT_HEADER`].
    pub hints: Vec<HintCode>,
    /// Not logged for this client within [`LOG_INTERVAL_MS`]: log them now.
    pub log: Vec<HintCode>,
    /// The client's facts are due at its diagnostics object: sync after the response.
    pub sync: bool,
}

impl Verdict {
    /// The value of [`super::HINT_HEADER`], when there is a hint.
    pub fn header(&self) -> Option<String> {
        let codes: Vec<&str> = self.hints.iter().map(|h| h.as_str()).collect();
        (!codes.is_empty()).then(|| codes.join(", "))
    }

    /// The structured log line of `hint` for `client`: one JSON object.
    pub fn log_line(client: &ClientKey, hint: HintCode, path: &str) -> String {
        json!({
            "event": "edge_memory_hint",
            "hint": hint.as_str(),
            "client": client.as_str(),
            "path": path,
            "explanation": hint.explanation(),
            "fix": hint.fix(),
        })
        .to_string()
    }
}

/// The detectors of one isolate: clients' views and the facts not yet synced.
#[derive(Debug, Default)]
pub struct Detectors {
    clients: RefCell<HashMap<ClientKey, ClientState>>,
}

impl Detectors {
    /// No client seen yet.
    pub fn new() -> Self {
        Detectors::default()
    }

    /// Takes in one answered request of `client` and says which hints its response
    /// carries. `ephemeral` says the deployment keeps memory in the process
    /// (`MEMORY_BACKEND=memory` outside `DEV_MODE`).
    pub fn record(
        &self,
        client: &ClientKey,
        observation: &Observation,
        outcome: &Outcome,
        ephemeral: bool,
        now_ms: i64,
    ) -> Verdict {
        let mut clients = self.clients.borrow_mut();
        if !clients.contains_key(client) && clients.len() >= CLIENTS_MAX {
            evict_least_recent(&mut clients);
        }
        let state = clients.entry(client.clone()).or_default();
        state.last_seen_ms = now_ms;
        let mut found = state.observe(observation, outcome, now_ms);
        if ephemeral || outcome.code.as_deref() == Some("memory_mismatch") {
            found.push(HintCode::EphemeralMemory);
        }
        // In the symptom map's order, each once (no sort: it would weigh on the wasm).
        let hints: Vec<HintCode> = HintCode::ALL
            .into_iter()
            .filter(|hint| found.contains(hint))
            .collect();
        let new_hint = hints.iter().any(|h| state.view.hints.get(*h).is_none());
        let log = hints
            .iter()
            .copied()
            .filter(|hint| state.seen(*hint, now_ms))
            .collect();
        let sync = state.sync_due(now_ms, new_hint);
        Verdict { hints, log, sync }
    }

    /// Starts a sync of `client`: the facts to send its object (it answers with the
    /// merged record, for [`Detectors::synced`]). Marks the sync under way.
    pub fn take_pending(&self, client: &ClientKey, now_ms: i64) -> Delta {
        let mut clients = self.clients.borrow_mut();
        let Some(state) = clients.get_mut(client) else {
            return Delta::default();
        };
        state.syncing = true;
        state.synced_ms = Some(now_ms);
        std::mem::take(&mut state.pending)
    }

    /// Ends a sync: the object's merged record (none when the sync failed: the facts it
    /// carried are dropped, not resent, so nothing is counted twice) becomes the view,
    /// with the facts seen here while it was under way.
    pub fn synced(&self, client: &ClientKey, record: Option<ClientRecord>) {
        let mut clients = self.clients.borrow_mut();
        let Some(state) = clients.get_mut(client) else {
            return;
        };
        state.syncing = false;
        if let Some(mut record) = record {
            record.merge(&state.pending);
            state.view = record;
        }
    }

    /// The view of `client` in this isolate (its object's record and the facts seen
    /// here since): what `GET /diagnostics` lists when the object cannot be asked.
    pub fn view(&self, client: &ClientKey) -> ClientRecord {
        let clients = self.clients.borrow();
        clients
            .get(client)
            .map(|state| state.view.clone())
            .unwrap_or_default()
    }
}

impl ClientState {
    /// The hints one request of this client shows, from its window.
    fn observe(
        &mut self,
        observation: &Observation,
        outcome: &Outcome,
        now_ms: i64,
    ) -> Vec<HintCode> {
        let mut hints = Vec::new();
        match observation {
            Observation::Run {
                thread_id,
                creates,
                follow_up,
            } => {
                if *follow_up && outcome.code.as_deref() == Some("thread_not_found") {
                    hints.push(HintCode::ThreadIdNotStable);
                }
                let Some(turn) = outcome.turn else {
                    return hints;
                };
                if turn == 1 && *creates && *follow_up {
                    hints.push(HintCode::ThreadIdNotStable);
                }
                let fact = RunFact {
                    thread_id: thread_id.clone(),
                    turn,
                    first: turn == 1,
                    creates: *creates,
                    at_ms: now_ms,
                };
                self.view.push_run(fact.clone());
                self.pending.push_run(fact);
                if turn == 1 {
                    hints.extend(judge_runs(&self.view));
                }
            }
            Observation::SaverPut { .. } if outcome.status < 300 => {
                self.pending.writes |= !self.view.writes;
                self.view.writes = true;
            }
            Observation::SaverGet { .. } if outcome.status < 300 || outcome.status == 404 => {
                let hit = outcome.status == 200 && !outcome.empty;
                let fact = ReadFact { hit, at_ms: now_ms };
                self.view.push_read(fact);
                self.pending.push_read(fact);
                let reads = &self.view.reads;
                let all_missed = reads.len() == super::SAVER_WINDOW && reads.iter().all(|r| !r.hit);
                if self.view.writes && all_missed {
                    hints.push(HintCode::CheckpointsUnread);
                }
            }
            _ => {}
        }
        hints
    }

    /// Counts `hint` as given now; whether it is due to be logged.
    fn seen(&mut self, hint: HintCode, now_ms: i64) -> bool {
        let seen = self.view.hints.seen_now(hint, now_ms);
        seen.count += 1;
        seen.last_ms = now_ms;
        let due = seen
            .logged_ms
            .is_none_or(|at| now_ms - at >= LOG_INTERVAL_MS);
        if due {
            seen.logged_ms = Some(now_ms);
        }
        let delta = self.pending.hints.seen_now(hint, now_ms);
        delta.count += 1;
        delta.last_ms = now_ms;
        if due {
            delta.logged_ms = Some(now_ms);
        }
        due
    }

    /// Whether to send this client's facts to its object now: its record was never
    /// loaded here, a hint is new to it, or the interval has passed with facts to send.
    fn sync_due(&self, now_ms: i64, new_hint: bool) -> bool {
        if self.syncing {
            return false;
        }
        match self.synced_ms {
            None => true,
            Some(at) => !self.pending.is_empty() && (new_hint || now_ms - at >= SYNC_INTERVAL_MS),
        }
    }
}

/// A client whose recent runs are mostly (three in four) a new thread's first turn: a
/// thread per request. Threads the client names itself (`if_not_exists: "create"`)
/// mean its id changes; threads it creates first mean it creates one per request.
fn judge_runs(record: &ClientRecord) -> Option<HintCode> {
    let runs = &record.runs;
    if runs.len() < RUNS_JUDGED_MIN {
        return None;
    }
    let firsts: Vec<&RunFact> = runs.iter().filter(|r| r.first).collect();
    if firsts.len() * 4 < runs.len() * 3 {
        return None;
    }
    let named = firsts.iter().filter(|r| r.creates).count();
    Some(if named * 2 > firsts.len() {
        HintCode::ThreadIdNotStable
    } else {
        HintCode::NewThreadPerRequest
    })
}

fn evict_least_recent(clients: &mut HashMap<ClientKey, ClientState>) {
    let oldest = clients
        .iter()
        .min_by_key(|(_, state)| state.last_seen_ms)
        .map(|(key, _)| key.clone());
    if let Some(key) = oldest {
        clients.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{RUN_WINDOW, SAVER_WINDOW};
    use super::*;

    fn client(name: &str) -> ClientKey {
        ClientKey(name.to_string())
    }

    fn run(thread: &str, creates: bool, follow_up: bool) -> Observation {
        Observation::Run {
            thread_id: thread.into(),
            creates,
            follow_up,
        }
    }

    fn turn(n: u64) -> Outcome {
        Outcome {
            status: 200,
            turn: Some(n),
            ..Outcome::default()
        }
    }

    /// Feeds `(thread, turn)` runs of one client; the hints of the last response.
    fn runs_of(d: &Detectors, who: &str, runs: &[(String, u64)], creates: bool) -> Verdict {
        let mut last = Verdict::default();
        for (i, (thread, n)) in runs.iter().enumerate() {
            let obs = run(thread, creates, false);
            last = d.record(&client(who), &obs, &turn(*n), false, i as i64);
        }
        last
    }

    #[test]
    fn a_thread_per_request_is_named_by_how_threads_are_made() {
        let d = Detectors::new();
        let fresh: Vec<_> = (0..RUNS_JUDGED_MIN).map(|i| (format!("t{i}"), 1)).collect();
        let verdict = runs_of(&d, "a", &fresh, false);
        assert_eq!(verdict.hints, vec![HintCode::NewThreadPerRequest]);
        assert_eq!(verdict.log, vec![HintCode::NewThreadPerRequest]);
        let verdict = runs_of(&d, "b", &fresh, true);
        assert_eq!(verdict.hints, vec![HintCode::ThreadIdNotStable]);
        // One short of the minimum says nothing yet.
        let d = Detectors::new();
        assert!(runs_of(&d, "a", &fresh[1..], false).hints.is_empty());
    }

    #[test]
    fn healthy_conversations_stay_silent() {
        let d = Detectors::new();
        // Few threads, many turns each.
        let few: Vec<_> = (1..=20u64)
            .map(|n| (format!("t{}", n % 2), n.div_ceil(2)))
            .collect();
        assert!(runs_of(&d, "few", &few, false).hints.is_empty());
        // Many users, each with their own thread, interleaved: three turns each.
        let many: Vec<_> = (0..3)
            .flat_map(|turn| (0..10).map(move |user| (format!("u{user}"), turn + 1)))
            .collect();
        let mut hinted = Vec::new();
        for (i, (thread, n)) in many.iter().enumerate() {
            let v = d.record(
                &client("svc"),
                &run(thread, true, false),
                &turn(*n),
                false,
                i as i64,
            );
            hinted.extend(v.hints);
        }
        assert!(hinted.is_empty(), "{hinted:?}");
    }

    #[test]
    fn a_follow_up_on_an_unknown_thread_is_a_changing_id() {
        let d = Detectors::new();
        let not_found = Outcome {
            status: 404,
            code: Some("thread_not_found".into()),
            ..Outcome::default()
        };
        let v = d.record(&client("a"), &run("x", false, true), &not_found, false, 0);
        assert_eq!(v.hints, vec![HintCode::ThreadIdNotStable]);
        let v = d.record(&client("a"), &run("y", true, true), &turn(1), false, 1);
        assert_eq!(v.hints, vec![HintCode::ThreadIdNotStable]);
        // Logged once per interval, counted every time.
        assert!(v.log.is_empty());
        let v = d.record(&client("a"), &run("y", true, true), &turn(2), false, 2);
        assert!(v.hints.is_empty());
        let report = d.view(&client("a")).report(&client("a"));
        assert_eq!(report["hints"][0]["count"], 2);
        // A first message on an unknown thread is no hint.
        let v = d.record(&client("b"), &run("x", false, false), &not_found, false, 0);
        assert!(v.hints.is_empty());
    }

    #[test]
    fn ephemeral_memory_from_the_backend_or_a_lost_head() {
        let d = Detectors::new();
        let v = d.record(&client("a"), &Observation::Other, &turn(1), true, 0);
        assert_eq!(v.hints, vec![HintCode::EphemeralMemory]);
        let lost = Outcome {
            status: 409,
            code: Some("memory_mismatch".into()),
            ..Outcome::default()
        };
        let v = d.record(&client("b"), &run("t", false, false), &lost, false, 0);
        assert_eq!(v.hints, vec![HintCode::EphemeralMemory]);
        let v = d.record(&client("b"), &run("t", false, false), &turn(2), false, 1);
        assert!(v.hints.is_empty());
    }

    #[test]
    fn checkpoints_written_and_never_read_back() {
        let get = |t: &str| Observation::SaverGet {
            thread_id: t.into(),
        };
        let put = |t: &str| Observation::SaverPut {
            thread_id: t.into(),
        };
        let ok = Outcome {
            status: 200,
            ..Outcome::default()
        };
        let miss = Outcome {
            empty: true,
            ..ok.clone()
        };
        let d = Detectors::new();
        let mut last = Verdict::default();
        for i in 0..SAVER_WINDOW {
            let thread = format!("t{i}");
            last = d.record(&client("a"), &get(&thread), &miss, false, 0);
            d.record(&client("a"), &put(&thread), &ok, false, 0);
        }
        assert_eq!(last.hints, vec![HintCode::CheckpointsUnread]);
        // A saver that reads back what it writes: one hit in the window is enough.
        let d = Detectors::new();
        for i in 0..SAVER_WINDOW * 2 {
            let thread = format!("t{}", i / 2);
            let outcome = if i % 2 == 0 { &miss } else { &ok };
            last = d.record(&client("a"), &get(&thread), outcome, false, 0);
            d.record(&client("a"), &put(&thread), &ok, false, 0);
        }
        assert!(last.hints.is_empty());
    }

    #[test]
    fn clients_are_capped() {
        let d = Detectors::new();
        for i in 0..CLIENTS_MAX + 10 {
            d.record(
                &client(&format!("c{i}")),
                &Observation::Other,
                &turn(1),
                false,
                i as i64,
            );
        }
        assert_eq!(d.clients.borrow().len(), CLIENTS_MAX);
        assert!(!d.clients.borrow().contains_key(&client("c0")));
    }

    /// A diagnostics object: the record its isolates' syncs merge into.
    fn object_sync(object: &mut ClientRecord, d: &Detectors, who: &ClientKey, now: i64) {
        let delta = d.take_pending(who, now);
        object.merge(&delta);
        d.synced(who, Some(object.clone()));
    }

    #[test]
    fn syncs_are_due_on_first_sight_then_per_interval_or_for_a_new_hint() {
        let d = Detectors::new();
        let a = client("a");
        assert!(
            d.record(&a, &run("t", false, false), &turn(1), false, 0)
                .sync
        );
        let mut object = ClientRecord::default();
        object_sync(&mut object, &d, &a, 0);
        assert_eq!(object.runs.len(), 1);
        // Facts wait for the interval...
        assert!(
            !d.record(&a, &run("t", false, false), &turn(2), false, 5)
                .sync
        );
        assert!(
            d.record(
                &a,
                &run("t", false, false),
                &turn(3),
                false,
                SYNC_INTERVAL_MS
            )
            .sync
        );
        object_sync(&mut object, &d, &a, SYNC_INTERVAL_MS);
        assert_eq!(object.runs.len(), 3);
        // ...but a hint the record does not have goes at once.
        let lost = Outcome {
            status: 409,
            code: Some("memory_mismatch".into()),
            ..Outcome::default()
        };
        let v = d.record(
            &a,
            &run("t", false, false),
            &lost,
            false,
            SYNC_INTERVAL_MS + 1,
        );
        assert!(v.sync && v.hints == vec![HintCode::EphemeralMemory]);
        // Facts seen while a sync is under way stay in the view and are sent next time.
        let delta = d.take_pending(&a, SYNC_INTERVAL_MS + 2);
        assert!(
            !d.record(
                &a,
                &run("u", false, false),
                &turn(1),
                false,
                SYNC_INTERVAL_MS + 3
            )
            .sync
        );
        object.merge(&delta);
        d.synced(&a, Some(object.clone()));
        assert_eq!(d.view(&a).runs.len(), 4);
        let seen = d.view(&a).hints.get(HintCode::EphemeralMemory).copied();
        assert_eq!(seen.map(|s| s.count), Some(1));
        assert_eq!(d.take_pending(&a, SYNC_INTERVAL_MS + 4).runs.len(), 1);
    }

    #[test]
    fn a_client_spread_over_isolates_is_judged_on_all_its_runs() {
        // Two isolates each see half of a thread-per-request client's runs: neither has
        // enough alone; through the object's record they are told (one run late: each
        // judges the record as of its own last sync).
        let (one, two) = (Detectors::new(), Detectors::new());
        let who = client("spread");
        let mut object = ClientRecord::default();
        let mut last = Verdict::default();
        for i in 0..=RUNS_JUDGED_MIN as i64 {
            let isolate = if i % 2 == 0 { &one } else { &two };
            last = isolate.record(
                &who,
                &run(&format!("t{i}"), false, false),
                &turn(1),
                false,
                i,
            );
            object_sync(&mut object, isolate, &who, i);
        }
        assert_eq!(last.hints, vec![HintCode::NewThreadPerRequest]);
        let seen = object.hints.get(HintCode::NewThreadPerRequest).copied();
        assert_eq!(seen.map(|s| s.count), Some(1));
        // A turn on a thread seen by the other isolate clears that thread's first.
        two.record(&who, &run("t0", false, false), &turn(2), false, 100);
        object_sync(&mut object, &two, &who, 100);
        assert!(!object.runs.iter().any(|r| r.thread_id == "t0" && r.first));
    }

    #[test]
    fn a_busy_clients_sync_carries_no_more_than_the_windows() {
        let d = Detectors::new();
        let who = client("busy");
        for i in 0..(RUN_WINDOW as i64 * 3) {
            d.record(
                &who,
                &run(&format!("t{i}"), false, false),
                &turn(1),
                false,
                i,
            );
        }
        assert_eq!(d.take_pending(&who, 100).runs.len(), RUN_WINDOW);
    }
}
