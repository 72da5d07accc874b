//! JSONL records: one JSON object per line.

use super::{Inner, Item, RawFields, Reader};
use crate::error::{Error, Result};
use serde_json::Value;
use std::io::BufRead;

/// What a JSON value is, for a reject's reason.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A mapped field's value as text: strings, numbers and booleans are kept, null and a missing
/// field are absent, arrays and objects are an error (the reason).
fn scalar(v: Option<&Value>, name: &str) -> std::result::Result<Option<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(v) => Err(format!(
            "{name} is {}: expected a string or a number",
            kind(v)
        )),
    }
}

impl Reader {
    pub(super) fn next_jsonl(&mut self) -> Option<Result<Item>> {
        loop {
            let Inner::Jsonl {
                rdr,
                line,
                buf,
                columns,
            } = &mut self.inner
            else {
                return None;
            };
            buf.clear();
            match rdr.read_until(b'\n', buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    return Some(Err(Error::input(
                        &self.file,
                        format!("line {}: {e}", *line + 1),
                    )))
                }
            }
            *line += 1;
            let ln = *line;
            if ln == 1 && buf.starts_with(b"\xef\xbb\xbf") {
                buf.drain(..3);
            }
            if buf.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            let columns = columns.clone();
            let (value, utf8_ok) = match std::str::from_utf8(buf) {
                Ok(s) => (serde_json::from_str::<Value>(s), true),
                Err(_) => (
                    serde_json::from_str::<Value>(&String::from_utf8_lossy(buf)),
                    false,
                ),
            };
            let value = match value {
                Ok(v) => v,
                Err(e) => {
                    let reason = if utf8_ok {
                        format!("invalid JSON: {e}")
                    } else {
                        self.encoding.invalid_reason()
                    };
                    return Some(Ok(self.reject(None, ln, None, reason)));
                }
            };
            let Some(obj) = value.as_object() else {
                let reason = format!("expected a JSON object, found {}", kind(&value));
                return Some(Ok(self.reject(None, ln, None, reason)));
            };
            // Ids are strings or integers; anything else is rejected rather than replaced.
            let id = match obj.get(&columns.id) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
                Some(v) => Err(format!(
                    "id is {}: ids must be strings or integers",
                    match v {
                        Value::Number(_) => "not an integer",
                        v => kind(v),
                    }
                )),
            };
            let id_guess = id.as_ref().ok().cloned().flatten();
            if !utf8_ok {
                return Some(Ok(self.reject(
                    id_guess,
                    ln,
                    None,
                    self.encoding.invalid_reason(),
                )));
            }
            let id = match id {
                Ok(id) => id,
                Err(reason) => return Some(Ok(self.reject(None, ln, Some(&columns.id), reason))),
            };
            let mut raw = RawFields {
                id,
                ..RawFields::default()
            };
            match obj.get(&columns.text) {
                None | Some(Value::Null) => raw.text = None,
                Some(Value::String(s)) => raw.text = Some(s.clone()),
                Some(_) => {
                    let reason = "text is not a string".to_string();
                    return Some(Ok(self.reject(id_guess, ln, Some(&columns.text), reason)));
                }
            }
            for (slot, name) in [
                (&mut raw.time, &columns.time),
                (&mut raw.channel, &columns.channel),
                (&mut raw.rating, &columns.rating),
                (&mut raw.tier, &columns.tier),
                (&mut raw.product, &columns.product),
            ] {
                match scalar(obj.get(name), name) {
                    Ok(v) => *slot = v,
                    Err(reason) => return Some(Ok(self.reject(id_guess, ln, Some(name), reason))),
                }
            }
            return Some(Ok(self.finish(raw, ln)));
        }
    }
}
