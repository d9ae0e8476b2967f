//! Assistants on SQLite ([`SqlExec`]): the table an assistants object keeps, every
//! version of every assistant, and search and count done in SQL.
//!
//! An assistant is a named configuration of the graph (`config`, `context`,
//! `metadata`); each change makes a new version, and one version is the current one.
//! Rows are scoped by owner (a JWT user's `sub`; `""` for services): a store holding
//! several owners' assistants never shows one owner another's, and the same id may be
//! taken by two owners without either learning of the other.
//!
//! Every method is synchronous and awaits nothing between its reads and its writes, so
//! on a Durable Object no other request interleaves with it.

use std::cell::Cell;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::directory::{count_param, json_text, metadata_conditions};
use super::sql::create_once;
use super::sql::{Columns, SqlExec, SqlValue, Statement};
use crate::error::{Error, Result};

/// The tables and indexes, created on first use.
const SCHEMA: &[&str] = &[
    // The current version of each assistant.
    "CREATE TABLE IF NOT EXISTS em_assistants (
        owner TEXT NOT NULL,
        assistant_id TEXT NOT NULL,
        graph_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        name TEXT NOT NULL,
        description TEXT,
        config TEXT NOT NULL,
        context TEXT NOT NULL,
        metadata TEXT NOT NULL,
        PRIMARY KEY (owner, assistant_id)
    ) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS em_assistants_by_created ON em_assistants (owner, created_at, assistant_id)",
    "CREATE INDEX IF NOT EXISTS em_assistants_by_updated ON em_assistants (owner, updated_at, assistant_id)",
    // Every version ever made (`created_at`: when that version was made).
    "CREATE TABLE IF NOT EXISTS em_assistant_versions (
        owner TEXT NOT NULL,
        assistant_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        graph_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        name TEXT NOT NULL,
        description TEXT,
        config TEXT NOT NULL,
        context TEXT NOT NULL,
        metadata TEXT NOT NULL,
        PRIMARY KEY (owner, assistant_id, version)
    ) WITHOUT ROWID",
];

const TABLE: &str = "em_assistants";

const COLUMNS: &str =
    "assistant_id, graph_id, version, created_at, updated_at, name, description, config, context, metadata";

const VERSION_COLUMNS: &str =
    "assistant_id, graph_id, version, created_at, created_at, name, description, config, context, metadata";

/// One version of an assistant (the current one, as stored in `em_assistants`, or an
/// older one from its history, whose `updated_at_ms` is the version's `created_at_ms`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assistant {
    /// Its id (a UUID).
    pub assistant_id: String,
    /// The graph it configures.
    pub graph_id: String,
    /// The run configuration (`{"configurable": {...}, ...}`).
    pub config: Map<String, Value>,
    /// The run context (LangGraph's `context`: by default, a copy of
    /// `config.configurable`).
    pub context: Map<String, Value>,
    /// Free-form metadata.
    pub metadata: Map<String, Value>,
    /// Its name.
    pub name: String,
    /// A description, if any.
    pub description: Option<String>,
    /// The version (1 for a new assistant).
    pub version: i64,
    /// When the assistant was created (for a version: when the version was made).
    pub created_at_ms: i64,
    /// When the current version was made current.
    pub updated_at_ms: i64,
}

/// What [`SqlAssistants::create`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// Stored as asked.
    New(Assistant),
    /// The id was taken: the stored assistant, unchanged.
    Existing(Assistant),
}

/// The changes of an update; absent fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssistantPatch {
    /// A new graph.
    pub graph_id: Option<String>,
    /// A new config, replacing the old one whole.
    pub config: Option<Map<String, Value>>,
    /// A new context; without one, a new config's `configurable` becomes the context.
    pub context: Option<Map<String, Value>>,
    /// Keys merged into the metadata.
    pub metadata: Option<Map<String, Value>>,
    /// A new name.
    pub name: Option<String>,
    /// A new description.
    pub description: Option<String>,
}

/// What searches sort assistants by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssistantSortKey {
    /// The id.
    AssistantId,
    /// The graph.
    GraphId,
    /// The name.
    Name,
    /// Creation time (the default, newest first).
    #[default]
    CreatedAt,
    /// When the current version was made current.
    UpdatedAt,
}

impl AssistantSortKey {
    fn column(self) -> &'static str {
        match self {
            AssistantSortKey::AssistantId => "assistant_id",
            AssistantSortKey::GraphId => "graph_id",
            AssistantSortKey::Name => "name",
            AssistantSortKey::CreatedAt => "created_at",
            AssistantSortKey::UpdatedAt => "updated_at",
        }
    }
}

