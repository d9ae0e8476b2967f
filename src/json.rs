//! Decoding JSON text into typed values through one path.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Decodes `text` as a `T` by way of a [`Value`]. Every derived type is decoded from
/// values somewhere (request bodies, stored records); decoding text the same way keeps one
/// decoder per type in the wasm instead of two (one per input kind), which measured ~120 KB
/// of code. The cost is one intermediate tree, on bodies that are small.
pub(crate) fn from_text<T: DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    serde_json::from_str::<Value>(text).and_then(serde_json::from_value)
}

/// Encodes `value` as JSON text by way of a [`Value`], for the same reason as
/// [`from_text`]: one encoder per type.
pub(crate) fn to_text<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    serde_json::to_value(value).map(|v| v.to_string())
}
