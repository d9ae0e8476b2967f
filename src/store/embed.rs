//! Text embeddings for the store's semantic search.
//!
//! An item is embedded when it is put: the text at each of its `index` paths (the whole
//! value, `$`, unless the put names paths) becomes one vector, stored as an f32 blob;
//! a search's `query` is embedded the same way and items are ranked by cosine similarity
//! (the best of an item's vectors), as LangGraph's stores do.
//!
//! [`LocalEmbedder`] is built in: it needs no network and gives the same vector for the
//! same text on every machine and release. Providers (OpenAI-compatible, Workers AI) are
//! asked through the worker; their requests are built in [`super::openai`].

use serde_json::{Map, Value};

/// Dimensions of [`LocalEmbedder`]'s vectors: 256 f32 = 1 KiB per indexed text.
pub const LOCAL_DIMENSIONS: usize = 256;

/// The built-in embedder: **feature hashing of words and character trigrams** (the
/// "hashing trick" of Weinberger et al., 2009, over the subword n-grams fastText uses).
///
/// The text is lowercased and split into words at every character that is not a letter
/// or digit. Each word contributes itself (weight 1) and each character trigram of the
/// word wrapped in boundary marks, `<word>` (weight ½ each), so that word forms sharing
/// a stem ("prefer", "preferences") land near each other. A feature is hashed (64-bit
/// FNV-1a) to one of [`LOCAL_DIMENSIONS`] buckets, with a sign from the hash's top bit so
/// that collisions cancel out on average instead of adding up. The vector is then
/// normalized to length 1. Lexical, not semantic: it finds a stored fact by the words
/// (and word pieces) a question shares with it, not by meaning alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalEmbedder;

impl LocalEmbedder {
    /// The vector of `text`.
    pub fn embed(&self, text: &str) -> Vec<f32> {
        let mut vector = vec![0f32; LOCAL_DIMENSIONS];
        let lower = text.to_lowercase();
        for word in lower.split(|c: char| !c.is_alphanumeric()) {
            if word.is_empty() {
                continue;
            }
            add_feature(&mut vector, word.as_bytes(), 1.0);
            let marked: Vec<char> = std::iter::once('<')
                .chain(word.chars())
                .chain(std::iter::once('>'))
                .collect();
            for gram in marked.windows(3) {
                let gram: String = gram.iter().collect();
                add_feature(&mut vector, gram.as_bytes(), 0.5);
            }
        }
        normalize(&mut vector);
        vector
    }
}

fn add_feature(vector: &mut [f32], feature: &[u8], weight: f32) {
    let hash = fnv1a64(feature);
    let bucket = (hash % vector.len() as u64) as usize;
    let sign = if hash >> 63 == 1 { -1.0 } else { 1.0 };
    vector[bucket] += sign * weight;
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Cosine similarity; 0 when either vector is all zeros or their lengths differ.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

/// A vector as a blob: little-endian f32s.
pub fn to_blob(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A blob back to its vector (trailing bytes short of an f32 are ignored).
pub fn from_blob(blob: &[u8]) -> Vec<f32> {
    blob.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The texts to embed of an item's `value` at `paths`, each with the name its vector is
/// stored under: the path, or `path.i` when the path names several texts (LangGraph's
/// naming). Paths: `$` (the whole value as JSON with sorted keys), `a.b` (a field),
/// `a[0]`, `a[-1]`, `a[*]` (list elements). A string is its own text; a number or bool
/// its JSON; an object or list its JSON; `null` or a missing field gives none.
pub fn texts_at(value: &Map<String, Value>, paths: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for path in paths {
        let texts = if path == "$" {
            vec![sorted_json(&Value::Object(value.clone()))]
        } else {
            let mut found = Vec::new();
            extract(
                Some(&Value::Object(value.clone())),
                &tokens(path),
                &mut found,
            );
            found
        };
        if texts.len() == 1 {
            out.extend(texts.into_iter().map(|t| (path.clone(), t)));
        } else {
            out.extend(
                texts
                    .into_iter()
                    .enumerate()
                    .map(|(i, t)| (format!("{path}.{i}"), t)),
            );
        }
    }
    out
}

/// `a.b[0].c` → `a`, `b`, `[0]`, `c`.
fn tokens(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        while let Some(open) = rest.find('[') {
            if open > 0 {
                out.push(rest[..open].to_string());
            }
            let close = rest[open..].find(']').map_or(rest.len(), |c| open + c + 1);
            out.push(rest[open..close].to_string());
            rest = &rest[close..];
        }
        if !rest.is_empty() {
            out.push(rest.to_string());
        }
    }
    out
}

fn extract(value: Option<&Value>, tokens: &[String], out: &mut Vec<String>) {
    let Some(value) = value else { return };
    let Some((token, rest)) = tokens.split_first() else {
        match value {
            Value::Null => {}
            Value::String(s) => out.push(s.clone()),
            other => out.push(sorted_json(other)),
        }
        return;
    };
    if let Some(index) = token.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        let Value::Array(items) = value else { return };
        if index == "*" {
            items.iter().for_each(|item| extract(Some(item), rest, out));
        } else if let Ok(i) = index.parse::<i64>() {
            let i = if i < 0 { items.len() as i64 + i } else { i };
            let item = usize::try_from(i).ok().and_then(|i| items.get(i));
            extract(item, rest, out);
        }
    } else if let Value::Object(map) = value {
        if token == "*" {
            map.values().for_each(|v| extract(Some(v), rest, out));
        } else {
            extract(map.get(token), rest, out);
        }
    }
}

/// JSON with object keys sorted (serde_json's map keeps them sorted), as Python's
/// `json.dumps(sort_keys=True)` gives the text LangGraph embeds for `$`.
fn sorted_json(value: &Value) -> String {
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn local_vectors_are_unit_length_deterministic_and_lexical() {
        let e = LocalEmbedder;
        let a = e.embed("The user prefers dark mode in the editor");
        assert_eq!(a, e.embed("The user prefers dark mode in the editor"));
        let norm: f32 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        let q = e.embed("which mode does the user prefer?");
        let unrelated = e.embed("Invoice 42 was paid on Tuesday");
        assert!(cosine(&a, &q) > cosine(&unrelated, &q) + 0.2);
        assert_eq!(e.embed(""), vec![0.0; LOCAL_DIMENSIONS]);
    }

    #[test]
    fn blobs_round_trip() {
        let v = vec![0.5, -1.25, 3.0e-8, f32::MAX];
        assert_eq!(from_blob(&to_blob(&v)), v);
    }

    #[test]
    fn texts_at_paths_follow_langgraph() {
        let value = json!({"text": "hi", "n": 3, "tags": ["a", "b"], "deep": {"x": "y"}});
        let value = value.as_object().cloned().unwrap_or_default();
        let paths: Vec<String> = ["$", "text", "tags[*]", "tags[-1]", "deep.x", "n", "none"]
            .map(String::from)
            .to_vec();
        let got = texts_at(&value, &paths);
        let want: Vec<(String, String)> = [
            (
                "$",
                r#"{"deep":{"x":"y"},"n":3,"tags":["a","b"],"text":"hi"}"#,
            ),
            ("text", "hi"),
            ("tags[*].0", "a"),
            ("tags[*].1", "b"),
            ("tags[-1]", "b"),
            ("deep.x", "y"),
            ("n", "3"),
        ]
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .to_vec();
        assert_eq!(got, want);
    }
}
