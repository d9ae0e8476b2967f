//! The checkpoint log on real SQLite: windows read from the log's tail agree with the
//! whole state under random edits, removals, forks and rollbacks; and a database in the
//! layout before the log (schema version 4) is converted without losing anything.

#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use edge_memory::checkpoint::sql::MIGRATIONS;
use edge_memory::checkpoint::{CheckpointId, CheckpointRecord, Checkpointer, NewCheckpoint};
use edge_memory::message::{add_messages, Message, MessageOp, MessageType};
use edge_memory::runtime::SeededEntropy;
use edge_memory::thread::{ThreadId, ThreadRecord};
use serde_json::Map;

/// A small deterministic generator (xorshift64*), so failures replay.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn upsert(id: &str, text: &str) -> MessageOp {
    MessageOp::Upsert {
        message: Message::new(MessageType::Human, id, text),
    }
}

/// Random ops valid on `state`: mostly appends, some edits in place, removals, and a
/// rare remove-all.
fn random_ops(rng: &mut Rng, state: &[Message], fresh: &mut usize) -> Vec<MessageOp> {
    let mut ops = Vec::new();
    let mut live: Vec<String> = state.iter().map(|m| m.id.clone()).collect();
    for _ in 0..=rng.below(3) {
        let roll = rng.below(100);
        if roll < 2 {
            ops.push(MessageOp::RemoveAll);
            live.clear();
        } else if roll < 30 && !live.is_empty() {
            let id = live.remove(rng.below(live.len() as u64) as usize);
            ops.push(MessageOp::Remove { id });
        } else if roll < 45 && !live.is_empty() {
            let id = live[rng.below(live.len() as u64) as usize].clone();
            ops.push(upsert(&id, &format!("edited {}", rng.below(1000))));
        } else {
            *fresh += 1;
            let id = format!("m{fresh}");
            ops.push(upsert(&id, &format!("text {fresh}")));
            live.push(id);
        }
    }
    ops
}

fn put(
    store: &support::Store,
    t: &ThreadId,
    id: &CheckpointId,
    parent: Option<&CheckpointId>,
    ops: Vec<MessageOp>,
) {
    let checkpoint = NewCheckpoint {
        record: CheckpointRecord {
            thread_id: t.clone(),
            checkpoint_id: id.clone(),
            parent_id: parent.cloned(),
            created_at_ms: 1,
            metadata: Map::new(),
        },
        ops,
    };
    pollster::block_on(store.put(&checkpoint)).unwrap();
}

#[test]
fn windows_from_the_log_agree_with_the_whole_state_under_random_edits() {
    for seed in 1..=6u64 {
        let store = support::sqlite_store();
        let t = ThreadId::parse("random").unwrap();
        pollster::block_on(store.create_thread(&ThreadRecord::new(t.clone(), Map::new(), 0)))
            .unwrap();
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let entropy = SeededEntropy::new(seed);
        let mut ids: Vec<CheckpointId> = Vec::new();
        let mut states: Vec<Vec<Message>> = Vec::new();
        let mut fresh = 0;
        for step in 0..400 {
            let newest = ids.iter().max().cloned();
            // Mostly continue the head; sometimes fork from an older checkpoint.
            let from = match ids.len() {
                0 => None,
                n if rng.below(10) == 0 => Some(rng.below(n as u64) as usize),
                n => Some(n - 1),
            };
            let base = from.map_or(Vec::new(), |i| states[i].clone());
            let ops = random_ops(&mut rng, &base, &mut fresh);
            let expected = add_messages(base, &ops).unwrap();
            let id = CheckpointId::next(newest.as_ref(), 1_000 + step, &entropy);
            put(&store, &t, &id, from.map(|i| &ids[i]), ops);
            ids.push(id);
            states.push(expected);
            // Now and then roll the newest back, as a rolled-back run does.
            if rng.below(25) == 0 && ids.len() > 1 {
                let gone = ids.pop().unwrap();
                states.pop();
                pollster::block_on(store.remove_newest(&t, &[gone])).unwrap();
            }
            let head = states.last().unwrap();
            let newest_id = format!("m{fresh}");
            let asked: Vec<&str> = vec!["m1", "m5", &newest_id];
            for max in [0, 1, 3, 10, 100] {
                let window = pollster::block_on(store.window(&t, None, max, &asked)).unwrap();
                let tail = &head[head.len().saturating_sub(max)..];
                assert_eq!(window.messages, tail, "seed {seed} step {step} max {max}");
                for id in &asked {
                    assert_eq!(
                        window.existing.contains(*id),
                        head.iter().any(|m| m.id == *id),
                        "seed {seed} step {step}: is {id} live"
                    );
                }
            }
        }
        let latest = pollster::block_on(store.latest(&t)).unwrap().unwrap();
        assert_eq!(&latest.messages, states.last().unwrap(), "seed {seed}");
        for (i, id) in ids.iter().enumerate().step_by(37) {
            let got = pollster::block_on(store.get(&t, id)).unwrap();
            assert_eq!(got.messages, states[i], "seed {seed}: state at {id}");
        }
    }
}

