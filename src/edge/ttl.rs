//! Thread TTL (`ttl: {strategy: "delete", ttl: <minutes>}`): the thread's own object
//! deletes it when the time comes, from its alarm; no sweeper, no global scan.

use serde::{Deserialize, Serialize};

use super::thread_object::ObjectInner;
use crate::api::directory::owner_of;
use crate::api::IndexUpdate;
use crate::checkpoint::Checkpointer;
use crate::runtime::{Clock, SystemClock};
use crate::thread::ThreadId;

/// The object-storage key of the thread's expiry.
const TTL_KEY: &str = "thread_ttl";

/// A minute of TTL, in ms.
const MINUTE_MS: f64 = 60_000.0;

/// When the thread expires.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Expiry {
    thread_id: ThreadId,
    expires_at_ms: i64,
}

impl ObjectInner {
    /// Sets the thread to be deleted `minutes` from now (replacing an earlier TTL).
    pub(super) async fn set_thread_ttl(&self, thread_id: &ThreadId, minutes: f64) {
        let in_ms = (minutes * self.ttl_minute_ms()) as i64;
        let expiry = Expiry {
            thread_id: thread_id.clone(),
            expires_at_ms: SystemClock.now_ms() + in_ms,
        };
        self.store.exec().counters().count_storage_write();
        match self.state.storage().put(TTL_KEY, &expiry).await {
            Ok(()) => self.arm_alarm_within(in_ms).await,
            Err(err) => worker::console_error!("edge-memory: thread TTL not set: {err}"),
        }
    }

    /// The TTL's part of the alarm: an expired thread is deleted (its runs, its
    /// directory entry too); one not yet due keeps the alarm coming.
    pub(super) async fn ttl_alarm(&self) {
        let storage = self.state.storage();
        let Ok(Some(expiry)) = storage.get::<Expiry>(TTL_KEY).await else {
            return;
        };
        let now = SystemClock.now_ms();
        if expiry.expires_at_ms > now {
            self.arm_alarm_within(expiry.expires_at_ms - now).await;
            return;
        }
        let store = self.edge_store();
        let thread_id = &expiry.thread_id;
        if let Ok(record) = store.get_thread(thread_id).await {
            if let Err(err) = store.delete_thread(thread_id).await {
                worker::console_error!("edge-memory: expired thread not deleted: {err}");
                self.arm_alarm_within(crate::api::directory::DIRECTORY_RETRY_MS)
                    .await;
                return;
            }
            let _ = self.forget_runs(thread_id);
            let owner = owner_of(&record.metadata).map(str::to_string);
            let removal = IndexUpdate::Remove {
                thread_id: thread_id.clone(),
                owner,
            };
            self.directory_update(removal, false, false).await;
        }
        let _ = storage.delete(TTL_KEY).await;
    }

    /// A minute, in ms: with the `dev-routes` build and `DEV_MODE`, `DEV_TTL_MINUTE_MS`
    /// shortens it so the tests see a TTL expire in seconds.
    fn ttl_minute_ms(&self) -> f64 {
        #[cfg(feature = "dev-routes")]
        {
            let var = |name: &str| self.env.var(name).ok().map(|v| v.to_string());
            if var("DEV_MODE").as_deref() == Some("true") {
                if let Some(ms) = var("DEV_TTL_MINUTE_MS").and_then(|v| v.parse::<f64>().ok()) {
                    return ms;
                }
            }
        }
        MINUTE_MS
    }
}
