//! What the memory doctor keeps of one client, and how the facts of several isolates
//! merge into it: the record lives in the client's own diagnostics object
//! ([`object_name`]), each isolate sends it the facts it saw since its last sync
//! ([`Delta`]) at most once per [`SYNC_INTERVAL_MS`] (and at once for a hint it had not
//! given before), and takes back the merged record as its view of the client.

use serde_json::{json, Value};

use super::{ClientKey, HintCode};
use crate::runtime::iso8601;

/// The runs of a client judged at once: its most recent ones.
pub const RUN_WINDOW: usize = 24;
/// The saver reads of a client judged at once (`get_tuple` of a thread's newest
/// checkpoint): when every one of them missed while the client writes, it never reads
/// back what it writes.
pub const SAVER_WINDOW: usize = 8;
/// An isolate sends a client's new facts to its diagnostics object at most once per
/// this interval (sooner for a hint the record does not have yet): a busy client costs
/// its object one request and one stored row per isolate per interval, not one per turn,
/// and stays far below an object's ~1,000 requests per second.
pub const SYNC_INTERVAL_MS: i64 = 10_000;
/// The longest thread id a record keeps: longer ones are cut (they only need to tell
/// one thread from another among a client's last runs).
const THREAD_ID_KEPT_MAX: usize = 128;

/// The diagnostics object of a client: one object per client, so no object is shared
/// by every request, and none is on a turn's path (syncs run after the response).
pub fn object_name(client: &ClientKey) -> String {
    format!("doctor/{}", client.as_str())
}

/// A run, as the window keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFact {
    /// Its thread.
    pub thread_id: String,
    /// The turn of its thread it made (1: the thread's first).
    pub turn: u64,
    /// A thread's first turn that no other run in the window continued.
    pub first: bool,
    /// Sent with `if_not_exists: "create"`.
    pub creates: bool,
    /// When it was answered (ms since the epoch).
    pub at_ms: i64,
}

/// A saver read of a thread's newest checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadFact {
    /// It found a checkpoint.
    pub hit: bool,
    /// When it was answered.
    pub at_ms: i64,
}

/// When and how often a hint was given to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Responses that carried it.
    pub count: u64,
    /// The first of them.
    pub first_ms: i64,
    /// The last of them.
    pub last_ms: i64,
    /// When it was last logged, if ever.
    pub logged_ms: Option<i64>,
}

impl Seen {
    /// Adds `other` (another isolate's, or later) to this.
    fn merge(&mut self, other: &Seen) {
        self.count += other.count;
        self.first_ms = self.first_ms.min(other.first_ms);
        self.last_ms = self.last_ms.max(other.last_ms);
        self.logged_ms = self.logged_ms.max(other.logged_ms);
    }
}

/// Each hint's [`Seen`], by code: one slot per code (a map would weigh on the wasm).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HintsSeen([Option<Seen>; HintCode::ALL.len()]);

impl HintsSeen {
    /// When `code` was seen, if ever.
    pub fn get(&self, code: HintCode) -> Option<&Seen> {
        self.0[code as usize].as_ref()
    }

    /// `code`'s slot, first seen now when it never was.
    pub fn seen_now(&mut self, code: HintCode, now_ms: i64) -> &mut Seen {
        self.0[code as usize].get_or_insert(Seen {
            count: 0,
            first_ms: now_ms,
            last_ms: now_ms,
            logged_ms: None,
        })
    }

    /// Adds `seen` to `code`'s.
    pub fn add(&mut self, code: HintCode, seen: &Seen) {
        match &mut self.0[code as usize] {
            Some(kept) => kept.merge(seen),
            slot => *slot = Some(*seen),
        }
    }

    /// The hints seen, in the symptom map's order.
    pub fn iter(&self) -> impl Iterator<Item = (HintCode, &Seen)> {
        HintCode::ALL
            .into_iter()
            .filter_map(|code| Some((code, self.get(code)?)))
    }

    /// None seen.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

/// The facts an isolate saw of a client since its last sync: a record of their own,
/// bounded by the same windows (older facts would fall out of the merged record anyway),
/// so a busy client's sync stays small however many turns it ran in the interval.
pub type Delta = ClientRecord;

/// What is known of one client: its recent runs and saver reads (the windows the
/// detectors judge), and the hints it was given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientRecord {
    /// The last [`RUN_WINDOW`] runs, oldest first.
    pub runs: Vec<RunFact>,
    /// The last [`SAVER_WINDOW`] saver reads, oldest first.
    pub reads: Vec<ReadFact>,
    /// The client wrote checkpoints through the saver.
    pub writes: bool,
    /// Each hint it was given.
    pub hints: HintsSeen,
}

