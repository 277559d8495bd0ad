//! Answers that more than one kind of request gives. Must not: hold request logic.

use meridian_protocol::answer::Answer;
use meridian_protocol::codes;

/// The writer thread is gone (the server is stopping): the request was not applied.
pub fn writer_gone() -> Answer {
    Answer::error(codes::SYSTEM_ERROR, "route writer is not running (server shutting down)")
}
