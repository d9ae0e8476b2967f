//! Assistants on Durable Objects: each owner's assistants object answers `/assistants`
//! on its SQLite, and the worker isolate keeps the run cache (see
//! [`crate::api::assistants::cache`] for the rule and its staleness bound).

use std::cell::RefCell;

use worker::Env;

use super::objects::call_object;
use super::thread_object::{decode, ObjectInner};
use crate::api::assistants::cache::AssistantCache;
use crate::api::assistants::{self, AssistantCall};
use crate::api::{Backend, HttpResponse};
use crate::checkpoint::assistants::Assistant;
use crate::error::Error;
use crate::runtime::{Clock, SystemClock};

thread_local! {
    /// The assistants this isolate's runs used lately.
    static RUN_CACHE: RefCell<AssistantCache> = RefCell::new(AssistantCache::new());
}

impl ObjectInner {
    /// An assistants object's route: a call on the assistants it keeps.
    pub(super) fn assistants_route(&self, body: &str) -> HttpResponse {
        match decode::<AssistantCall>(body) {
            Ok(call) => assistants::execute(&self.assistants, call, SystemClock.now_ms()),
            Err(err) => HttpResponse::error(err),
        }
    }
}

/// Sends `call` to its owner's assistants object; a change makes this isolate's run
/// cache forget the assistant at once.
pub(super) async fn assistant_call(env: &Env, call: AssistantCall) -> HttpResponse {
    let owner = call.owner.clone();
    let changed = call.changes().map(str::to_string);
    let object = AssistantCall::object_name(owner.as_deref());
    let response = match crate::json::to_text(&call) {
        Ok(payload) => call_object(env, &object, "/assistants", payload).await,
        Err(e) => Err(Error::backend(e)),
    };
    if let Some(assistant_id) = changed {
        RUN_CACHE.with(|cache| cache.borrow_mut().forget(owner.as_deref(), &assistant_id));
    }
    response.into()
}

/// A run's assistant: from this isolate's cache while fresh, else from its object.
pub(super) async fn find_assistant<B: Backend>(
    backend: &B,
    assistant_id: &str,
    owner: Option<&str>,
) -> Result<Assistant, Error> {
    let now = SystemClock.now_ms();
    if let Some(cached) = RUN_CACHE.with(|cache| cache.borrow().get(owner, assistant_id, now)) {
        return Ok(cached);
    }
    let fetched = assistants::fetch_stored(backend, assistant_id, owner).await?;
    RUN_CACHE.with(|cache| cache.borrow_mut().put(owner, fetched.clone(), now));
    Ok(fetched)
}