/// Which assistants a search returns.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AssistantSearch {
    /// Only assistants of this graph.
    pub graph_id: Option<String>,
    /// Only assistants whose name contains this text.
    pub name: Option<String>,
    /// Only assistants whose metadata has every one of these keys with an equal value.
    pub metadata: Map<String, Value>,
    /// Sort key.
    pub sort_by: AssistantSortKey,
    /// Ascending instead of the default descending order.
    pub ascending: bool,
    /// At most this many.
    pub limit: usize,
    /// Skip this many first.
    pub offset: usize,
}

impl AssistantSearch {
    /// Whether `assistant` passes the filters (not the paging).
    pub fn matches(&self, assistant: &Assistant) -> bool {
        self.graph_id
            .as_ref()
            .is_none_or(|g| *g == assistant.graph_id)
            && self
                .name
                .as_ref()
                .is_none_or(|n| assistant.name.contains(n.as_str()))
            && metadata_matches(&self.metadata, &assistant.metadata)
    }

    /// The search's order: its sort key (newest first unless `ascending`), ties by id;
    /// the order SQL gives (text compares byte-wise in both).
    pub fn compare(&self, a: &Assistant, b: &Assistant) -> std::cmp::Ordering {
        let order = match self.sort_by {
            AssistantSortKey::AssistantId => std::cmp::Ordering::Equal,
            AssistantSortKey::GraphId => a.graph_id.cmp(&b.graph_id),
            AssistantSortKey::Name => a.name.cmp(&b.name),
            AssistantSortKey::CreatedAt => a.created_at_ms.cmp(&b.created_at_ms),
            AssistantSortKey::UpdatedAt => a.updated_at_ms.cmp(&b.updated_at_ms),
        }
        .then_with(|| a.assistant_id.cmp(&b.assistant_id));
        if self.ascending {
            order
        } else {
            order.reverse()
        }
    }
}

/// Whether `metadata` has every key of `filter` with an equal value.
pub fn metadata_matches(filter: &Map<String, Value>, metadata: &Map<String, Value>) -> bool {
    filter.iter().all(|(k, v)| metadata.get(k) == Some(v))
}

/// The context LangGraph derives from a config: a copy of its `configurable`.
pub fn context_of(config: &Map<String, Value>) -> Map<String, Value> {
    match config.get("configurable") {
        Some(Value::Object(configurable)) => configurable.clone(),
        _ => Map::new(),
    }
}

/// Assistants over SQLite.
#[derive(Debug)]
pub struct SqlAssistants<E> {
    exec: E,
    ready: Cell<bool>,
}

impl<E: SqlExec> SqlAssistants<E> {
    /// Assistants over `exec`; the tables are created on first use.
    pub fn new(exec: E) -> Self {
        SqlAssistants {
            exec,
            ready: Cell::new(false),
        }
    }

    /// The SQL port (tests read its counters).
    pub fn exec(&self) -> &E {
        &self.exec
    }

    fn ensure_schema(&self) -> Result<()> {
        create_once(&self.exec, &self.ready, SCHEMA)
    }

    /// Stores `assistant` (its version 1) for `owner`, unless the id is taken: then the
    /// stored one is answered, unchanged.
    pub fn create(&self, owner: &str, assistant: &Assistant) -> Result<Created> {
        self.ensure_schema()?;
        if let Some(existing) = self.find(owner, &assistant.assistant_id)? {
            return Ok(Created::Existing(existing));
        }
        self.exec.execute_batch(&[
            current_row(owner, assistant, "INSERT"),
            version_row(owner, assistant),
        ])?;
        Ok(Created::New(assistant.clone()))
    }

    /// The current version of `owner`'s assistant `assistant_id`.
    pub fn get(&self, owner: &str, assistant_id: &str) -> Result<Assistant> {
        self.ensure_schema()?;
        self.find(owner, assistant_id)?
            .ok_or_else(|| not_found(assistant_id))
    }

    fn find(&self, owner: &str, assistant_id: &str) -> Result<Option<Assistant>> {
        let sql = format!("SELECT {COLUMNS} FROM {TABLE} WHERE owner = ? AND assistant_id = ?");
        Ok(
            assistants(&self.exec, &sql, &[owner.into(), assistant_id.into()])?
                .into_iter()
                .next(),
        )
    }

