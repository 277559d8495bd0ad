//! One log line per broker lifecycle event, written by the writer: an address registered
//! (new, or back after it was removed), re-registered with a new data version, unregistered
//! by request, removed because its connection closed, expired. Each line carries the
//! cluster, broker name, id, address and cause as fields (`cause` is a short token to
//! filter on) and says what happened in its text. Unchanged periodic re-registrations are
//! at debug. Nothing here is per topic. Target `meridian::route::events`, so
//! `logLevel=warn,meridian::route::events=info` keeps just these lines and the warnings.

use super::table::{Expired, RegisterBroker, RouteTable, Unregister};
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

    /// An accepted registration. `before`/`after`: the address's live entry's data version
    /// before and after it (`None`: no entry).
    pub fn accepted(&self, conn: ConnId, before: Option<DataVersion>, after: Option<DataVersion>) {
        let (cluster, broker, id, addr) = (&self.cluster, &self.broker, self.id, &self.addr);
        let data_version = self.data_version.counter;
        match (before, after) {
            (None, Some(_)) => tracing::info!(
                %cluster, %broker, id, %addr, cause = %"new_address", topics = self.topics, data_version, conn = conn.0,
                "broker registered: address not registered before (or removed since)"
            ),
            (Some(old), Some(new)) if old != new => tracing::info!(
                %cluster, %broker, id, %addr, cause = %"data_version_changed", topics = self.topics, data_version,
                data_version_before = old.counter, conn = conn.0,
                "broker re-registered with a new data version (its topics may have changed)"
            ),
            (Some(_), Some(_)) => tracing::debug!(
                %cluster, %broker, id, %addr, cause = %"unchanged", data_version, conn = conn.0,
                "broker re-registered, unchanged"
            ),
            // Registration step 6 (see `route::table::register`): another address holds this id with a newer state
            // version, so this address's live entry went away (Java answers SUCCESS).
            (Some(_), None) => tracing::info!(
                %cluster, %broker, id, %addr, cause = %"stale_state_version", conn = conn.0,
                "broker removed: its id is held by another address with a newer state version"
            ),
            (None, None) => tracing::debug!(
                %cluster, %broker, id, %addr, conn = conn.0,
                "registration ignored: its id is held by another address with a newer state version"
            ),
        }
    }

    /// A refused registration (the caller rate-limits).
    pub fn refused(&self, conn: ConnId, remark: &str) {
        let (cluster, broker, id, addr) = (&self.cluster, &self.broker, self.id, &self.addr);
        tracing::warn!(%cluster, %broker, id, %addr, conn = conn.0, "REGISTER_BROKER refused: {remark}");
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
