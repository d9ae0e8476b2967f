//! The API's backend of Durable Objects: thread calls go to the thread's own object,
//! directory updates and queries to the directory shards' objects.

use wasm_bindgen::JsValue;
use worker::{Env, Method, Response, ResponseBody};

use super::store::EdgeStore;
use super::{directory, EdgeConfig, API_CACHE_CONTROL, API_CONTENT_ENCODING};
use crate::api::assistants::AssistantCall;
use crate::api::directory::Shard;
use crate::api::{self, HttpResponse, IndexUpdate, RunRequest, ThreadCall};
use crate::checkpoint::assistants::Assistant;
use crate::checkpoint::memory::MemoryCheckpointer;
use crate::checkpoint::ThreadSearch;
use crate::error::Error;
use crate::thread::ThreadRecord;

/// The Durable Object namespace binding of [`ThreadObject`](super::thread_object::ThreadObject) in
/// wrangler.toml.
const THREADS_BINDING: &str = "THREADS";

/// Thread calls go to the thread's own Durable Object; directory shards are more objects
/// of the same class, under names no thread id can take.
pub(super) struct DurableObjects<'a> {
    pub(super) env: &'a Env,
    pub(super) config: &'a EdgeConfig,
}

/// A response: plain data, or a run's event stream passed through from its object.
pub(super) enum Served {
    /// Plain data.
    Http(HttpResponse),
    /// A run's event stream.
    Stream(Response),
}

/// Marks an object's response as a run's event stream (not a JSON [`HttpResponse`]).
pub(super) const STREAM_HEADER: &str = "x-edge-memory-stream";

impl DurableObjects<'_> {
    /// Sends a run to its thread's object. A streamed run comes back as the object's
    /// event stream, passed through as it is produced.
    pub(super) async fn run(&self, mut call: ThreadCall) -> Result<Served, Error> {
        if let api::ThreadCommand::Run(run) = &mut call.command {
            api::assistants::resolve(self, run).await?;
        }
        let payload = crate::json::to_text(&call).map_err(Error::backend)?;
        let mut response =
            fetch_object(self.env, call.thread_id.as_str(), "/call", payload).await?;
        let headers = response.headers().clone();
        if headers.get(STREAM_HEADER).ok().flatten().is_none() {
            let text = response.text().await.map_err(Error::backend)?;
            let http: HttpResponse = crate::json::from_text(&text).map_err(Error::backend)?;
            return Ok(Served::Http(http));
        }
        let ResponseBody::Stream(body) = response.body() else {
            return Err(Error::backend("a streamed run has no stream"));
        };
        let out = Response::builder().with_status(200).stream(body.clone());
        let out_headers = out.headers();
        for (name, value) in headers.entries() {
            if name != STREAM_HEADER {
                out_headers.set(&name, &value).map_err(Error::backend)?;
            }
        }
        out_headers
            .set("cache-control", API_CACHE_CONTROL)
            .map_err(Error::backend)?;
        out_headers
            .set("content-encoding", API_CONTENT_ENCODING)
            .map_err(Error::backend)?;
        Ok(Served::Stream(out))
    }
}

impl api::Backend for DurableObjects<'_> {
    async fn call(&self, call: ThreadCall) -> HttpResponse {
        let result = match crate::json::to_text(&call) {
            Ok(payload) => call_object(self.env, call.thread_id.as_str(), "/call", payload).await,
            Err(e) => Err(Error::backend(e)),
        };
        result.into()
    }

    async fn call_stateless(&self, run: RunRequest) -> HttpResponse {
        // Nothing is kept, so no object is needed: run in this isolate.
        let config = self.config.for_run(&run);
        match config.model(self.env) {
            Ok(model) => {
                let scratch = MemoryCheckpointer::new();
                let store = EdgeStore::Memory(&scratch);
                api::execute_stateless(run, &config.engine(&store, &model)).await
            }
            Err(err) => HttpResponse::error(err),
        }
    }

    async fn store(&self, plan: api::store::StorePlan) -> HttpResponse {
        super::store_shard::serve(self.env, plan).await
    }

    async fn index_apply(&self, shard: &Shard, update: &IndexUpdate) -> Result<(), Error> {
        directory::shard_apply(self.env, shard, update).await
    }

    async fn index_search(
        &self,
        shard: &Shard,
        query: &ThreadSearch,
    ) -> Result<Vec<ThreadRecord>, Error> {
        directory::shard_query(self.env, shard, "/index/search", query).await
    }

    async fn index_count(&self, shard: &Shard, query: &ThreadSearch) -> Result<usize, Error> {
        directory::shard_query(self.env, shard, "/index/count", query).await
    }

    async fn assistant_call(&self, call: AssistantCall) -> HttpResponse {
        super::assistants::assistant_call(self.env, call).await
    }

    async fn find_assistant(
        &self,
        assistant_id: &str,
        owner: Option<&str>,
    ) -> Result<Assistant, Error> {
        super::assistants::find_assistant(self, assistant_id, owner).await
    }

    async fn run_threads(
        &self,
        shard: &Shard,
        run_ids: &[String],
    ) -> Result<Vec<crate::thread::ThreadId>, Error> {
        directory::shard_query(self.env, shard, "/index/runs", &run_ids).await
    }
}

/// Sends `payload` to the object named `name` at `path`.
pub(super) async fn fetch_object(
    env: &Env,
    name: &str,
    path: &str,
    payload: String,
) -> Result<Response, Error> {
    let namespace = env
        .durable_object(THREADS_BINDING)
        .map_err(Error::backend)?;
    let stub = namespace
        .id_from_name(name)
        .and_then(|id| id.get_stub())
        .map_err(Error::backend)?;
    let url = format!("https://thread-object.internal{path}");
    let body = JsValue::from(payload);
    let request = super::outgoing::outgoing_request(&url, Method::Post, None, Some(&body))
        .map_err(Error::backend)?;
    stub.fetch_with_request(request)
        .await
        .map_err(Error::backend)
}

/// Sends `payload` to the object named `name` at `path`; it answers with an
/// [`HttpResponse`] as JSON.
pub(super) async fn call_object(
    env: &Env,
    name: &str,
    path: &str,
    payload: String,
) -> Result<HttpResponse, Error> {
    let text = fetch_object(env, name, path, payload)
        .await?
        .text()
        .await
        .map_err(Error::backend)?;
    crate::json::from_text(&text).map_err(Error::backend)
}
