//! The memory doctor: the symptom map of "memory does not persist" (a new thread per
//! request, a changing thread id, memory that forgets, checkpoints written and never
//! read), diagnosed from the traffic the worker already sees.
//!
//! Each request is reduced to an [`Observation`] (from its plan: which thread, how a run
//! treats an unknown thread, whether its message reads like a follow-up) and, once
//! answered, an [`Outcome`] (its status and code, the turn it made, a saver read's hit or
//! miss). Each client ([`ClientKey`]) has its own diagnostics object holding its record
//! ([`ClientRecord`]: a bounded window of runs and saver reads, the hints it was given).
//! [`Detectors`] judge each request in the isolate from that record as last synced plus
//! the facts seen since: no storage is read for it and no object is added to a turn's
//! path; the facts go to the object after the response, at most once per client per
//! [`SYNC_INTERVAL_MS`]. A hint ([`HintCode`]) goes back in [`HINT_HEADER`], is logged
//! once per client per interval, and is listed by `GET /diagnostics` (from the object).

use serde_json::Value;

use super::{
    Body, HttpResponse, IfNotExists, Plan, SaverCommand, ServerInfo, ThreadCall, ThreadCommand,
};
use crate::message::{MessageOp, MessageType};

mod detect;
mod record;

pub use detect::{Detectors, Verdict, CLIENTS_MAX, LOG_INTERVAL_MS};
pub use record::{
    object_name, ClientRecord, Delta, HintsSeen, ReadFact, RunFact, Seen, RUN_WINDOW, SAVER_WINDOW,
    SYNC_INTERVAL_MS,
};

/// The response header that names the hints of a response, comma-separated codes.
pub const HINT_HEADER: &str = "x-edge-memory-hint";

/// A browser's (or any client's) own id on a deployment without credentials, so the
/// demo's tabs are told apart; JWT users and API keys are told apart by their credentials.
pub const CLIENT_HEADER: &str = "x-edge-memory-client";

/// The response header of a run that says which turn of its thread it is (1: the
/// thread's first), set when the run's input is stored; a streamed run's opening carries
/// it as well as a whole answer.
pub const TURN_HEADER: &str = "x-edge-memory-turn";

/// A diagnosis of the symptom map. The codes are stable: clients switch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HintCode {
    /// "First message persists, second doesn't": every request starts a new thread.
    NewThreadPerRequest,
    /// "Missing or changing thread_id": the client's thread id changes between requests.
    ThreadIdNotStable,
    /// "Works locally only": the memory does not outlive the process.
    EphemeralMemory,
    /// "Checkpoints exist but aren't used": a saver writes checkpoints it never reads.
    CheckpointsUnread,
}

impl HintCode {
    /// Every hint, in the symptom map's order.
    pub const ALL: [HintCode; 4] = [
        HintCode::EphemeralMemory,
        HintCode::ThreadIdNotStable,
        HintCode::NewThreadPerRequest,
        HintCode::CheckpointsUnread,
    ];

    /// The stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            HintCode::NewThreadPerRequest => "new_thread_per_request",
            HintCode::ThreadIdNotStable => "thread_id_not_stable",
            HintCode::EphemeralMemory => "ephemeral_memory",
            HintCode::CheckpointsUnread => "checkpoints_unread",
        }
    }

    /// The code's hint, from its name.
    pub fn parse(code: &str) -> Option<HintCode> {
        HintCode::ALL.into_iter().find(|hint| hint.as_str() == code)
    }

    /// The symptom, in the words of the articles' symptom map.
    pub fn symptom(self) -> &'static str {
        match self {
            HintCode::EphemeralMemory => "Works locally only",
            HintCode::ThreadIdNotStable => "First message persists, second doesn't",
            HintCode::NewThreadPerRequest => "A new conversation starts on every request",
            HintCode::CheckpointsUnread => "Checkpoints exist but aren't used",
        }
    }

    /// One line: what the server saw.
    pub fn explanation(self) -> &'static str {
        match self {
            HintCode::EphemeralMemory => "this deployment keeps memory in the process (MEMORY_BACKEND=memory), or a client remembers a checkpoint (expected_head) the server does not have: memory is lost on restart",
            HintCode::ThreadIdNotStable => "runs arrive on thread ids the server has never seen, with messages that read like the rest of a conversation, or threads made by if_not_exists=\"create\" never get a second turn",
            HintCode::NewThreadPerRequest => "most recent runs of this client are the first and only turn of a new thread",
            HintCode::CheckpointsUnread => "this saver client writes checkpoints, but every get_tuple misses: what it writes is never read back",
        }
    }

    /// One line: what to do about it.
    pub fn fix(self) -> &'static str {
        match self {
            HintCode::EphemeralMemory => "set MEMORY_BACKEND=durable_object (the default) and keep the thread ids and checkpoint ids the server returned",
            HintCode::ThreadIdNotStable => "generate the thread_id once per conversation (user, session or case id), store it, and pass the same one on every request",
            HintCode::NewThreadPerRequest => "create a thread once per conversation and reuse its thread_id for the next messages instead of creating one per request",
            HintCode::CheckpointsUnread => "pass the same config on every call: {\"configurable\": {\"thread_id\": <stable id>}} (and the same checkpoint_ns), not a new id per invocation",
        }
    }

    /// The hint as JSON (`code`, `symptom`, `explanation`, `fix`).
    pub fn to_json(self) -> Value {
        serde_json::json!({
            "code": self.as_str(),
            "symptom": self.symptom(),
            "explanation": self.explanation(),
            "fix": self.fix(),
        })
    }
}

