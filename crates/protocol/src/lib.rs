//! The RocketMQ remoting wire protocol: framing, headers, codes and bodies.
//! Knows nothing of routes or connections (see ARCHITECTURE.md).
//!
//! Module graph (acyclic): `codes`, `frame`, `perm` and `cursor` are leaves; `header` and
//! `body` each keep their value types in a `model` child that the codec children share;
//! `answer` uses `codes` only; `acl` (request signatures) is a leaf.

pub mod acl;
pub mod answer;
pub mod body;
pub mod codes;
mod cursor;
pub mod frame;
pub mod header;
pub mod perm;
