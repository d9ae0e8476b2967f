//! # edge-memory
//!
//! Conversation memory for chat agents that runs at the edge and never forgets.
//!
//! LangGraph's `MemorySaver` and LangChain's in-memory histories keep a conversation in
//! the memory of one process: a cold start, a redeploy or a second instance and it is
//! gone. This crate keeps every thread's checkpoints in that thread's own Durable Object
//! (SQLite storage), behind an HTTP API compatible with the LangGraph Platform
//! threads/runs API.
//!
//! ## Layout
//! - The storage-agnostic core, plain Rust, built and tested natively:
//!   [`thread`], [`message`] (with the `add_messages` reducer), [`checkpoint`] (the
//!   [`Checkpointer`](checkpoint::Checkpointer) trait, its backends and the conformance
//!   suite), [`chat`] (the turn engine and models), [`api`] (HTTP as pure functions,
//!   with [`api::auth`]: API keys, JWTs), [`config`] (the environment's settings and
//!   their rules).
//! - `edge` (wasm32 only): the only code that names `worker::*` — the fetch entry, the
//!   per-thread Durable Object and the adapters to its SQL storage.

pub mod api;
pub mod chat;
pub mod checkpoint;
pub mod config;
pub mod error;
mod json;
pub mod limits;
pub mod message;
pub mod runtime;
mod sort;
pub mod store;
pub mod thread;

#[cfg(target_arch = "wasm32")]
mod edge;

pub use error::{Error, Result};

/// Who is calling (API keys, JWTs); it lives in [`api::auth`], this path stays for
/// the crate's users.
pub use api::auth;