#[test]
fn a_window_of_a_thread_whose_old_messages_were_removed_stays_bounded() {
    let store = support::sqlite_store();
    let t = ThreadId::parse("trimmed").unwrap();
    pollster::block_on(store.create_thread(&ThreadRecord::new(t.clone(), Map::new(), 0))).unwrap();
    let entropy = SeededEntropy::new(7);
    let mut parent: Option<CheckpointId> = None;
    let mut state = Vec::new();
    // A system message kept forever, then turns that each drop the turn before (a
    // summarizing chat): the walk back from the head would reach the first row.
    for turn in 0..600 {
        let mut ops = vec![upsert(&format!("u{turn}"), "question")];
        if turn == 0 {
            ops.insert(0, upsert("system", "be brief"));
        } else {
            ops.insert(
                0,
                MessageOp::Remove {
                    id: format!("u{}", turn - 1),
                },
            );
        }
        state = add_messages(state, &ops).unwrap();
        let id = CheckpointId::next(parent.as_ref(), 1_000 + turn, &entropy);
        put(&store, &t, &id, parent.as_ref(), ops);
        parent = Some(id);
    }
    let before = store.exec().rows_returned.get();
    let window = pollster::block_on(store.window(&t, None, 100, &[])).unwrap();
    let read = store.exec().rows_returned.get() - before;
    assert_eq!(window.messages, state);
    // The walk gives up after ~2 rows per wanted message and reads the head's ids: a
    // bound set by the window, not by the 600 rows.
    assert!(
        read <= 310,
        "read {read} rows for a 2-message window of 600 checkpoints"
    );
}

/// The statements of schema version 4 (the layout before the log), applied by hand.
fn version_4_database() -> support::Store {
    let store = support::sqlite_store();
    let conn = store.exec().conn();
    conn.execute_batch(
        "CREATE TABLE em_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
         INSERT INTO em_schema VALUES (1, 4);",
    )
    .unwrap();
    for sql in MIGRATIONS[..4].iter().flat_map(|m| m.iter()) {
        conn.execute(sql, []).unwrap();
    }
    store
}

