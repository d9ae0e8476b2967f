//! The model the worker runs, and the ports model providers use on Workers: `fetch`
//! for OpenAI-compatible servers, the `AI` binding for Workers AI. Both own the
//! timeouts (`MODEL_TIMEOUT_MS`): no response headers, or no next chunk, within it is a
//! timeout, and the request is aborted.

use std::future::Future;
use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::StreamExt;
use wasm_bindgen::{JsCast, JsValue};
use worker::{AbortController, ByteStream, Delay, Env, Fetch, Headers, Method};

use crate::chat::demo::MemoryDemoResponder;
use crate::chat::openai::OpenAiModel;
use crate::chat::upstream::{AiBinding, ByteSource, HttpClient, UpstreamRequest, UpstreamResponse};
use crate::chat::workers_ai::WorkersAiModel;
use crate::chat::{ChatModel, DeltaSink, ReplyEnd};
use crate::config::ModelChoice;
use crate::error::{Error, Result};
use crate::message::Message;

/// The binding name of Workers AI in wrangler.toml.
pub(crate) const AI_BINDING: &str = "AI";

/// `Some(output)`, or `None` when `future` took longer than `timeout_ms`.
async fn within<T>(timeout_ms: u64, future: impl Future<Output = T>) -> Option<T> {
    let future = std::pin::pin!(future);
    let delay = Delay::from(Duration::from_millis(timeout_ms));
    match select(future, delay).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(_) => None,
    }
}

/// A streamed body with a per-chunk timeout; aborts its request on a timeout.
pub(crate) struct TimedBody {
    stream: Option<ByteStream>,
    timeout_ms: u64,
    abort: Option<AbortController>,
}

impl ByteSource for TimedBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(None);
        };
        match within(self.timeout_ms, stream.next()).await {
            Some(Some(Ok(chunk))) => Ok(Some(chunk)),
            Some(Some(Err(e))) => Err(Error::Upstream {
                reason: format!("the model's response broke off ({e})"),
            }),
            Some(None) => Ok(None),
            None => {
                if let Some(abort) = self.abort.take() {
                    abort.abort();
                }
                self.stream = None;
                Err(Error::UpstreamTimeout {
                    waited_ms: self.timeout_ms,
                })
            }
        }
    }
}

/// [`HttpClient`] over the Workers `fetch`.
pub(crate) struct FetchClient {
    pub(crate) timeout_ms: u64,
}

impl HttpClient for FetchClient {
    type Body = TimedBody;

    async fn post(&self, request: &UpstreamRequest) -> Result<UpstreamResponse<TimedBody>> {
        let headers = Headers::new();
        for (name, value) in &request.headers {
            headers
                .set(name, value)
                .map_err(|e| Error::backend(format_args!("header {name}: {e}")))?;
        }
        // `worker::RequestInit` leaves an empty header list unset: so does this.
        let headers = (!request.headers.is_empty()).then_some(&headers);
        let body = JsValue::from_str(&request.body);
        let outgoing =
            super::outgoing::outgoing_request(&request.url, Method::Post, headers, Some(&body))
                .map_err(|e| Error::Upstream {
                    reason: format!("OPENAI_BASE_URL gives an invalid URL {} ({e})", request.url),
                })?;
        let abort = AbortController::default();
        let fetch = Fetch::Request(outgoing);
        let signal = abort.signal();
        let sent = fetch.send_with_signal(&signal);
        let mut response = match within(self.timeout_ms, sent).await {
            Some(Ok(response)) => response,
            Some(Err(e)) => {
                return Err(Error::Upstream {
                    reason: format!("could not reach {} ({e})", request.url),
                })
            }
            None => {
                abort.abort();
                return Err(Error::UpstreamTimeout {
                    waited_ms: self.timeout_ms,
                });
            }
        };
        let header = |name: &str| response.headers().get(name).ok().flatten();
        let content_type = header("content-type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let retry_after = header("retry-after");
        Ok(UpstreamResponse {
            status: response.status_code(),
            content_type,
            retry_after,
            body: TimedBody {
                stream: response.stream().ok(),
                timeout_ms: self.timeout_ms,
                abort: Some(abort),
            },
        })
    }
}

/// [`AiBinding`] over `env.AI`, called directly: `AI.run(model, input)` with the input
/// as a plain JavaScript object.
pub(crate) struct WorkerAi {
    binding: JsValue,
    timeout_ms: u64,
}

impl WorkerAi {
    /// `env.AI` with `timeout_ms` per wait; `setting` names what needs it in the error.
    pub(crate) fn from_env(env: &Env, timeout_ms: u64, setting: &str) -> Result<Self> {
        let binding = js_sys::Reflect::get(env, &AI_BINDING.into())
            .ok()
            .filter(|b| !b.is_undefined())
            .ok_or_else(|| {
                Error::backend(format_args!(
                    "{setting} needs an [ai] binding named {AI_BINDING}"
                ))
            })?;
        Ok(WorkerAi {
            binding,
            timeout_ms,
        })
    }