/// Who a request comes from, as the detectors tell clients apart: a JWT user (`user:`),
/// an API key (`key:` and a digest, never the key), a browser's own id (`browser:`), or
/// everyone else on an open deployment (`anonymous`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey(String);

impl ClientKey {
    /// The client of a request whose plan is scoped to `owner` (a JWT's `sub`).
    pub fn of(req: &super::HttpRequest, owner: Option<&str>) -> ClientKey {
        if let Some(owner) = owner {
            return ClientKey(format!("user:{owner}"));
        }
        if let Some(key) = req.header("x-api-key").filter(|k| !k.is_empty()) {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(key.as_bytes());
            let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
            return ClientKey(format!("key:{hex}"));
        }
        match req.header(CLIENT_HEADER).map(str::trim) {
            Some(id) if !id.is_empty() => {
                let id: String = id.chars().take(64).collect();
                ClientKey(format!("browser:{id}"))
            }
            _ => ClientKey("anonymous".into()),
        }
    }

    /// The key as it is logged and listed.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a request is, as far as the detectors care; read from its plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// A run on a thread.
    Run {
        /// The thread.
        thread_id: String,
        /// `if_not_exists: "create"`: the client names threads itself.
        creates: bool,
        /// Its first human message reads like the rest of a conversation.
        follow_up: bool,
    },
    /// A saver `put`: the client writes a checkpoint to the thread.
    SaverPut {
        /// The thread.
        thread_id: String,
    },
    /// A saver `get_tuple` of the newest checkpoint in the root namespace.
    SaverGet {
        /// The thread.
        thread_id: String,
    },
    /// Anything else: only the deployment's own settings can be diagnosed.
    Other,
}

impl Observation {
    /// The observation of a planned request.
    pub fn of(plan: &Plan) -> Observation {
        let Plan::Thread(ThreadCall {
            thread_id, command, ..
        }) = plan
        else {
            return Observation::Other;
        };
        let thread_id = thread_id.as_str().to_string();
        match command {
            ThreadCommand::Run(run) => Observation::Run {
                thread_id,
                creates: run.if_not_exists == IfNotExists::Create,
                follow_up: first_human_text(&run.input).is_some_and(|t| reads_like_follow_up(&t)),
            },
            ThreadCommand::Saver(SaverCommand::Put(_)) => Observation::SaverPut { thread_id },
            // A pinned checkpoint id or a subgraph's namespace may miss by design.
            ThreadCommand::Saver(SaverCommand::Get {
                checkpoint_ns,
                checkpoint_id: None,
            }) if checkpoint_ns.is_empty() => Observation::SaverGet { thread_id },
            _ => Observation::Other,
        }
    }
}

/// What the answer to a request says, as far as the detectors care.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The HTTP status.
    pub status: u16,
    /// The error's `code`, for an error.
    pub code: Option<String>,
    /// The turn of its thread a run made ([`TURN_HEADER`]): 1 for a thread's first.
    pub turn: Option<u64>,
    /// A saver read that found nothing (`null`).
    pub empty: bool,
}

