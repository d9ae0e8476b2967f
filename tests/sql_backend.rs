//! The SQL backend on real SQLite: a turn's reads and writes do not grow with the thread.

#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use edge_memory::chat::demo::MemoryDemoResponder;
use edge_memory::chat::{Engine, Turn, CONTEXT_MAX_MESSAGES};
use edge_memory::checkpoint::{CheckpointId, Checkpointer, NewCheckpoint};
use edge_memory::message::{parse_messages, MessageOp};
use edge_memory::runtime::{SystemClock, SystemEntropy};
use edge_memory::thread::{ThreadId, ThreadRecord, ThreadStatus};
use serde_json::{json, Map, Value};

fn total_bytes(stats: &Value) -> i64 {
    ["em_threads", "em_log", "em_live_ids", "em_body_parts"]
        .iter()
        .map(|t| stats[t]["bytes"].as_i64().unwrap())
        .sum()
}

fn input(turn: usize) -> Vec<MessageOp> {
    let text = format!("Turn {turn}: {}", "x".repeat(190));
    parse_messages(&json!(text), "input.messages", &SystemEntropy).unwrap()
}

#[test]
fn turns_read_and_write_the_same_at_turn_250_as_at_turn_60() {
    let store = support::sqlite_store();
    let engine = Engine::new(&store, &MemoryDemoResponder, &SystemClock, &SystemEntropy);
    let t = ThreadId::parse("long").unwrap();
    pollster::block_on(store.create_thread(&ThreadRecord::new(t.clone(), Map::new(), 0))).unwrap();
    let mut reads = Vec::new();
    let mut writes = Vec::new();
    let mut steps = Vec::new();
    let mut rows_written = Vec::new();
    for turn in 1..=250 {
        // Odd turns start cold (an object that just started: nothing remembered), even
        // turns from what the previous turn left in memory.
        if turn % 2 == 1 {
            store.forget_recent();
        }
        // Measured outside the counted span: table_stats scans every table.
        let before_bytes = total_bytes(&store.table_stats().unwrap());
        let before_rows = store.exec().rows_returned.get();
        let before_steps = store.exec().vm_steps.get();
        let before_changed = store.exec().rows_changed.get();
        let outcome = pollster::block_on(engine.run_turn(Turn {
            thread_id: t.clone(),
            input: input(turn),
            from_checkpoint: None,
            metadata: Map::new(),
        }))
        .unwrap();
        assert!(outcome.context.len() <= CONTEXT_MAX_MESSAGES);
        let after_rows = store.exec().rows_returned.get();
        rows_written.push(store.exec().rows_changed.get() - before_changed);
        steps.push(store.exec().vm_steps.get() - before_steps);
        let stats = store.table_stats().unwrap();
        reads.push(after_rows - before_rows);
        writes.push(total_bytes(&stats) - before_bytes);
    }
    // Once the thread is longer than the context window, a turn reads a constant number
    // of rows, never the whole thread: from storage (turns 61, 249: the window, the head,
    // the thread's key) ...
    assert!(reads[60] > CONTEXT_MAX_MESSAGES as u64 / 2, "{}", reads[60]);
    assert_eq!(reads[60], reads[248], "rows read at turn 61 vs 249");
    // ... or, after a turn of the same object, nothing but a look-up of the input's id.
    assert!(reads[59] <= 1, "rows read after a turn: {}", reads[59]);
    assert_eq!(reads[59], reads[249], "rows read at turn 60 vs 250");
    // And no statement scans the thread: the database's own work stays flat too.
    let (at_60, at_250) = (steps[59] as f64, steps[249] as f64);
    assert!(
        at_250 <= 1.1 * at_60 && steps[248] as f64 <= 1.1 * steps[60] as f64,
        "SQLite VM steps per turn grew: {at_60} → {at_250}"
    );
    let early: i64 = writes[10..20].iter().sum();
    let late: i64 = writes[240..250].iter().sum();
    // Counters (step, turns, row keys) gain a digit or a byte between turn 15 and 245:
    // a few bytes, not a growth with the thread (that would be 16×).
    assert!(
        (late as f64) <= 1.03 * early as f64,
        "bytes written per turn grew: {early} → {late}"
    );
    // Two checkpoint rows (input, reply), one id row per new message: four rows.
    assert!(
        rows_written.iter().all(|&w| w == 4),
        "rows written per turn: {rows_written:?}"
    );
    // The state still reads back whole.
    let state = pollster::block_on(store.latest(&t)).unwrap().unwrap();
    assert_eq!(state.messages.len(), 500);
    let stats = store.table_stats().unwrap();
    assert_eq!(stats["em_live_ids"]["rows"], 500);
    assert_eq!(stats["em_log"]["rows"], 500, "input and reply per turn");
}

