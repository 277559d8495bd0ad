//! The RocketMQ remoting wire protocol: framing, headers, codes and bodies.
//! Knows nothing of routes or connections (see ARCHITECTURE.md).

pub mod answer;
pub mod body;
pub mod codes;
pub mod frame;
pub mod header;
pub mod scan;
