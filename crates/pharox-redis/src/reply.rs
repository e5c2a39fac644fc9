//! Decoding script replies and stored records into pharox types, without
//! ever quoting them in errors: a reply may hold stored proxy records, and
//! so credentials (I8).

use deadpool_redis::redis::Value;
use pharox_core::{Error, Proxy, Result};

pub(crate) fn corrupt(what: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::Corrupt(what.into())
}

/// A stored record that does not parse, described by the kind of error and
/// its position only: a serde message may quote the offending value.
pub(crate) fn unparsable(what: &str, e: &serde_json::Error) -> Error {
    let kind = match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Data => "JSON of the wrong shape",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    corrupt(format!(
        "stored {what}: {kind} at line {} column {}",
        e.line(),
        e.column()
    ))
}

/// The kind of a reply, for errors: never its content.
pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Int(_) => "an integer",
        Value::BulkString(_) | Value::SimpleString(_) => "a string",
        Value::Array(_) => "an array",
        Value::Okay => "OK",
        Value::ServerError(_) => "an error reply",
        _ => "another kind of reply",
    }
}

pub(crate) fn int(v: &Value) -> Result<i64> {
    match v {
        Value::Int(n) => Ok(*n),
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| corrupt("expected an integer")),
        _ => Err(corrupt(format!("expected an integer, got {}", kind_of(v)))),
    }
}

pub(crate) fn u64_of(n: i64, what: &'static str) -> Result<u64> {
    u64::try_from(n).map_err(|_| corrupt(what))
}

pub(crate) fn text(v: &Value) -> Result<&str> {
    match v {
        Value::BulkString(b) => std::str::from_utf8(b).map_err(|_| corrupt("invalid UTF-8")),
        Value::SimpleString(s) => Ok(s),
        _ => Err(corrupt("expected a string")),
    }
}

pub(crate) fn array(v: Value) -> Result<Vec<Value>> {
    match v {
        Value::Array(items) => Ok(items),
        other => Err(corrupt(format!(
            "expected an array, got {}",
            kind_of(&other)
        ))),
    }
}

/// A stored proxy record with its live lease count.
pub(crate) fn parse_proxy(json: &Value, load: i64) -> Result<Proxy> {
    let mut proxy: Proxy =
        serde_json::from_str(text(json)?).map_err(|e| unparsable("proxy", &e))?;
    proxy.current_leases = u32::try_from(load).map_err(|_| corrupt("lease count"))?;
    Ok(proxy)
}