#[test]
fn a_message_larger_than_a_row_is_stored_in_parts() {
    let store = support::sqlite_store();
    let engine = Engine::new(&store, &MemoryDemoResponder, &SystemClock, &SystemEntropy);
    let t = ThreadId::parse("big").unwrap();
    pollster::block_on(store.create_thread(&ThreadRecord::new(t.clone(), Map::new(), 0))).unwrap();
    let text = "✓".repeat(2_700_000 / 3);
    pollster::block_on(engine.run_turn(Turn {
        thread_id: t.clone(),
        input: parse_messages(&json!(text), "input.messages", &SystemEntropy).unwrap(),
        from_checkpoint: None,
        metadata: Map::new(),
    }))
    .unwrap();
    let stats = store.table_stats().unwrap();
    assert_eq!(stats["em_body_parts"]["rows"], 3, "2.7 MB in 1 MiB parts");
    let largest_row = edge_memory::checkpoint::sql::SqlExec::query(
        store.exec(),
        "SELECT max(length(ops)) FROM em_log",
        &[],
    )
    .unwrap();
    assert!(
        format!("{largest_row:?}").len() < 100,
        "no row holds the text whole: {largest_row:?}"
    );
    let state = pollster::block_on(store.latest(&t)).unwrap().unwrap();
    assert_eq!(state.messages[0].text(), text, "read back byte-identical");
    pollster::block_on(store.delete_thread(&t)).unwrap();
    assert_eq!(store.table_stats().unwrap()["em_body_parts"]["rows"], 0);
}

/// A history page builds its entries' states in one replay of the newest one's chain:
/// 10 entries cost about what one costs (SQLite VM steps, not time), and each entry
/// equals its own `get`, on a fork too.
#[test]
fn a_history_page_is_built_in_one_pass() {
    use edge_memory::checkpoint::{CheckpointId, CheckpointRecord, ListQuery};
    let store = support::sqlite_store();
    let engine_store = &store;
    let t = ThreadId::parse("history-pass").unwrap();
    pollster::block_on(engine_store.create_thread(&ThreadRecord::new(
        t.clone(),
        Default::default(),
        1,
    )))
    .unwrap();
    let mut parent: Option<CheckpointId> = None;
    let mut ids = Vec::new();
    for turn in 0..120 {
        let id = CheckpointId::next(parent.as_ref(), 1_000 + turn as i64, &SystemEntropy);
        let checkpoint = NewCheckpoint {
            record: CheckpointRecord {
                thread_id: t.clone(),
                checkpoint_id: id.clone(),
                parent_id: parent.clone(),
                created_at_ms: 1_000 + turn as i64,
                metadata: Default::default(),
            },
            ops: input(turn),
        };
        pollster::block_on(engine_store.put(&checkpoint)).unwrap();
        ids.push(id.clone());
        parent = Some(id);
    }
    let newest_first: Vec<CheckpointId> = ids.iter().rev().take(10).cloned().collect();
    let steps = |f: &dyn Fn()| {
        let before = store.exec().vm_steps.get();
        f();
        store.exec().vm_steps.get() - before
    };
    let one = steps(&|| {
        pollster::block_on(engine_store.get(&t, &newest_first[9])).unwrap();
    });
    let page = steps(&|| {
        let states = pollster::block_on(engine_store.states(&t, &newest_first)).unwrap();
        for (state, id) in states.iter().zip(&newest_first) {
            let alone = pollster::block_on(engine_store.get(&t, id)).unwrap();
            assert_eq!(state, &alone, "entry {id} equals its own get");
        }
    });
    let gets: u64 = newest_first.len() as u64 * one;
    let check_cost = steps(&|| {
        for id in &newest_first {
            pollster::block_on(engine_store.get(&t, id)).unwrap();
        }
    });
    let page_alone = page - check_cost;
    assert!(
        page_alone < 2 * one,
        "a page of 10 cost {page_alone} steps, one state {one} (10 gets: {gets})"
    );
    let listed = pollster::block_on(engine_store.list(
        &t,
        &ListQuery {
            before: None,
            limit: 3,
        },
    ))
    .unwrap();
    assert_eq!(listed.len(), 3);
}