impl Outcome {
    /// The outcome of a whole response.
    pub fn of(response: &HttpResponse) -> Outcome {
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let json = response.json();
        Outcome {
            status: response.status,
            code: json
                .and_then(|b| b.get("code"))
                .and_then(Value::as_str)
                .map(str::to_string),
            turn: header(TURN_HEADER).and_then(|t| t.parse().ok()),
            empty: matches!(&response.body, Body::Json(Value::Null)),
        }
    }
}

/// The user a plan is scoped to (a JWT's `sub`), which names its client.
pub fn plan_owner(plan: &Plan) -> Option<&str> {
    match plan {
        Plan::Thread(call) => call.owner.as_deref(),
        Plan::Diagnostics { owner } => owner.as_deref(),
        Plan::Stateless(run) => run.assistant.owner.as_deref(),
        _ => None,
    }
}

/// Whether this deployment keeps its memory in the process: `MEMORY_BACKEND=memory`
/// outside `DEV_MODE` (a restart, or a second isolate, forgets every thread).
pub fn ephemeral(info: &ServerInfo) -> bool {
    info.backend == "memory" && !info.dev_mode
}

/// The text of the first human message of a run's input.
fn first_human_text(input: &[MessageOp]) -> Option<String> {
    input.iter().find_map(|op| match op {
        MessageOp::Upsert { message } if message.kind == MessageType::Human => Some(message.text()),
        _ => None,
    })
}

/// Openings that continue a conversation rather than start one.
const FOLLOW_UP_OPENINGS: [&str; 8] = [
    "and ",
    "also ",
    "also,",
    "what about",
    "how about",
    "but what",
    "then what",
    "so what",
];

/// Phrases that refer to what was said before.
const FOLLOW_UP_PHRASES: [&str; 16] = [
    "what's my name",
    "what is my name",
    "what did i",
    "what did you",
    "do you remember",
    "remember what",
    "remember my",
    "you said",
    "you just said",
    "i told you",
    "i just told you",
    "as i said",
    "like i said",
    "i mentioned",
    "earlier",
    "last time",
];

/// Whether a message reads like the rest of a conversation ("what's my name?",
/// "and what about tomorrow?"): a run on a thread the server has never seen that opens
/// like this is a client whose thread id changed.
pub fn reads_like_follow_up(text: &str) -> bool {
    let text = text.trim().to_lowercase().replace('’', "'");
    FOLLOW_UP_OPENINGS.iter().any(|o| text.starts_with(o))
        || FOLLOW_UP_PHRASES.iter().any(|p| text.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_ups_are_told_from_openings() {
        for text in [
            "What's my name?",
            "and what about tomorrow?",
            "Do you remember my dog?",
            "What did I just ask?",
            "like I said, the blue one",
        ] {
            assert!(reads_like_follow_up(text), "{text}");
        }
        for text in [
            "Hi, my name is Sam",
            "Write a haiku about the sea",
            "Andrew here: help me plan a trip",
            "",
        ] {
            assert!(!reads_like_follow_up(text), "{text}");
        }
    }

    #[test]
    fn every_code_parses_back_and_has_its_words() {
        for hint in HintCode::ALL {
            assert_eq!(HintCode::parse(hint.as_str()), Some(hint));
            assert!(!hint.explanation().is_empty() && !hint.fix().is_empty());
        }
        assert_eq!(HintCode::parse("nope"), None);
    }

    #[test]
    fn clients_are_told_apart_by_credentials_never_kept() {
        let mut req = super::super::HttpRequest {
            method: "POST".into(),
            path: "/threads".into(),
            query: String::new(),
            body: Vec::new(),
            headers: vec![("x-api-key".into(), "secret-key".into())],
            verified_token: None,
        };
        let key = ClientKey::of(&req, None);
        assert!(key.as_str().starts_with("key:") && !key.as_str().contains("secret"));
        assert_eq!(ClientKey::of(&req, Some("ann")).as_str(), "user:ann");
        req.headers = vec![(CLIENT_HEADER.into(), "tab-1".into())];
        assert_eq!(ClientKey::of(&req, None).as_str(), "browser:tab-1");
        req.headers.clear();
        assert_eq!(ClientKey::of(&req, None).as_str(), "anonymous");
    }
}
