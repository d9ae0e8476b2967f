//! Whose items a store request touches: the tenancy rule.
//!
//! A JWT user's namespaces are all in the user's own space (their shard,
//! `store/u/<sub>`): the user names them as they like and cannot name anyone else's. An
//! API-key service has its own space (the shared shards) and reaches a user's space by
//! starting a namespace with the user's **root label**, `user:<sub>`: the service's
//! `["user:alice", "memories"]` is alice's `["memories"]`. This is LangGraph's documented
//! pattern for per-user stores (an `@auth.on.store` handler prepends the caller's
//! identity as the first label) seen from the service's side, with the label marked so
//! that it cannot be mistaken for a service's own first label.
//!
//! A service request without a root label covers the service's space only: a search or
//! listing never spans users' spaces (one object per user: listing them all would be
//! unbounded).

use super::StoreShard;
use crate::error::{Error, Result};
use crate::store::{Namespace, NamespaceQuery};

/// The first label that names a user's space from a service: `user:<sub>`, with `%` and
/// `.` of the sub written `%25` and `%2E` (a label has no `.`).
pub const USER_ROOT_PREFIX: &str = "user:";

/// The space a request's namespaces are in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Space {
    /// A service's own items: the shared shards.
    Service,
    /// One user's items, in the user's shard.
    User {
        /// The user (the JWT `sub`).
        sub: String,
        /// Reached by a service through this root label: it is put back in front of the
        /// namespaces answered. `None`: the user's own request.
        root: Option<String>,
    },
}

impl Space {
    /// The space of `namespace` asked by `owner` (a JWT user) or a service (`None`), and
    /// the namespace within that space. A service's namespace that is only a root label
    /// is accepted where `root_alone` (a search prefix), else refused.
    pub fn locate(
        namespace: &Namespace,
        owner: Option<&str>,
        root_alone: bool,
        field: &str,
    ) -> Result<(Space, Namespace)> {
        if let Some(sub) = owner {
            let space = Space::User {
                sub: sub.to_string(),
                root: None,
            };
            return Ok((space, namespace.clone()));
        }
        let Some(first) = namespace.labels().first() else {
            return Ok((Space::Service, namespace.clone()));
        };
        let Some(sub) = sub_of_root(first, field)? else {
            return Ok((Space::Service, namespace.clone()));
        };
        let inner = namespace.skipped(1);
        if inner.is_empty() && !root_alone {
            return Err(Error::invalid(
                field,
                format!("a user's root label ('{first}') must be followed by at least one label"),
            ));
        }
        let root = Some(first.clone());
        Ok((Space::User { sub, root }, inner))
    }

    /// The space and the query within it of a namespace listing (by the labels of its
    /// prefix before any `*`).
    pub fn locate_listing(
        query: &NamespaceQuery,
        owner: Option<&str>,
    ) -> Result<(Space, NamespaceQuery)> {
        let (space, _) = Space::locate(&query.literal_prefix(), owner, true, "prefix")?;
        if !space.via_root() {
            return Ok((space, query.clone()));
        }
        // Namespaces of the user's space are one label shorter than the service sees
        // them; a `max_depth` of 1 is cut again when the root is put back.
        let inner = NamespaceQuery {
            prefix: query.prefix[1..].to_vec(),
            max_depth: query.max_depth.map(|depth| depth.saturating_sub(1).max(1)),
            ..query.clone()
        };
        Ok((space, inner))
    }

    /// Whether a service reached a user's space through a root label.
    pub fn via_root(&self) -> bool {
        matches!(self, Space::User { root: Some(_), .. })
    }

    /// The shard that holds `namespace` (within this space).
    pub fn shard_of(&self, namespace: &Namespace) -> StoreShard {
        match self {
            Space::User { sub, .. } => StoreShard::Owner(sub.clone()),
            Space::Service => StoreShard::shared_of(namespace),
        }
    }