/// The window a checkpointer serves from what it remembers of the last turn is the one
/// storage holds, after every kind of write: turns, replacements inside and outside the
/// window, removals, forks, rollbacks, a deletion and a new thread under the same id.
#[test]
fn what_a_checkpointer_remembers_is_what_storage_holds() {
    let store = support::sqlite_store();
    let mut engine = Engine::new(&store, &MemoryDemoResponder, &SystemClock, &SystemEntropy);
    // A window smaller than the thread: the oldest messages are outside what is
    // remembered, so what is known of their ids comes from look-ups.
    engine.context.budget.max_messages = 6;
    let engine = engine;
    let t = ThreadId::parse("remembered").unwrap();
    let create = || {
        pollster::block_on(store.create_thread(&ThreadRecord::new(t.clone(), Map::new(), 0)))
            .unwrap()
    };
    let turn = |n: usize, from: Option<CheckpointId>| {
        pollster::block_on(engine.run_turn(Turn {
            thread_id: t.clone(),
            input: input(n),
            from_checkpoint: from,
            metadata: Map::new(),
        }))
        .unwrap()
    };
    let update =
        |ops: Vec<MessageOp>| pollster::block_on(engine.update_state(&t, ops, None)).unwrap();
    let message_ids = || {
        let state = pollster::block_on(store.latest(&t)).unwrap().unwrap();
        state
            .messages
            .iter()
            .map(|m| m.id.clone())
            .collect::<Vec<_>>()
    };
    // The ids each check asks about: which exist is remembered too (looked up, or known
    // from the tail), and must follow replacements, removals and forks.
    let probes = std::cell::RefCell::new(vec!["absent".to_string()]);
    let check = |step: &str| {
        let probes = probes.borrow();
        let asked: Vec<&str> = probes.iter().map(String::as_str).collect();
        for max in [3, 8] {
            let warm = pollster::block_on(store.window(&t, None, max, &asked)).unwrap();
            let warm_record = pollster::block_on(store.get_thread(&t)).unwrap();
            store.forget_recent();
            let cold = pollster::block_on(store.window(&t, None, max, &asked)).unwrap();
            let cold_record = pollster::block_on(store.get_thread(&t)).unwrap();
            assert_eq!(warm, cold, "{step}: window of {max}");
            assert_eq!(warm_record, cold_record, "{step}: the thread's record");
        }
    };
    let set_status = |status: ThreadStatus, updated_at_ms: i64| {
        let mut record = pollster::block_on(store.get_thread(&t)).unwrap();
        record.status = status;
        record.updated_at_ms = updated_at_ms;
        record
            .metadata
            .insert("title".into(), json!(format!("{status:?}")));
        pollster::block_on(store.update_thread(&record)).unwrap();
    };
    let edited = |id: &str, text: &str| MessageOp::Upsert {
        message: edge_memory::message::Message::new(
            edge_memory::message::MessageType::Human,
            id,
            text,
        ),
    };
    create();
    for n in 1..=6 {
        turn(n, None);
        check(&format!("turn {n}"));
    }
    set_status(ThreadStatus::Busy, 1);
    check("a status and metadata update older than the head");
    set_status(ThreadStatus::Idle, i64::MAX / 2);
    check("an update newer than the head");
    turn(7, None);
    check("a turn after updates");
    let ids = message_ids();
    // Before the window: one replaced, one removed; inside it: one removed, one replaced.
    probes
        .borrow_mut()
        .extend([&ids[0], &ids[4], &ids[10], &ids[11]].into_iter().cloned());
    check("the ids asked about");
    let head = || {
        let state = pollster::block_on(store.latest(&t)).unwrap().unwrap();
        state.checkpoint.checkpoint_id
    };
    let before_removal = head();
    update(vec![MessageOp::Remove { id: ids[4].clone() }]);
    check("a removal before the window");
    update(vec![edited(&ids[11], "replaced inside the window")]);
    check("a replacement inside the window");
    update(vec![edited(&ids[0], "replaced before the window")]);
    check("a replacement before the window");
    turn(7, None);
    update(vec![MessageOp::Remove {
        id: ids[10].clone(),
    }]);
    check("a removal inside the window");
    turn(8, None);
    check("a turn after a removal");
    let first = pollster::block_on(engine.run_turn(Turn {
        thread_id: t.clone(),
        input: input(9),
        from_checkpoint: None,
        metadata: Map::new(),
    }))
    .unwrap();
    let fork_from = first.input_checkpoint.unwrap().parent_id.unwrap();
    turn(10, Some(fork_from));
    check("a fork");
    turn(11, None);
    check("a turn after a fork");
    turn(11, Some(before_removal));
    check("a fork back to before a removal");
    let newest = turn(12, None);
    let written: Vec<CheckpointId> = [newest.input_checkpoint.unwrap(), newest.checkpoint]
        .into_iter()
        .map(|c| c.checkpoint_id)
        .collect();
    pollster::block_on(store.remove_newest(&t, &written)).unwrap();
    check("a rollback");
    turn(13, None);
    check("a turn after a rollback");
    update(vec![MessageOp::RemoveAll]);
    check("everything removed");
    turn(14, None);
    check("a turn after everything was removed");
    pollster::block_on(store.delete_thread(&t)).unwrap();
    create();
    turn(15, None);
    check("a new thread under the same id");
}