impl ClientRecord {
    /// Nothing known (or nothing new, for a [`Delta`]).
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.reads.is_empty() && !self.writes && self.hints.is_empty()
    }

    /// Takes in a run: a later turn of a thread means its first turn was no thread per
    /// request, whichever of the two arrives first (isolates sync out of order).
    pub fn push_run(&mut self, mut fact: RunFact) {
        fact.thread_id = fact.thread_id.chars().take(THREAD_ID_KEPT_MAX).collect();
        let same_thread = |r: &&mut RunFact| r.thread_id == fact.thread_id;
        let mut continued = false;
        for run in self.runs.iter_mut().filter(same_thread) {
            if run.turn < fact.turn {
                run.first = false;
            } else if run.turn > fact.turn {
                continued = true;
            }
        }
        fact.first = fact.turn == 1 && !continued;
        // In time order: a fact from a slower isolate goes where it belongs.
        let at = self
            .runs
            .iter()
            .rposition(|r| r.at_ms <= fact.at_ms)
            .map_or(0, |i| i + 1);
        self.runs.insert(at, fact);
        if self.runs.len() > RUN_WINDOW {
            self.runs.drain(..self.runs.len() - RUN_WINDOW);
        }
    }

    /// Takes in a saver read.
    pub fn push_read(&mut self, fact: ReadFact) {
        let at = self
            .reads
            .iter()
            .rposition(|r| r.at_ms <= fact.at_ms)
            .map_or(0, |i| i + 1);
        self.reads.insert(at, fact);
        if self.reads.len() > SAVER_WINDOW {
            self.reads.drain(..self.reads.len() - SAVER_WINDOW);
        }
    }

    /// Counts hints given (one isolate's since its last sync).
    pub fn add_hints(&mut self, hints: &HintsSeen) {
        for (code, seen) in hints.iter() {
            self.hints.add(code, seen);
        }
    }

    /// Takes in one isolate's facts.
    pub fn merge(&mut self, delta: &Delta) {
        delta.runs.iter().cloned().for_each(|r| self.push_run(r));
        delta.reads.iter().copied().for_each(|r| self.push_read(r));
        self.writes |= delta.writes;
        self.add_hints(&delta.hints);
    }

    /// `GET /diagnostics`: the hints given to `client` (in the symptom map's order), with
    /// their counts and when they were first and last given.
    pub fn report(&self, client: &ClientKey) -> Value {
        let hints: Vec<Value> = self
            .hints
            .iter()
            .map(|(hint, seen)| {
                let mut entry = hint.to_json();
                entry["count"] = json!(seen.count);
                entry["first_seen"] = json!(iso8601(seen.first_ms));
                entry["last_seen"] = json!(iso8601(seen.last_ms));
                entry
            })
            .collect();
        json!({
            "client": client.as_str(),
            "hints": hints,
            "codes": HintCode::ALL.iter().map(|h| h.to_json()).collect::<Vec<_>>(),
        })
    }
}

/// The JSON of records and deltas, written by hand: compact arrays (a record is stored
/// and sent on every sync), and no derived decoders (each would weigh on the wasm every
/// isolate loads). Decoding is lenient: what does not read is left out.
mod codec {
    use serde_json::{json, Value};

    use super::{ClientRecord, HintCode, HintsSeen, ReadFact, RunFact, Seen};

    /// `[thread_id, turn, creates, at_ms]` (`first` is worked out again on the way in).
    fn run(fact: &RunFact) -> Value {
        json!([fact.thread_id, fact.turn, fact.creates, fact.at_ms])
    }

    fn read_run(value: &Value) -> Option<RunFact> {
        let turn = value.get(1)?.as_u64()?;
        Some(RunFact {
            thread_id: value.get(0)?.as_str()?.to_string(),
            turn,
            first: turn == 1,
            creates: value.get(2)?.as_bool()?,
            at_ms: value.get(3)?.as_i64()?,
        })
    }

    /// `[hit, at_ms]`.
    fn read(fact: &ReadFact) -> Value {
        json!([fact.hit, fact.at_ms])
    }

    fn read_read(value: &Value) -> Option<ReadFact> {
        Some(ReadFact {
            hit: value.get(0)?.as_bool()?,
            at_ms: value.get(1)?.as_i64()?,
        })
    }

    /// `[[code, count, first_ms, last_ms, logged_ms or null], ...]`.
    fn hints(hints: &HintsSeen) -> Value {
        let list = hints.iter().map(|(code, seen)| {
            json!([
                code.as_str(),
                seen.count,
                seen.first_ms,
                seen.last_ms,
                seen.logged_ms
            ])
        });
        Value::Array(list.collect())
    }

    fn read_hints(value: Option<&Value>) -> HintsSeen {
        let mut hints = HintsSeen::default();
        for h in list(value) {
            let one = || {
                let seen = Seen {
                    count: h.get(1)?.as_u64()?,
                    first_ms: h.get(2)?.as_i64()?,
                    last_ms: h.get(3)?.as_i64()?,
                    logged_ms: h.get(4).and_then(Value::as_i64),
                };
                Some((HintCode::parse(h.get(0)?.as_str()?)?, seen))
            };
            if let Some((code, seen)) = one() {
                hints.add(code, &seen);
            }
        }
        hints
    }