    /// The shards that may hold namespaces starting with `prefix` (within this space).
    pub fn shards_for_prefix(&self, prefix: &Namespace) -> Vec<StoreShard> {
        match self {
            Space::User { sub, .. } => vec![StoreShard::Owner(sub.clone())],
            Space::Service => StoreShard::shared_for_prefix(prefix),
        }
    }

    /// A namespace of this space as the caller names it (the root label put back).
    pub fn outward(&self, namespace: &Namespace) -> Namespace {
        match self {
            Space::User {
                root: Some(root), ..
            } => namespace.under(root),
            _ => namespace.clone(),
        }
    }
}

/// The root label of user `sub`, as a service writes it.
pub fn user_root(sub: &str) -> String {
    let escaped = sub.replace('%', "%25").replace('.', "%2E");
    format!("{USER_ROOT_PREFIX}{escaped}")
}

/// The user whose root `label` is, if it is one; a malformed root label is refused.
fn sub_of_root(label: &str, field: &str) -> Result<Option<String>> {
    let Some(escaped) = label.strip_prefix(USER_ROOT_PREFIX) else {
        return Ok(None);
    };
    let malformed = |why: &str| {
        Error::invalid(
            field,
            format!(
                "the user root label '{label}' {why} (write `user:<sub>`, `.` as %2E, `%` as %25)"
            ),
        )
    };
    if escaped.is_empty() {
        return Err(malformed("names no user"));
    }
    let mut sub = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(at) = rest.find('%') {
        sub.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3).unwrap_or_default();
        if escape.eq_ignore_ascii_case("%2E") {
            sub.push('.');
        } else if escape == "%25" {
            sub.push('%');
        } else {
            return Err(malformed("has a `%` that is neither %2E nor %25"));
        }
        rest = &rest[at + 3..];
    }
    sub.push_str(rest);
    Ok(Some(sub))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(labels: &[&str]) -> Namespace {
        Namespace::new(labels.iter().map(|l| l.to_string()).collect(), "ns", true)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn root_labels_round_trip_and_malformed_ones_are_refused() {
        for sub in ["alice", "a.b@example.com", "100%.x", "auth0|42"] {
            let label = user_root(sub);
            assert!(!label.contains('.'), "{label}");
            assert_eq!(sub_of_root(&label, "f").ok(), Some(Some(sub.to_string())));
        }
        assert_eq!(sub_of_root("users", "f").ok(), Some(None));
        assert!(sub_of_root("user:", "f").is_err());
        assert!(sub_of_root("user:a%41", "f").is_err());
        assert!(sub_of_root("user:a%2", "f").is_err());
    }

    #[test]
    fn a_service_reaches_a_user_only_through_the_root_label() {
        let (space, inner) = Space::locate(&ns(&["user:bob", "m"]), None, false, "f").unwrap();
        assert_eq!(inner, ns(&["m"]));
        assert_eq!(space.shard_of(&inner), StoreShard::Owner("bob".into()));
        assert_eq!(space.outward(&inner), ns(&["user:bob", "m"]));
        assert!(Space::locate(&ns(&["user:bob"]), None, false, "f").is_err());
        let (space, inner) = Space::locate(&ns(&["user:bob"]), None, true, "f").unwrap();
        assert_eq!(space.shards_for_prefix(&inner).len(), 1);
        // A user's own `user:bob` label is just a label of the user's own space.
        let (space, inner) =
            Space::locate(&ns(&["user:bob", "m"]), Some("alice"), false, "f").unwrap();
        assert_eq!(space.shard_of(&inner), StoreShard::Owner("alice".into()));
        assert_eq!(space.outward(&inner), ns(&["user:bob", "m"]));
        // No root: the service's own space, never a user's.
        let (space, _) = Space::locate(&ns(&[]), None, true, "f").unwrap();
        assert!(space
            .shards_for_prefix(&ns(&[]))
            .iter()
            .all(|s| matches!(s, StoreShard::Shared(_))));
    }
}
