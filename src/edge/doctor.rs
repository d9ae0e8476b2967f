//! The memory doctor at the edge: each client's record lives in its own diagnostics
//! object ([`crate::api::diagnostics::object_name`]); an isolate judges requests from the
//! record as it last synced it, and syncs after the response (never on a turn's path).

use worker::Env;

use super::objects::call_object;
use super::thread_object::{decode, ObjectInner};
use crate::api::diagnostics::{object_name, ClientKey, ClientRecord, Delta, Detectors};
use crate::api::{Body, HttpResponse};
use crate::error::Error;
use crate::runtime::{Clock, SystemClock};

/// The object-storage key of a diagnostics object's record (one value: a few KB at
/// most, bounded by the windows).
const RECORD_KEY: &str = "doctor_record";

thread_local! {
    /// The memory doctor's detectors: a bounded view of each client this isolate serves.
    pub(super) static DETECTORS: Detectors = Detectors::new();
}

/// Sends the facts this isolate saw of `client` to its diagnostics object and takes back
/// the merged record, which becomes this isolate's view of the client. A failed sync
/// drops those facts (they are a window over recent traffic, not data): logged, never
/// the client's problem.
pub(super) async fn sync(env: &Env, client: &ClientKey) -> Result<ClientRecord, Error> {
    let delta = DETECTORS.with(|d| d.take_pending(client, SystemClock.now_ms()));
    let merged = send(env, client, &delta).await;
    DETECTORS.with(|d| d.synced(client, merged.as_ref().ok().cloned()));
    if let Err(err) = &merged {
        worker::console_error!(
            "edge-memory: diagnostics of {} not synced: {err}",
            client.as_str()
        );
    }
    merged
}

async fn send(env: &Env, client: &ClientKey, delta: &Delta) -> Result<ClientRecord, Error> {
    let name = object_name(client);
    let response = call_object(env, &name, "/doctor/sync", delta.to_json().to_string()).await?;
    match response.body {
        Body::Json(value) if response.status == 200 => Ok(ClientRecord::from_json(&value)),
        _ => Err(Error::backend(format_args!(
            "diagnostics object {name} answered {}",
            response.status
        ))),
    }
}

impl ObjectInner {
    /// A diagnostics object's route: merges one isolate's facts into the client's record
    /// (one stored value, written only when there is something new) and answers it.
    pub(super) async fn doctor_route(&self, body: &str) -> HttpResponse {
        match self.doctor_merge(body).await {
            Ok(record) => HttpResponse::ok(record.to_json()),
            Err(err) => HttpResponse::error(err),
        }
    }

    async fn doctor_merge(&self, body: &str) -> Result<ClientRecord, Error> {
        let delta = Delta::from_json(&decode::<serde_json::Value>(body)?);
        let storage = self.state.storage();
        let kept = storage
            .get::<String>(RECORD_KEY)
            .await
            .map_err(Error::backend)?;
        let mut record = match kept {
            Some(text) => ClientRecord::from_json(&crate::json::from_text(&text)?),
            None => ClientRecord::default(),
        };
        if !delta.is_empty() {
            record.merge(&delta);
            let text = record.to_json().to_string();
            storage
                .put(RECORD_KEY, &text)
                .await
                .map_err(Error::backend)?;
        }
        Ok(record)
    }
}
