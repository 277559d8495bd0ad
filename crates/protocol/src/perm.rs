//! Topic and broker permission bits, as Java's `PermName`: a queue's or a broker's `perm` is
//! an OR of them (6 = READ | WRITE is the default). Holds no logic beyond naming them.

/// Clients may consume from it (`PermName.PERM_READ`).
pub const READ: i32 = 4;
/// Clients may produce to it (`PermName.PERM_WRITE`); wiping a broker's write permission
/// clears this bit.
pub const WRITE: i32 = 2;
/// The topic's config is inherited by new topics (`PermName.PERM_INHERIT`).
pub const INHERIT: i32 = 1;
/// The broker is preferred for the topic (`PermName.PERM_PRIORITY`).
pub const PRIORITY: i32 = 8;

/// Every bit with Java's name for it, highest meaning first (READ, WRITE, INHERIT, PRIORITY).
pub const NAMES: [(i32, &str); 4] = [(READ, "READ"), (WRITE, "WRITE"), (INHERIT, "INHERIT"), (PRIORITY, "PRIORITY")];
