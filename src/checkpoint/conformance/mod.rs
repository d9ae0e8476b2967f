//! The conformance suite: one set of cases every [`Checkpointer`] must pass.
//!
//! Each case is `pub async fn case(store) -> Result<(), Failure>` and documents the
//! property it checks. Cases use a fresh random thread id, so they never need a wiped
//! store and can run against a shared database (or a live Durable Object).
//!
//! Backends stamp one named test per case with [`conformance_tests!`](crate::conformance_tests):
//! ```ignore
//! edge_memory::conformance_tests!(edge_memory::checkpoint::memory::MemoryCheckpointer::new());
//! ```
//! [`run_all`] runs every case and returns a [`Report`], for runtimes without a test
//! harness (the worker inside workerd).
//!
//! Cases live in `threads` (records, isolation, deletion, unknown ids), `history`
//! (checkpoints, `list`, parents, forks, atomic puts, export) and `messages`
//! (replacement and removal, large messages, the context window); `support` holds
//! what they share.

mod history;
mod messages;
mod support;
mod threads;

pub use history::*;
pub use messages::*;
pub use threads::*;

use std::fmt;

use super::Checkpointer;
use crate::error::Error;

/// Why a case failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure(format!("unexpected error: {e:?}"))
    }
}

/// What a case returns.
pub type Outcome = Result<(), Failure>;

macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(Failure(format!($($msg)+)));
        }
    };
}

macro_rules! check_eq {
    ($left:expr, $right:expr, $($msg:tt)+) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            return Err(Failure(format!("{}: {:?} != {:?}", format!($($msg)+), left, right)));
        }
    }};
}

// The saver store's suite (`saver::conformance`) checks with the same macros.
pub(crate) use {check, check_eq};

/// The result of one case in a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// The case's name.
    pub name: &'static str,
    /// `None` when it passed.
    pub failure: Option<String>,
}

/// The results of [`run_all`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// One entry per case, in suite order.
    pub cases: Vec<CaseResult>,
}

impl Report {
    /// How many cases passed.
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.failure.is_none()).count()
    }

    /// Whether every case passed.
    pub fn all_passed(&self) -> bool {
        self.passed() == self.cases.len()
    }
}

/// Stamps one test per conformance case for a backend. The argument is an expression
/// that makes a fresh store. Native tests need `pollster` as a dev-dependency; with
/// `wasm,` first, the tests are `wasm_bindgen_test`s.
#[macro_export]
macro_rules! conformance_tests {
    (wasm, $make:expr) => {
        $crate::__conformance_cases!(@wasm $make);
    };
    ($make:expr) => {
        $crate::__conformance_cases!(@native $make);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    (@native $make:expr; $($case:ident)*) => {
        $(
            #[test]
            fn $case() {
                let store = $make;
                if let Err(failure) = ::pollster::block_on($crate::checkpoint::conformance::$case(&store)) {
                    panic!("{}: {}", stringify!($case), failure);
                }
            }
        )*
    };
    (@wasm $make:expr; $($case:ident)*) => {
        $(
            #[::wasm_bindgen_test::wasm_bindgen_test]
            async fn $case() {
                let store = $make;
                if let Err(failure) = $crate::checkpoint::conformance::$case(&store).await {
                    panic!("{}: {}", stringify!($case), failure);
                }
            }
        )*
    };
    (@report $store:ident, $report:ident; $($case:ident)*) => {
        $(
            $report.cases.push(CaseResult {
                name: stringify!($case),
                failure: $case($store).await.err().map(|f| f.0),
            });
        )*
    };
    // The one list of cases, for every arm above.
    (@$mode:ident $($args:tt)*) => {
        $crate::__conformance_cases!(@$mode $($args)*;
            empty_thread_has_no_checkpoint
            thread_record_round_trips
            creating_a_thread_twice_conflicts
            roundtrip
            latest_vs_by_id
            list_order_before_limit
            threads_are_isolated
            delete_removes_everything
            parent_chain_intact
            forks_keep_both_branches
            failed_put_is_atomic
            replace_and_remove_semantics
            unknown_thread_is_not_found
            unknown_checkpoint_is_not_found
            export_copies_exactly
            window_matches_the_state
            a_message_larger_than_a_row_round_trips
        );
    };
}

/// Runs every case against `store` and reports each result.
pub async fn run_all<C: Checkpointer>(store: &C) -> Report {
    let mut report = Report::default();
    crate::__conformance_cases!(@report store, report);
    report
}
