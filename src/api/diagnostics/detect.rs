//! The detectors: a bounded window per client, in the memory of the isolate that serves
//! it. Nothing here reads or writes storage; a client's state is a few dozen bytes and
//! the number of clients is capped, so memory stays flat whatever the traffic.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};

use serde_json::{json, Value};

use super::{ClientKey, HintCode, Observation, Outcome};
use crate::runtime::iso8601;

/// The runs of a client judged at once: its most recent ones.
pub const RUN_WINDOW: usize = 24;
/// Fewer runs than this say nothing yet: a client's first conversations all start, and
/// a burst of new users is not a client that forgets its threads.
const RUNS_JUDGED_MIN: usize = 16;
/// The saver reads of a client judged at once (`get_tuple` of a thread's newest
/// checkpoint): when every one of them missed while the client writes, it never reads
/// back what it writes.
pub const SAVER_WINDOW: usize = 8;
/// The clients an isolate keeps state for; the least recently seen goes first.
pub const CLIENTS_MAX: usize = 512;
/// A hint is logged at most once per client per this interval (it is counted always).
pub const LOG_INTERVAL_MS: i64 = 60_000;

/// A run, as the window keeps it.
#[derive(Debug, Clone)]
struct RunFact {
    /// Its thread.
    thread_id: String,
    /// The first turn of its thread, and no later run in the window continued it.
    first: bool,
    /// Sent with `if_not_exists: "create"`.
    creates: bool,
}

/// When and how often a hint was given to a client.
#[derive(Debug, Clone, Copy)]
struct Seen {
    count: u64,
    first_ms: i64,
    last_ms: i64,
    logged_ms: Option<i64>,
}

/// What the detectors keep of one client.
#[derive(Debug, Default)]
struct ClientState {
    runs: VecDeque<RunFact>,
    /// Recent saver reads: `true` for one that found a checkpoint.
    reads: VecDeque<bool>,
    /// The client wrote checkpoints through the saver.
    writes: bool,
    hints: BTreeMap<HintCode, Seen>,
    last_seen_ms: i64,
}

/// The hints of one response: those it carries, and those to log now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// For [`super::HINT_HEADER`].
    pub hints: Vec<HintCode>,
    /// Not logged for this client within [`LOG_INTERVAL_MS`]: log them now.
    pub log: Vec<HintCode>,
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

/// The detectors of one isolate: clients' windows and the hints given to each.
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
        let mut found = state.observe(observation, outcome);
        if ephemeral || outcome.code.as_deref() == Some("memory_mismatch") {
            found.push(HintCode::EphemeralMemory);
        }
        // In the symptom map's order, each once (no sort: it would weigh on the wasm).
        let hints: Vec<HintCode> = HintCode::ALL
            .into_iter()
            .filter(|hint| found.contains(hint))
            .collect();
        let log = hints
            .iter()
            .copied()
            .filter(|hint| state.seen(*hint, now_ms))
            .collect();
        Verdict { hints, log }
    }

    /// `GET /diagnostics`: the hints given to `client` (in the symptom map's order), with
    /// their counts and when they were first and last given.
    pub fn report(&self, client: &ClientKey) -> Value {
        let clients = self.clients.borrow();
        let hints: Vec<Value> = clients
            .get(client)
            .map(|state| {
                HintCode::ALL
                    .iter()
                    .filter_map(|hint| Some((hint, state.hints.get(hint)?)))
                    .map(|(hint, seen)| {
                        let mut entry = hint.to_json();
                        entry["count"] = json!(seen.count);
                        entry["first_seen"] = json!(iso8601(seen.first_ms));
                        entry["last_seen"] = json!(iso8601(seen.last_ms));
                        entry
                    })
                    .collect()
            })
            .unwrap_or_default();
        json!({
            "client": client.as_str(),
            "hints": hints,
            "codes": HintCode::ALL.iter().map(|h| h.to_json()).collect::<Vec<_>>(),
        })
    }
}

impl ClientState {
    /// The hints one request of this client shows, from its window.
    fn observe(&mut self, observation: &Observation, outcome: &Outcome) -> Vec<HintCode> {
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
                let first = turn == 1;
                if first && *creates && *follow_up {
                    hints.push(HintCode::ThreadIdNotStable);
                }
                // A thread that got its second turn was no thread per request.
                self.runs
                    .iter_mut()
                    .filter(|r| r.first && r.thread_id == *thread_id)
                    .for_each(|r| r.first = false);
                let fact = RunFact {
                    thread_id: thread_id.clone(),
                    first,
                    creates: *creates,
                };
                push_bounded(&mut self.runs, fact, RUN_WINDOW);
                if first {
                    hints.extend(judge_runs(&self.runs));
                }
            }
            Observation::SaverPut { .. } if outcome.status < 300 => self.writes = true,
            Observation::SaverGet { .. } if outcome.status < 300 || outcome.status == 404 => {
                let hit = outcome.status == 200 && !outcome.empty;
                push_bounded(&mut self.reads, hit, SAVER_WINDOW);
                let all_missed = self.reads.len() == SAVER_WINDOW && !self.reads.contains(&true);
                if self.writes && all_missed {
                    hints.push(HintCode::CheckpointsUnread);
                }
            }
            _ => {}
        }
        hints
    }

    /// Counts `hint` as given now; whether it is due to be logged.
    fn seen(&mut self, hint: HintCode, now_ms: i64) -> bool {
        let seen = self.hints.entry(hint).or_insert(Seen {
            count: 0,
            first_ms: now_ms,
            last_ms: now_ms,
            logged_ms: None,
        });
        seen.count += 1;
        seen.last_ms = now_ms;
        let due = seen
            .logged_ms
            .is_none_or(|at| now_ms - at >= LOG_INTERVAL_MS);
        if due {
            seen.logged_ms = Some(now_ms);
        }
        due
    }
}

/// A client whose recent runs are mostly (three in four) a new thread's first turn: a
/// thread per request. Threads the client names itself (`if_not_exists: "create"`)
/// mean its id changes; threads it creates first mean it creates one per request.
fn judge_runs(runs: &VecDeque<RunFact>) -> Option<HintCode> {
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

fn push_bounded<T>(window: &mut VecDeque<T>, item: T, max: usize) {
    if window.len() == max {
        window.pop_front();
    }
    window.push_back(item);
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
        let report = d.report(&client("a"));
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
}
