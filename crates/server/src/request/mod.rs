//! Requests: a frame's header becomes a typed `Command` (`command`), and `dispatch` answers
//! it: lookups from the shard's snapshot (`lookup`), registrations (`register`), KV, topic
//! lists, admin and config requests (`admin`) and route watches (`watch`); `reply` holds
//! the answers they share. Every `Answer`
//! (code, remark, ext fields, body) is built here; the route writer returns data only.
//! Must not: lock, block the executor, or touch the route table.

pub mod admin;
pub mod command;
pub mod dispatch;
pub mod lookup;
pub mod register;
pub mod reply;
pub mod watch;