    /// Applies `patch` as a new version (one more than the highest so far), made
    /// current at `now_ms`.
    pub fn update(
        &self,
        owner: &str,
        assistant_id: &str,
        patch: &AssistantPatch,
        now_ms: i64,
    ) -> Result<Assistant> {
        let mut next = self.get(owner, assistant_id)?;
        if let Some(graph_id) = &patch.graph_id {
            next.graph_id.clone_from(graph_id);
        }
        match (&patch.config, &patch.context) {
            (_, Some(context)) => next.context.clone_from(context),
            (Some(config), None) => next.context = context_of(config),
            (None, None) => {}
        }
        if let Some(config) = &patch.config {
            next.config.clone_from(config);
        }
        if let Some(metadata) = &patch.metadata {
            next.metadata.extend(metadata.clone());
        }
        if let Some(name) = &patch.name {
            next.name.clone_from(name);
        }
        if patch.description.is_some() {
            next.description.clone_from(&patch.description);
        }
        next.version = self.highest_version(owner, assistant_id)? + 1;
        next.updated_at_ms = now_ms.max(next.updated_at_ms);
        let mut version = next.clone();
        version.created_at_ms = next.updated_at_ms;
        self.exec.execute_batch(&[
            current_row(owner, &next, "REPLACE"),
            version_row(owner, &version),
        ])?;
        Ok(next)
    }

    fn highest_version(&self, owner: &str, assistant_id: &str) -> Result<i64> {
        let rows = self.exec.query(
            "SELECT MAX(version) FROM em_assistant_versions WHERE owner = ? AND assistant_id = ?",
            &[owner.into(), assistant_id.into()],
        )?;
        let highest = rows
            .into_iter()
            .next()
            .map(|row| Columns::new(row, "em_assistant_versions").optional_integer())
            .transpose()?
            .flatten();
        Ok(highest.unwrap_or(0))
    }

    /// Makes version `version` the current one again (its graph, config, context,
    /// metadata, name and description), at `now_ms`.
    pub fn set_latest(
        &self,
        owner: &str,
        assistant_id: &str,
        version: i64,
        now_ms: i64,
    ) -> Result<Assistant> {
        let current = self.get(owner, assistant_id)?;
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM em_assistant_versions WHERE owner = ? AND assistant_id = ? AND version = ?"
        );
        let params = [owner.into(), assistant_id.into(), version.into()];
        let Some(mut chosen) = assistants(&self.exec, &sql, &params)?.into_iter().next() else {
            return Err(Error::NotFound {
                what: "assistant version",
                id: format!("{version} of assistant {assistant_id}"),
            });
        };
        chosen.created_at_ms = current.created_at_ms;
        chosen.updated_at_ms = now_ms.max(current.updated_at_ms);
        self.exec
            .execute_batch(&[current_row(owner, &chosen, "REPLACE")])?;
        Ok(chosen)
    }

    /// Deletes the assistant and all its versions.
    pub fn delete(&self, owner: &str, assistant_id: &str) -> Result<()> {
        self.get(owner, assistant_id)?;
        let params = || vec![owner.into(), assistant_id.into()];
        self.exec.execute_batch(&[
            Statement::new(
                "DELETE FROM em_assistants WHERE owner = ? AND assistant_id = ?",
                params(),
            ),
            Statement::new(
                "DELETE FROM em_assistant_versions WHERE owner = ? AND assistant_id = ?",
                params(),
            ),
        ])
    }

    /// The assistant's versions whose metadata matches `metadata`, newest first, paged.
    pub fn versions(
        &self,
        owner: &str,
        assistant_id: &str,
        metadata: &Map<String, Value>,
        (limit, offset): (usize, usize),
    ) -> Result<Vec<Assistant>> {
        self.get(owner, assistant_id)?;
        let (clause, mut params, exact) = metadata_conditions(metadata);
        params.splice(0..0, [owner.into(), assistant_id.into()]);
        let mut sql = format!(
            "SELECT {VERSION_COLUMNS} FROM em_assistant_versions WHERE owner = ? AND assistant_id = ?{clause} ORDER BY version DESC"
        );
        if !exact {
            let found = assistants(&self.exec, &sql, &params)?;
            return Ok(found
                .into_iter()
                .filter(|v| metadata_matches(metadata, &v.metadata))
                .skip(offset)
                .take(limit)
                .collect());
        }
        sql.push_str(" LIMIT ? OFFSET ?");
        params.extend([count_param(limit), count_param(offset)]);
        assistants(&self.exec, &sql, &params)
    }

    /// `owner`'s assistants that match `query`, in its order, paged.
    pub fn search(&self, owner: &str, query: &AssistantSearch) -> Result<Vec<Assistant>> {
        self.ensure_schema()?;
        let (clause, mut params, exact) = search_filters(owner, query);
        let direction = if query.ascending { "ASC" } else { "DESC" };
        let mut sql = format!(
            "SELECT {COLUMNS} FROM {TABLE}{clause} ORDER BY {} {direction}, assistant_id {direction}",
            query.sort_by.column()
        );
        if !exact {
            let mut found = assistants(&self.exec, &sql, &params)?;
            found.retain(|a| query.matches(a));
            return Ok(found
                .into_iter()
                .skip(query.offset)
                .take(query.limit)
                .collect());
        }
        sql.push_str(" LIMIT ? OFFSET ?");
        params.extend([count_param(query.limit), count_param(query.offset)]);
        assistants(&self.exec, &sql, &params)
    }

    /// How many of `owner`'s assistants match `query`'s filters.
    pub fn count(&self, owner: &str, query: &AssistantSearch) -> Result<usize> {
        self.ensure_schema()?;
        let (clause, params, exact) = search_filters(owner, query);
        if !exact {
            let sql = format!("SELECT {COLUMNS} FROM {TABLE}{clause}");
            let found = assistants(&self.exec, &sql, &params)?;
            return Ok(found.iter().filter(|a| query.matches(a)).count());
        }
        let rows = self
            .exec
            .query(&format!("SELECT COUNT(*) FROM {TABLE}{clause}"), &params)?;
        let count = rows
            .into_iter()
            .next()
            .map(|row| Columns::new(row, TABLE).integer())
            .transpose()?
            .unwrap_or(0);
        Ok(usize::try_from(count).unwrap_or(0))
    }
}

