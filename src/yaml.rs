//! YAML in and out, through one crate, so every command formats YAML the same way.

use serde::{Serialize, de::DeserializeOwned};

/// Serialise to YAML. Our types always serialise (no non-string map keys), so a failure is a bug.
pub fn to_string<T: Serialize>(value: &T) -> String {
    serde_saphyr::to_string(value).unwrap_or_else(|e| format!("# cannot render as YAML: {e}\n"))
}

/// Parse every document of a multi-document YAML stream, skipping empty ones.
pub fn from_str_multi<T: DeserializeOwned>(text: &str) -> Result<Vec<T>, String> {
    let docs: Vec<Option<T>> = serde_saphyr::from_multiple(text).map_err(|e| e.to_string())?;
    Ok(docs.into_iter().flatten().collect())
}

pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_saphyr::from_str(text).map_err(|e| e.to_string())
}
