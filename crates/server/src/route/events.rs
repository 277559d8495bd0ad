//! One log line per broker lifecycle event, written by the writer: an address registered
//! (new, or back after it was removed), re-registered with its topics changed, unregistered
//! by request, removed because its connection closed, expired. A registration is one line
//! per round (`route::rounds`: one frame, or every chunk of a split registration), with
//! what the round changed; each chunk is a debug line, and so is a round that changed no
//! topic. Each line carries the cluster, broker name, id, address and cause as fields
//! (`cause` is a short token to filter on) and says what happened in its text. Nothing
//! here is per topic. Target `meridian_server::route::events`, so
//! `logLevel=warn,meridian_server::route::events=info` keeps just these lines and the warnings.

use super::rounds::{Chunk, Round, RoundEnd};
use super::table::{Expired, RegisterBroker, RouteTable, TopicCounts, Unregister};
use super::ConnId;
use meridian_protocol::body::DataVersion;

/// Who registered, copied before the table consumes the request.
#[derive(Debug)]
pub struct Registration {
    cluster: String,
    broker: String,
    id: i64,
    addr: String,
    /// Topics in the body; `None` for a re-send whose topics were not read (as before).
    topics: Option<usize>,
    data_version: DataVersion,
}

impl Registration {
    pub fn of(req: &RegisterBroker) -> Registration {
        Registration {
            cluster: req.cluster_name.clone(),
            broker: req.broker_name.clone(),
            id: req.broker_id,
            addr: req.broker_addr.clone(),
            topics: (!req.topics_unchanged).then_some(req.body.topic_configs.len()),
            data_version: req.body.data_version,
        }
    }

    /// The data version of this address's live entry, if it has one.
    pub fn live_version(&self, table: &RouteTable) -> Option<DataVersion> {
        table.live_info(&self.cluster, &self.addr).map(|l| l.data_version)
    }

    /// The address and its cluster: the key of its registration round.
    pub fn key(&self) -> (&str, &str) {
        (&self.cluster, &self.addr)
    }

    /// An applied registration of a live address: one chunk of its round, at debug.
    /// `before`: the address's data version before it (`None`: not registered).
    pub fn chunk(self, conn: ConnId, before: Option<DataVersion>, counts: TopicCounts) -> Chunk {
        let (cluster, broker, id, addr) = (&self.cluster, &self.broker, self.id, &self.addr);
        tracing::debug!(
            %cluster, %broker, id, %addr, topics = self.topics, data_version = self.data_version.counter,
            data_version_before = before.map(|v| v.counter), topics_added = counts.added,
            topics_removed = counts.removed, topics_changed = counts.changed, conn = conn.0,
            "registration chunk applied"
        );
        Chunk {
            cluster: self.cluster,
            broker: self.broker,
            id: self.id,
            addr: self.addr,
            topics: self.topics,
            data_version: self.data_version,
            counts,
            version_before: before,
        }
    }

    /// Registration step 6 (see `route::table::register`): another address holds this id with
    /// a newer state version, so this address's live entry went away (Java answers SUCCESS).
    pub fn removed_by_newer_state(&self, conn: ConnId) {
        let (cluster, broker, id, addr) = (&self.cluster, &self.broker, self.id, &self.addr);
        tracing::info!(
            %cluster, %broker, id, %addr, cause = %"stale_state_version", conn = conn.0,
            "broker removed: its id is held by another address with a newer state version"
        );
    }

    /// Step 6 for an address that was not registered: nothing changed.
    pub fn ignored(&self, conn: ConnId) {
        let (cluster, broker, id, addr) = (&self.cluster, &self.broker, self.id, &self.addr);
        tracing::debug!(
            %cluster, %broker, id, %addr, conn = conn.0,
            "registration ignored: its id is held by another address with a newer state version"
        );
    }

