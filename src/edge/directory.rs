//! The thread directory on Durable Objects: shard objects answer `/index/*`, and each
//! thread object sends its own record to its shard off the response path (see
//! [`crate::api::directory`] for the rules).

use std::rc::Rc;

use worker::Env;

use super::objects::call_object;
use super::thread_object::{decode, ObjectInner};
use crate::api::directory::{owner_of, Shard, SyncAction, DIRECTORY_RETRY_MS};
use crate::api::{Body, HttpResponse, IndexUpdate};
use crate::checkpoint::{Checkpointer, ThreadIndex, ThreadSearch};
use crate::error::Error;
use crate::runtime::{Clock, SystemClock};
use crate::thread::ThreadId;

/// The object-storage key that names the thread an armed alarm is for: an alarm may go
/// off in a fresh instance that has not seen a request, and in KV mode the object's
/// SQLite holds no thread record to find it by.
const ALARM_THREAD_KEY: &str = "directory_thread";

/// Runs an object remembers having recorded (a run writes several checkpoints; only
/// its first needs the directory). Bounded: an older run recorded again is harmless.
pub(super) const RECORDED_RUNS_MAX: usize = 64;

/// The thread an alarm sends the record of.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct AlarmThread {
    thread_id: ThreadId,
    owner: Option<String>,
    /// When the record is due at its shard (ms). The object's one alarm also serves its
    /// runs and TTL: an alarm before this time sends nothing.
    #[serde(default)]
    due_ms: i64,
}

/// Sends `update` to its directory shard.
pub(super) async fn shard_apply(
    env: &Env,
    shard: &Shard,
    update: &IndexUpdate,
) -> Result<(), Error> {
    let payload = crate::json::to_text(update).map_err(Error::backend)?;
    let response = call_object(env, &shard.object_name(), "/index/apply", payload).await?;
    match response.status {
        200..=299 => Ok(()),
        status => Err(Error::backend(format_args!(
            "directory shard {} answered {status}",
            shard.object_name()
        ))),
    }
}

/// Asks a shard object at `path` (`/index/search`, `/index/count`) and decodes its JSON.
pub(super) async fn shard_query<T: serde::de::DeserializeOwned>(
    env: &Env,
    shard: &Shard,
    path: &str,
    query: &impl serde::Serialize,
) -> Result<T, Error> {
    let payload = crate::json::to_text(query).map_err(Error::backend)?;
    let response = call_object(env, &shard.object_name(), path, payload).await?;
    match response.body {
        Body::Json(value) if response.status == 200 => {
            serde_json::from_value(value).map_err(Error::backend)
        }
        _ => Err(Error::backend(format_args!(
            "directory shard {} answered {} to {path}",
            shard.object_name(),
            response.status
        ))),
    }
}

impl ObjectInner {
    /// A directory shard object's routes.
    pub(super) async fn directory_route(&self, path: &str, body: &str) -> HttpResponse {
        let directory = &self.directory;
        let result = match path {
            "/index/apply" => match decode::<IndexUpdate>(body) {
                Ok(IndexUpdate::Upsert { record }) => directory
                    .index_upsert(&record)
                    .await
                    .map(|()| serde_json::Value::Null),
                Ok(IndexUpdate::Remove { thread_id, .. }) => directory
                    .index_remove(&thread_id)
                    .await
                    .map(|()| serde_json::Value::Null),
                Ok(IndexUpdate::Run {
                    run_id, thread_id, ..
                }) => directory
                    .index_run(&run_id, &thread_id)
                    .await
                    .map(|()| serde_json::Value::Null),
                Err(err) => Err(err),
            },
            "/index/search" => match decode::<ThreadSearch>(body) {
                Ok(query) => directory
                    .search_threads(&query)
                    .await
                    .and_then(|records| serde_json::to_value(records).map_err(Error::backend)),
                Err(err) => Err(err),
            },
            "/index/runs" => match decode::<Vec<String>>(body) {
                Ok(run_ids) => directory
                    .threads_of_runs(&run_ids)
                    .await
                    .and_then(|ids| serde_json::to_value(ids).map_err(Error::backend)),
                Err(err) => Err(err),
            },
            "/index/count" => match decode::<ThreadSearch>(body) {
                Ok(query) => directory
                    .count_threads(&query)
                    .await
                    .map(|count| serde_json::json!(count)),
                Err(err) => Err(err),
            },
            other => Err(Error::backend(format_args!("no directory route {other}"))),
        };
        match result {
            Ok(serde_json::Value::Null) => HttpResponse::no_content(),
            Ok(value) => HttpResponse::ok(value),
            Err(err) => HttpResponse::error(err),
        }
    }