#[test]
fn a_version_4_database_moves_to_the_log_with_every_state_intact() {
    let store = version_4_database();
    let conn = store.exec().conn();
    let big = "✓".repeat(400_000);
    // Thread "a": c1 [x, y], c2 [edit x, z], c3 [remove y, big in parts], and a fork
    // c4 from c2 [w]; the newest (c4) is the head. Thread "b": one checkpoint.
    conn.execute_batch(
        "INSERT INTO em_threads VALUES (1, 'a', 1, 5, '{}', 'idle', 4), (2, 'b', 1, 1, '{\"k\":1}', 'idle', 5);
         INSERT INTO em_checkpoints VALUES
           (1, 1, 'c1', NULL, 1, '{\"step\":1}'), (2, 1, 'c2', 1, 2, '{}'),
           (3, 1, 'c3', 2, 3, '{}'), (4, 1, 'c4', 2, 4, '{\"fork\":true}'),
           (5, 2, 'c1', NULL, 1, '{}');
         INSERT INTO em_messages VALUES
           (1, 1, 0, '{\"id\":\"x\",\"type\":\"human\",\"content\":\"x1\"}'),
           (2, 1, 0, '{\"id\":\"y\",\"type\":\"ai\",\"content\":\"y1\"}'),
           (3, 2, 0, '{\"id\":\"x\",\"type\":\"human\",\"content\":\"x2\"}'),
           (4, 2, 0, '{\"id\":\"z\",\"type\":\"human\",\"content\":\"z1\"}'),
           (5, 3, 1, 'y'),
           (6, 3, 0, '{\"__parts__\":2,\"id\":\"big\"}'),
           (7, 4, 0, '{\"id\":\"w\",\"type\":\"human\",\"content\":\"w1\"}'),
           (8, 5, 0, '{\"id\":\"only\",\"type\":\"human\",\"content\":\"b\"}');"
    )
    .unwrap();
    let whole = format!("{{\"id\":\"big\",\"type\":\"human\",\"content\":\"{big}\"}}");
    let mid = (0..=whole.len() / 2)
        .rev()
        .find(|&i| whole.is_char_boundary(i))
        .unwrap();
    let (first, second) = whole.split_at(mid);
    for (part, data) in [(0, first), (1, second)] {
        conn.execute(
            "INSERT INTO em_message_parts VALUES (6, ?, ?)",
            rusqlite::params![part, data],
        )
        .unwrap();
    }
    let text = |messages: &[Message]| -> Vec<String> {
        messages
            .iter()
            .map(|m| format!("{}={}", m.id, m.text().chars().take(8).collect::<String>()))
            .collect()
    };
    let a = ThreadId::parse("a").unwrap();
    let get = |id: &str| {
        let snapshot =
            pollster::block_on(store.get(&a, &CheckpointId::parse(id).unwrap())).unwrap();
        text(&snapshot.messages)
    };
    // The first read runs the migration.
    assert_eq!(get("c1"), ["x=x1", "y=y1"]);
    assert_eq!(get("c2"), ["x=x2", "y=y1", "z=z1"]);
    assert_eq!(get("c3")[..2], ["x=x2", "z=z1"]);
    assert_eq!(get("c3")[2], format!("big={}", "✓".repeat(8)));
    let c3 = pollster::block_on(store.get(&a, &CheckpointId::parse("c3").unwrap())).unwrap();
    assert_eq!(c3.messages[2].text(), big, "the large body whole");
    assert_eq!(get("c4"), ["x=x2", "y=y1", "z=z1", "w=w1"]);
    let window = pollster::block_on(store.window(&a, None, 2, &["y", "big"])).unwrap();
    assert_eq!(text(&window.messages), ["z=z1", "w=w1"]);
    assert!(window.existing.contains("y") && !window.existing.contains("big"));
    let record = pollster::block_on(store.get_thread(&ThreadId::parse("b").unwrap())).unwrap();
    assert_eq!(record.metadata["k"], 1);
    // The old tables are gone; a turn on the head continues its positions.
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'em_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert!(
        !tables
            .iter()
            .any(|t| t == "em_messages" || t == "em_checkpoints"),
        "{tables:?}"
    );
    let c5 = CheckpointId::parse("c5").unwrap();
    put(
        &store,
        &a,
        &c5,
        Some(&CheckpointId::parse("c4").unwrap()),
        vec![upsert("y", "y2"), upsert("v", "v1")],
    );
    assert_eq!(get("c5"), ["x=x2", "y=y2", "z=z1", "w=w1", "v=v1"]);
    let window = pollster::block_on(store.window(&a, None, 10, &[])).unwrap();
    assert_eq!(text(&window.messages), get("c5"));
}