    /// What `AI.run(model, input)` resolves to, within the timeout.
    pub(crate) async fn output(&self, model: &str, input: &serde_json::Value) -> Result<JsValue> {
        let js_input = js_sys::JSON::parse(&input.to_string())
            .map_err(|e| Error::backend(format_args!("AI input: {e:?}")))?;
        let run: js_sys::Function = js_sys::Reflect::get(&self.binding, &"run".into())
            .and_then(|f| f.dyn_into())
            .map_err(|_| Error::Upstream {
                reason: format!("the {AI_BINDING} binding has no run()"),
            })?;
        // Reflect.apply, not `run.call(..)`: an RPC binding's `run` answers any property,
        // `call` included, as a remote method.
        let args = js_sys::Array::of2(&model.into(), &js_input);
        let returned =
            js_sys::Reflect::apply(&run, &self.binding, &args).map_err(|e| Error::Upstream {
                reason: format!("Workers AI refused the call: {}", js_error(&e)),
            })?;
        // A promise, or a thenable (an RPC binding's answer).
        let promise = js_sys::Promise::resolve(&returned);
        match within(
            self.timeout_ms,
            worker::wasm_bindgen_futures::JsFuture::from(promise),
        )
        .await
        {
            Some(Ok(output)) => Ok(output),
            Some(Err(e)) => Err(Error::Upstream {
                reason: format!("Workers AI failed: {}", js_error(&e)),
            }),
            None => Err(Error::UpstreamTimeout {
                waited_ms: self.timeout_ms,
            }),
        }
    }
}

impl AiBinding for WorkerAi {
    type Body = TimedBody;

    async fn run(&self, model: &str, input: &serde_json::Value) -> Result<TimedBody> {
        let output = self.output(model, input).await?;
        let stream: worker::web_sys::ReadableStream =
            output.dyn_into().map_err(|_| Error::Upstream {
                reason: "Workers AI did not answer with a stream".into(),
            })?;
        Ok(TimedBody {
            stream: Some(ByteStream::from(stream)),
            timeout_ms: self.timeout_ms,
            abort: None,
        })
    }
}

fn js_error(value: &JsValue) -> String {
    value
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| value.as_string())
        .unwrap_or_else(|| "unknown error".into())
}

/// A provider of replies: one type for every provider, so the API is compiled once.
pub(crate) enum Provider {
    Demo(MemoryDemoResponder),
    OpenAi(OpenAiModel<FetchClient>),
    WorkersAi(WorkersAiModel<WorkerAi>),
}

/// The model of one request: its provider, and the deadline of a whole reply.
pub(crate) struct EdgeModel {
    provider: Provider,
    /// `MODEL_DEADLINE_MS`.
    deadline_ms: u64,
}

impl EdgeModel {
    /// The built-in responder (no network, no deadline needed).
    pub(crate) fn demo() -> Self {
        EdgeModel {
            provider: Provider::Demo(MemoryDemoResponder),
            deadline_ms: u64::MAX,
        }
    }

    /// The model `choice` names, reached through `env`, with `MODEL_TIMEOUT_MS` (each
    /// wait) and `MODEL_DEADLINE_MS` (the whole reply).
    pub(crate) fn new(
        choice: &ModelChoice,
        (timeout_ms, deadline_ms): (u64, u64),
        env: &Env,
    ) -> Result<Self> {
        Ok(EdgeModel {
            provider: Provider::new(choice, timeout_ms, env)?,
            deadline_ms,
        })
    }
}

impl Provider {
    fn new(choice: &ModelChoice, timeout_ms: u64, env: &Env) -> Result<Self> {
        Ok(match choice {
            ModelChoice::Demo => Provider::Demo(MemoryDemoResponder),
            ModelChoice::OpenAi(config) => Provider::OpenAi(OpenAiModel {
                config: config.clone(),
                http: FetchClient { timeout_ms },
            }),
            ModelChoice::WorkersAi {
                model,
                max_tokens,
                temperature,
            } => Provider::WorkersAi(WorkersAiModel {
                model: model.clone(),
                max_tokens: *max_tokens,
                temperature: temperature.clone(),
                ai: WorkerAi::from_env(env, timeout_ms, "MODEL_PROVIDER=workers-ai")?,
            }),
        })
    }
}

impl ChatModel for EdgeModel {
    fn name(&self) -> &str {
        match &self.provider {
            Provider::Demo(m) => m.name(),
            Provider::OpenAi(m) => m.name(),
            Provider::WorkersAi(m) => m.name(),
        }
    }

    async fn stream(&self, context: &[Message], sink: &dyn DeltaSink) -> Result<ReplyEnd> {
        let reply = async {
            match &self.provider {
                Provider::Demo(m) => m.stream(context, sink).await,
                Provider::OpenAi(m) => m.stream(context, sink).await,
                Provider::WorkersAi(m) => m.stream(context, sink).await,
            }
        };
        if let Provider::Demo(_) = self.provider {
            return reply.await;
        }
        // Dropping the reply's future drops its body stream: the upstream is let go.
        within(self.deadline_ms, reply)
            .await
            .unwrap_or(Err(Error::UpstreamDeadline {
                deadline_ms: self.deadline_ms,
            }))
    }
}
