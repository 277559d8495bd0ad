//! `Answer`: a response before it is encoded (code, remark, ext fields, body). Produced by
//! the handler and by the writer, written by the connection. Knows nothing of routes.

use super::codes;
use bytes::Bytes;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Answer {
    pub code: i32,
    pub remark: Option<String>,
    /// `Some(vec![])` is written as `"extFields":{}`, as Java does for typed response headers.
    pub ext_fields: Option<Vec<(&'static str, String)>>,
    pub body: Bytes,
}

impl Answer {
    pub fn ok(body: impl Into<Bytes>) -> Answer {
        Answer { code: codes::SUCCESS, body: body.into(), ..Answer::default() }
    }

    pub fn ok_with_ext(ext_fields: Vec<(&'static str, String)>, body: impl Into<Bytes>) -> Answer {
        Answer { code: codes::SUCCESS, remark: None, ext_fields: Some(ext_fields), body: body.into() }
    }

    pub fn error(code: i32, remark: impl Into<String>) -> Answer {
        Answer { code, remark: Some(remark.into()), ..Answer::default() }
    }

    /// Java creates a typed response header before any check, so some errors carry
    /// `"extFields":{}` (REGISTER_BROKER, GET_KV_CONFIG misses).
    pub fn error_with_empty_ext(code: i32, remark: impl Into<String>) -> Answer {
        Answer { code, remark: Some(remark.into()), ext_fields: Some(Vec::new()), body: Bytes::new() }
    }
}