/// A search's filters as SQL: the `WHERE` clause, its parameters, and whether SQL alone
/// decides (else the filters are applied again, exactly, in Rust).
fn search_filters(owner: &str, query: &AssistantSearch) -> (String, Vec<SqlValue>, bool) {
    let mut clause = String::from(" WHERE owner = ?");
    let mut params: Vec<SqlValue> = vec![owner.into()];
    if let Some(graph_id) = &query.graph_id {
        clause.push_str(" AND graph_id = ?");
        params.push(graph_id.as_str().into());
    }
    if let Some(name) = &query.name {
        // `instr`: a substring, case-sensitive, with no `LIKE` wildcards to escape.
        clause.push_str(" AND instr(name, ?) > 0");
        params.push(name.as_str().into());
    }
    let (metadata, metadata_params, exact) = metadata_conditions(&query.metadata);
    clause.push_str(&metadata);
    params.extend(metadata_params);
    (clause, params, exact)
}

fn not_found(assistant_id: &str) -> Error {
    Error::NotFound {
        what: "assistant",
        id: assistant_id.to_string(),
    }
}

/// The row of the current version; `verb` is `INSERT` or `REPLACE`.
fn current_row(owner: &str, a: &Assistant, verb: &str) -> Statement {
    Statement::new(
        format!(
            "{verb} INTO em_assistants (owner, {COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ),
        vec![
            owner.into(),
            a.assistant_id.as_str().into(),
            a.graph_id.as_str().into(),
            a.version.into(),
            a.created_at_ms.into(),
            a.updated_at_ms.into(),
            a.name.as_str().into(),
            a.description.clone().into(),
            json_text(&a.config).into(),
            json_text(&a.context).into(),
            json_text(&a.metadata).into(),
        ],
    )
}

/// The history row of a version (made at `a.created_at_ms`).
fn version_row(owner: &str, a: &Assistant) -> Statement {
    Statement::new(
        "INSERT INTO em_assistant_versions (owner, assistant_id, version, graph_id, created_at, name, description, config, context, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        vec![
            owner.into(),
            a.assistant_id.as_str().into(),
            a.version.into(),
            a.graph_id.as_str().into(),
            a.created_at_ms.into(),
            a.name.as_str().into(),
            a.description.clone().into(),
            json_text(&a.config).into(),
            json_text(&a.context).into(),
            json_text(&a.metadata).into(),
        ],
    )
}

/// Assistants read with [`COLUMNS`] (or [`VERSION_COLUMNS`]).
fn assistants<E: SqlExec>(exec: &E, sql: &str, params: &[SqlValue]) -> Result<Vec<Assistant>> {
    exec.query(sql, params)?
        .into_iter()
        .map(|row| {
            let mut cols = Columns::new(row, TABLE);
            Ok(Assistant {
                assistant_id: cols.text()?,
                graph_id: cols.text()?,
                version: cols.integer()?,
                created_at_ms: cols.integer()?,
                updated_at_ms: cols.integer()?,
                name: cols.text()?,
                description: cols.optional_text()?,
                config: cols.json_object()?,
                context: cols.json_object()?,
                metadata: cols.json_object()?,
            })
        })
        .collect()
}
