//! JSON helpers shared by plugin clients: Go-like decoding of answers.

use serde::{Deserialize, Deserializer};

/// How much of a bad answer goes into an error message.
const EXCERPT_CHARS: usize = 200;

/// The first JSON value of `bytes`, ignoring whatever follows it, as Go's `json.Decoder`
/// reads an answer.
///
/// # Errors
/// A message saying the answer is empty or not JSON.
pub fn first_value(bytes: &[u8]) -> Result<serde_json::Value, String> {
    let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<serde_json::Value>();
    match values.next() {
        None => Err("empty answer, want a JSON object".to_owned()),
        Some(Err(e)) => Err(format!("not JSON ({e})")),
        Some(Ok(value)) => Ok(value),
    }
}

/// The start of `bytes` as quoted text, for error messages.
pub fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut cut: String = text.chars().take(EXCERPT_CHARS).collect();
    if cut.len() < text.len() {
        cut.push_str("...");
    }
    format!("{cut:?}")
}

/// Deserializes `null` as the type's default, as Go leaves a field at its zero value for
/// `null`. Use with `#[serde(default, deserialize_with = "null_as_default")]`.
///
/// # Errors
/// When the value is neither `null` nor a `T`.
pub fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_value_is_taken_and_trailing_bytes_ignored() {
        assert_eq!(
            first_value(b"{\"Err\":\"\"}\n{garbage").unwrap(),
            serde_json::json!({"Err": ""})
        );
        assert!(first_value(b"").unwrap_err().contains("empty"));
        assert!(first_value(b"  \n").unwrap_err().contains("empty"));
        assert!(first_value(b"<html>").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn excerpts_are_quoted_and_cut() {
        assert_eq!(excerpt(b"hi\n"), "\"hi\\n\"");
        let long = vec![b'x'; 500];
        let e = excerpt(&long);
        assert!(e.ends_with("...\""), "{e}");
        assert_eq!(e.len(), EXCERPT_CHARS + 5);
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct S {
        #[serde(default, deserialize_with = "null_as_default")]
        a: String,
        #[serde(default, deserialize_with = "null_as_default")]
        b: Vec<u8>,
    }

    #[test]
    fn null_and_missing_fields_read_as_zero_values() {
        let s: S = serde_json::from_str(r#"{"a": null}"#).unwrap();
        assert_eq!(
            s,
            S {
                a: String::new(),
                b: vec![]
            }
        );
        let s: S = serde_json::from_str(r#"{"a": "x", "b": [1]}"#).unwrap();
        assert_eq!(
            s,
            S {
                a: "x".into(),
                b: vec![1]
            }
        );
        assert!(serde_json::from_str::<S>(r#"{"a": 5}"#).is_err());
    }
}