    fn list(value: Option<&Value>) -> impl Iterator<Item = &Value> {
        value.and_then(Value::as_array).into_iter().flatten()
    }

    fn writes(value: &Value) -> bool {
        value
            .get("writes")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    impl ClientRecord {
        /// The record (or a delta) as JSON.
        pub fn to_json(&self) -> Value {
            json!({
                "runs": self.runs.iter().map(run).collect::<Vec<_>>(),
                "reads": self.reads.iter().map(read).collect::<Vec<_>>(),
                "writes": self.writes,
                "hints": hints(&self.hints),
            })
        }

        /// A record (or a delta) from its JSON; its windows rebuilt as they were kept.
        pub fn from_json(value: &Value) -> ClientRecord {
            let mut record = ClientRecord {
                runs: Vec::new(),
                reads: list(value.get("reads")).filter_map(read_read).collect(),
                writes: writes(value),
                hints: read_hints(value.get("hints")),
            };
            list(value.get("runs"))
                .filter_map(read_run)
                .for_each(|r| record.push_run(r));
            record
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(thread: &str, turn: u64, at_ms: i64) -> RunFact {
        RunFact {
            thread_id: thread.into(),
            turn,
            first: turn == 1,
            creates: false,
            at_ms,
        }
    }

    #[test]
    fn a_later_turn_clears_the_first_whichever_arrives_first() {
        let mut record = ClientRecord::default();
        record.push_run(run("a", 2, 20));
        record.push_run(run("a", 1, 10));
        record.push_run(run("b", 1, 15));
        let firsts: Vec<_> = record
            .runs
            .iter()
            .map(|r| (&*r.thread_id, r.first))
            .collect();
        assert_eq!(firsts, vec![("a", false), ("b", true), ("a", false)]);
    }

    #[test]
    fn merges_keep_the_window_bounded_and_in_time_order() {
        let mut record = ClientRecord::default();
        let early: Vec<_> = (0..RUN_WINDOW as i64)
            .map(|i| run(&format!("e{i}"), 1, i * 2))
            .collect();
        let late: Vec<_> = (0..4)
            .map(|i| run(&format!("l{i}"), 1, i * 2 + 1))
            .collect();
        record.merge(&Delta {
            runs: early,
            ..Delta::default()
        });
        record.merge(&Delta {
            runs: late,
            ..Delta::default()
        });
        assert_eq!(record.runs.len(), RUN_WINDOW);
        assert!(record
            .runs
            .iter()
            .zip(record.runs.iter().skip(1))
            .all(|(a, b)| a.at_ms <= b.at_ms));
        for i in 0..SAVER_WINDOW as i64 + 3 {
            record.push_read(ReadFact {
                hit: false,
                at_ms: 100 - i,
            });
        }
        assert_eq!(record.reads.len(), SAVER_WINDOW);
        assert_eq!(record.reads.last().map(|r| r.at_ms), Some(100));
    }

    #[test]
    fn hint_counts_add_up_across_isolates_and_survive_json() {
        let seen = |count, first_ms, last_ms| Seen {
            count,
            first_ms,
            last_ms,
            logged_ms: Some(first_ms),
        };
        let mut record = ClientRecord::default();
        let code = HintCode::NewThreadPerRequest;
        record.merge(&Delta {
            hints: hints_of(code, seen(2, 50, 60)),
            ..Delta::default()
        });
        record.merge(&Delta {
            hints: hints_of(code, seen(1, 40, 45)),
            writes: true,
            ..Delta::default()
        });
        assert_eq!(
            *record.hints.get(code).unwrap(),
            Seen {
                count: 3,
                first_ms: 40,
                last_ms: 60,
                logged_ms: Some(50)
            }
        );
        record.push_run(run("t", 2, 7));
        record.push_read(ReadFact {
            hit: true,
            at_ms: 8,
        });
        let text = record.to_json().to_string();
        assert!(text.contains("new_thread_per_request"), "{text}");
        let back = ClientRecord::from_json(&serde_json::from_str(&text).unwrap());
        assert_eq!(back, record);
        let delta = Delta {
            runs: vec![run("u", 1, 9)],
            writes: true,
            ..Delta::default()
        };
        assert_eq!(Delta::from_json(&delta.to_json()), delta);
        let report = back.report(&ClientKey("user:a".into()));
        assert_eq!(report["hints"][0]["count"], 3);
    }

    fn hints_of(code: HintCode, seen: Seen) -> HintsSeen {
        let mut hints = HintsSeen::default();
        hints.add(code, &seen);
        hints
    }
}