    /// A refused registration (the caller rate-limits).
    pub fn refused(&self, conn: ConnId, remark: &str) {
        let (cluster, broker, id, addr) = (&self.cluster, &self.broker, self.id, &self.addr);
        tracing::warn!(%cluster, %broker, id, %addr, conn = conn.0, "REGISTER_BROKER refused: {remark}");
    }
}

/// A registration round closed (see `route::rounds`): one info line if the address is new
/// or any of its group's topics changed, else debug (split registration changes the data
/// version with every chunk, so a new data version alone is not news).
pub fn round_closed(round: &Round, end: RoundEnd) {
    let (cluster, broker, id, addr) = (&round.cluster, &round.broker, round.id, &round.addr);
    let c = round.counts;
    let (chunks, topics, round_end) = (round.chunks, round.topics, end.as_str());
    let (data_version, data_version_first) = (round.data_version_last.counter, round.data_version_first.counter);
    let data_version_before = round.data_version_before.map(|v| v.counter);
    if round.new_address() {
        tracing::info!(
            %cluster, %broker, id, %addr, cause = %"new_address", chunks, topics, topics_added = c.added,
            topics_removed = c.removed, topics_changed = c.changed, data_version, data_version_first, round_end = %round_end,
            "broker registered: address not registered before (or removed since)"
        );
    } else if round.topics_changed() {
        tracing::info!(
            %cluster, %broker, id, %addr, cause = %"topics_changed", chunks, topics, topics_added = c.added,
            topics_removed = c.removed, topics_changed = c.changed, data_version, data_version_first,
            data_version_before, round_end = %round_end,
            "broker re-registered: its topics changed"
        );
    } else {
        let cause = if data_version_before == Some(data_version) { "unchanged" } else { "data_version_changed" };
        tracing::debug!(
            %cluster, %broker, id, %addr, cause = %cause, chunks, topics, data_version, data_version_first,
            data_version_before, round_end = %round_end,
            "broker re-registered, topics unchanged"
        );
    }
}

/// UNREGISTER_BROKER removed a registered address (`known`), or named one that is not.
pub fn unregistered(u: &Unregister, known: bool) {
    let (cluster, broker, id, addr) = (&u.cluster_name, &u.broker_name, u.broker_id, &u.broker_addr);
    if known {
        tracing::info!(%cluster, %broker, id, %addr, cause = %"unregister_request", "broker unregistered by its request");
    } else {
        tracing::debug!(%cluster, %broker, id, %addr, "UNREGISTER_BROKER for an address that is not registered");
    }
}

/// The connection a broker registered on closed.
pub fn connection_closed(u: &Unregister, conn: ConnId) {
    let (cluster, broker, id, addr) = (&u.cluster_name, &u.broker_name, u.broker_id, &u.broker_addr);
    tracing::info!(
        %cluster, %broker, id, %addr, cause = %"connection_closed", conn = conn.0,
        "broker removed: the connection it registered on closed"
    );
}

/// The expiry scan removed a silent broker. Warn, as Java does: a broker that vanishes
/// without closing its connection or unregistering is a crash or a network problem.
pub fn expired(e: &Expired) {
    let u = &e.broker;
    let (cluster, broker, id, addr) = (&u.cluster_name, &u.broker_name, u.broker_id, &u.broker_addr);
    if e.conn == ConnId::NONE {
        // Loaded by warm restart and never heard from since: there is no connection.
        tracing::warn!(
            %cluster, %broker, id, %addr, cause = %"heartbeat_timeout", silent_ms = e.silent_ms,
            timeout_ms = e.timeout_ms, provisional = true,
            "broker expired: provisional (from the warm-restart file) and not heard from for {} ms (timeout {} ms); unregistered",
            e.silent_ms,
            e.timeout_ms
        );
        return;
    }
    tracing::warn!(
        %cluster, %broker, id, %addr, cause = %"heartbeat_timeout", silent_ms = e.silent_ms, timeout_ms = e.timeout_ms,
        conn = e.conn.0,
        "broker expired: silent for {} ms (timeout {} ms); unregistered and its connection closed",
        e.silent_ms,
        e.timeout_ms
    );
}