    /// After a change: sends the record to its directory shard now (a thread call awaits
    /// this, so the caller's next search sees it; a run's task does it after answering),
    /// or leaves it to the alarm (coalesced turns, retries). `reread`: the update carries
    /// the record as a run began, so the one sent now is read back (status and time as
    /// the run left them) — only when it goes now: an alarm reads it when it fires.
    /// `quiet`: a run's update that changed only the thread's time.
    pub(super) async fn directory_update(&self, update: IndexUpdate, reread: bool, quiet: bool) {
        let action =
            self.directory_sync
                .borrow_mut()
                .on_change(&update, quiet, SystemClock.now_ms());
        match action {
            SyncAction::SendNow => {
                let update = match update {
                    IndexUpdate::Upsert { record } if reread => {
                        match self.edge_store().get_thread(&record.thread_id).await {
                            Ok(fresh) => IndexUpdate::Upsert { record: fresh },
                            Err(_) => IndexUpdate::Upsert { record },
                        }
                    }
                    update => update,
                };
                self.directory_send(update).await;
            }
            SyncAction::ArmAlarm { in_ms } => self.arm_alarm(&update, in_ms).await,
            SyncAction::Defer { in_ms } => self.defer(&update, in_ms).await,
            SyncAction::Wait => {}
        }
    }

    /// A fresh instance's turn that moved only the thread's time: an alarm already
    /// pending for the thread will carry it (read from storage: a read, not a write);
    /// else one is set `in_ms` from now.
    async fn defer(&self, update: &IndexUpdate, in_ms: i64) {
        let now = SystemClock.now_ms();
        let due = now + in_ms;
        let pending = self
            .state
            .storage()
            .get::<AlarmThread>(ALARM_THREAD_KEY)
            .await;
        // An alarm long overdue is not trusted to be coming: one is set again.
        let trusted = |p: &AlarmThread| p.due_ms <= due && p.due_ms > now - DIRECTORY_RETRY_MS;
        match pending {
            Ok(Some(pending)) if trusted(&pending) => {
                self.directory_sync.borrow_mut().deferred_to(pending.due_ms);
            }
            _ => {
                self.directory_sync.borrow_mut().deferred_to(due);
                self.arm_alarm(update, in_ms).await;
            }
        }
    }

    /// A checkpointer put of run `run_id`: the run's shard learns which thread it wrote
    /// to, once per run and object instance, before the put is acknowledged (so a
    /// `delete_for_runs` right after finds it). A failure answers 503: the client retries
    /// the put (idempotent), which records the run again.
    pub(super) async fn record_run(&self, update: IndexUpdate) -> Result<(), Error> {
        let IndexUpdate::Run { run_id, .. } = &update else {
            return Ok(());
        };
        if self.recorded_runs.borrow().contains(run_id) {
            return Ok(());
        }
        let shard = Shard::of_update(&update);
        if let Err(err) = faults::deliver(self, &shard, &update).await {
            return Err(Error::Unavailable {
                reason: format!("the run directory could not record run {run_id}: {err}"),
            });
        }
        let mut recorded = self.recorded_runs.borrow_mut();
        if recorded.len() >= RECORDED_RUNS_MAX {
            recorded.pop_front();
        }
        recorded.push_back(run_id.clone());
        Ok(())
    }

    /// A run starts on this thread: a new thread (or newly stamped metadata) goes to
    /// the directory now, in the background; the rest waits for the run's end.
    pub(super) fn directory_run_started(self: &Rc<Self>, update: IndexUpdate) {
        let action = self
            .directory_sync
            .borrow_mut()
            .on_run_start(&update, SystemClock.now_ms());
        self.directory_act(action, update);
    }

    fn directory_act(self: &Rc<Self>, action: SyncAction, update: IndexUpdate) {
        let inner = self.clone();
        match action {
            SyncAction::SendNow => self.state.wait_until(async move {
                inner.directory_send(update).await;
            }),
            SyncAction::ArmAlarm { in_ms } => self.state.wait_until(async move {
                inner.arm_alarm(&update, in_ms).await;
            }),
            SyncAction::Defer { in_ms } => self.state.wait_until(async move {
                inner.defer(&update, in_ms).await;
            }),
            SyncAction::Wait => {}
        }
    }

    /// Sends `update`; a failure arms the alarm to send the newest record later.
    async fn directory_send(&self, update: IndexUpdate) {
        let shard = Shard::of_update(&update);
        let delivered = faults::deliver(self, &shard, &update).await;
        if let Err(err) = &delivered {
            worker::console_warn!("edge-memory: directory update deferred: {err}");
        }
        let next = self
            .directory_sync
            .borrow_mut()
            .on_sent(delivered.is_ok(), SystemClock.now_ms());
        if let SyncAction::ArmAlarm { in_ms } = next {
            self.arm_alarm(&update, in_ms).await;
        }
    }

    /// Sets the alarm, remembering which thread it is for.
    async fn arm_alarm(&self, update: &IndexUpdate, in_ms: i64) {
        let thread = match update {
            IndexUpdate::Upsert { record } => AlarmThread {
                thread_id: record.thread_id.clone(),
                owner: owner_of(&record.metadata).map(str::to_string),
                due_ms: 0,
            },
            IndexUpdate::Remove { thread_id, owner } => AlarmThread {
                thread_id: thread_id.clone(),
                owner: owner.clone(),
                due_ms: 0,
            },
            // Runs are recorded before their put is answered, never from the alarm.
            IndexUpdate::Run { .. } => return,
        };
        self.arm_alarm_for(&thread, in_ms).await;
    }

    async fn arm_alarm_for(&self, thread: &AlarmThread, in_ms: i64) {
        let thread = &AlarmThread {
            due_ms: SystemClock.now_ms() + in_ms.max(0),
            ..thread.clone()
        };
        let storage = self.state.storage();
        self.store.exec().counters().count_storage_write();
        match storage.put(ALARM_THREAD_KEY, thread).await {
            Ok(()) => self.arm_alarm_within(in_ms).await,
            Err(err) => worker::console_error!("edge-memory: directory alarm not set: {err}"),
        }
    }

    /// The alarm: sends the thread's record as it is now (or its removal).
    pub(super) async fn directory_alarm(&self) {
        let storage = self.state.storage();
        let Ok(Some(thread)) = storage.get::<AlarmThread>(ALARM_THREAD_KEY).await else {
            return;
        };
        let now = SystemClock.now_ms();
        if thread.due_ms > now {
            // The alarm went off for the runs or the TTL: the record waits for its time.
            self.arm_alarm_within(thread.due_ms - now).await;
            return;
        }
        let update = match self.edge_store().get_thread(&thread.thread_id).await {
            Ok(record) => IndexUpdate::Upsert { record },
            Err(Error::NotFound { .. }) => IndexUpdate::Remove {
                thread_id: thread.thread_id,
                owner: thread.owner,
            },
            Err(err) => {
                worker::console_error!("edge-memory: directory alarm cannot read: {err}");
                self.arm_alarm_for(&thread, DIRECTORY_RETRY_MS).await;
                return;
            }
        };
        self.directory_sync
            .borrow_mut()
            .on_alarm(&update, SystemClock.now_ms());
        // Nothing is due once this goes: a failed send arms the alarm (and the key) again.
        self.store.exec().counters().count_storage_write();
        let _ = storage.delete(ALARM_THREAD_KEY).await;
        self.directory_send(update).await;
    }
}

/// Delivery, with the dev-mode fault switch of the directory nemesis test.
mod faults {
    use super::*;

    /// Delivers `update` to `shard`. With the `dev-routes` feature and `DEV_MODE`,
    /// `DEV_DIRECTORY_FAULTS` (e.g. `drop=0.3,delay=400,stale=0.3`) drops updates (the
    /// sender sees a failure and retries from its alarm), delays them by up to `delay`
    /// ms (so they arrive out of order), and sends the previous copy again after the new
    /// one (a stale duplicate, which versioning must ignore).
    pub(super) async fn deliver(
        inner: &ObjectInner,
        shard: &Shard,
        update: &IndexUpdate,
    ) -> Result<(), Error> {
        #[cfg(feature = "dev-routes")]
        if let Some(faults) = dev::Faults::from_env(&inner.env) {
            return dev::deliver_with_faults(inner, shard, update, &faults).await;
        }
        shard_apply(&inner.env, shard, update).await
    }

    #[cfg(feature = "dev-routes")]
    mod dev {
        use super::*;
        use crate::runtime::{Entropy, SystemEntropy};

        /// The fault switch's settings.
        pub(super) struct Faults {
            drop: f64,
            delay_ms: u64,
            stale: f64,
        }

        impl Faults {
            pub(super) fn from_env(env: &Env) -> Option<Faults> {
                let dev_mode = env.var("DEV_MODE").ok()?.to_string() == "true";
                let spec = env.var("DEV_DIRECTORY_FAULTS").ok()?.to_string();
                if !dev_mode || spec.is_empty() {
                    return None;
                }
                let mut faults = Faults {
                    drop: 0.0,
                    delay_ms: 0,
                    stale: 0.0,
                };
                for part in spec.split(',') {
                    let (key, value) = part.split_once('=')?;
                    match key.trim() {
                        "drop" => faults.drop = value.trim().parse().ok()?,
                        "delay" => faults.delay_ms = value.trim().parse().ok()?,
                        "stale" => faults.stale = value.trim().parse().ok()?,
                        _ => return None,
                    }
                }
                Some(faults)
            }
        }

        /// A uniform random number in [0, 1).
        fn chance() -> f64 {
            let mut bytes = [0u8; 4];
            SystemEntropy.fill(&mut bytes);
            f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
        }

        pub(super) async fn deliver_with_faults(
            inner: &ObjectInner,
            shard: &Shard,
            update: &IndexUpdate,
            faults: &Faults,
        ) -> Result<(), Error> {
            if faults.delay_ms > 0 {
                let wait = (chance() * faults.delay_ms as f64) as u64;
                worker::Delay::from(std::time::Duration::from_millis(wait)).await;
            }
            if chance() < faults.drop {
                return Err(Error::backend("dropped by DEV_DIRECTORY_FAULTS"));
            }
            shard_apply(&inner.env, shard, update).await?;
            let previous = inner.directory_previous.replace(Some(update.clone()));
            if let Some(previous) = previous.filter(|_| chance() < faults.stale) {
                let _ = shard_apply(&inner.env, &Shard::of_update(&previous), &previous).await;
            }
            Ok(())
        }
    }
}
