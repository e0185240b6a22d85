//! The control API: one `#[tarpc::service]` trait, one `///` line per RPC.
//!
//! Rules of the contract:
//! - The API grows by adding RPCs (and [`crate::API_LEVEL`] goes up); an RPC, once
//!   published, keeps its name, arguments and result.
//! - Reading RPCs are open to every client the socket lets in; mutating ones (marked
//!   "admin" below) need the admin role ([`crate::Role`]) and are written to the daemon's
//!   audit log, whatever their result. A read-only caller gets
//!   [`ApiError::PermissionDenied`].
//! - A change made through the API reaches the data path within 100 ms and drops no packet;
//!   existing connections continue. It changes the running configuration only: a reload
//!   (SIGHUP) applies the file again, dropping API edits (weights, added or removed
//!   services and real servers) that were not saved to it first with `save_config`.
//! - There is no streaming: events and scheduler decisions are read by sequence number
//!   (`since`), so a poller never misses or duplicates one while the daemon's ring still
//!   holds it.

use crate::error::ApiError;
use crate::types::{
    ConnEntry, ConnKey, ConnPage, ConnQuery, DecisionInfo, DrainInfo, Event, FlowSpec,
    NewRealServer, NewService, PeerInfo, RealServerKey, SavedConfig, ServiceInfo, ServiceKey,
    SimulateInfo, TemplateKey, Topology, VersionInfo, VrrpInstanceInfo, WeightChange,
};

/// The lvsd control service.
#[tarpc::service]
pub trait LvsControl {
    /// The daemon's version, API level, pid and start time.
    async fn version() -> VersionInfo;

    /// Who the daemon thinks the caller is, and its role (read-only or admin).
    async fn whoami() -> PeerInfo;

    /// Every virtual service with its real servers: weights, active/inactive/persistent
    /// connections, OVERLOAD, thresholds, drain state, counters and rates (ipvsadm `-Ln`,
    /// `--stats`, `--rate` in one snapshot), in configuration order.
    async fn services() -> Result<Vec<ServiceInfo>, ApiError>;

    /// Admin: sets a real server's weight (0..=65535) now; a drained server stops being
    /// drained (its remembered weight is forgotten).
    async fn set_weight(
        service: ServiceKey,
        real_server: RealServerKey,
        weight: u32,
    ) -> Result<WeightChange, ApiError>;

    /// Admin: drains a real server: weight 0 now, the old weight remembered (draining a
    /// drained server keeps the first one); answers the progress (connections left).
    async fn drain(service: ServiceKey, real_server: RealServerKey) -> Result<DrainInfo, ApiError>;

    /// The progress of a drain (connections left); `NotDrained` if it is not drained.
    async fn drain_status(
        service: ServiceKey,
        real_server: RealServerKey,
    ) -> Result<DrainInfo, ApiError>;

    /// Admin: gives a drained real server its remembered weight back; `NotDrained` if it is
    /// not drained.
    async fn undrain(
        service: ServiceKey,
        real_server: RealServerKey,
    ) -> Result<WeightChange, ApiError>;

    /// One page of the connection table, persistence templates included (ipvsadm `-Lnc`),
    /// filtered and in a stable order; continue with the page's `next_cursor`.
    async fn connections(query: ConnQuery) -> Result<ConnPage, ApiError>;

    /// The service's recent scheduling decisions with sequence number above `since`,
    /// oldest first; each call also keeps the service recording for the next 10 s (nothing
    /// is recorded while nobody asks).
    async fn decisions_since(
        service: ServiceKey,
        since: u64,
    ) -> Result<Vec<DecisionInfo>, ApiError>;

    /// Which real server a new connection `flow` would reach now, and why, without
    /// changing anything (a flow with a live connection is answered from it).
    async fn simulate(flow: FlowSpec) -> Result<SimulateInfo, ApiError>;

    /// Events with sequence number above `since`, oldest first (weight edits and who made
    /// them, drains, reloads, ...); the daemon keeps the most recent 1024.
    async fn events_since(since: u64) -> Result<Vec<Event>, ApiError>;

    /// Admin: zeroes the counters and rate estimates of one service and its real servers,
    /// or of all services (ipvsadm `-Z`).
    async fn zero_counters(service: Option<ServiceKey>) -> Result<(), ApiError>;

    /// Admin (API level 2): removes one connection entry now, settling its real server's
    /// counts as expiry does; answers the entry as it was. The client's next packet is
    /// scheduled anew (a TCP packet without SYN is then dropped, as in IPVS).
    async fn kill_connection(conn: ConnKey) -> Result<ConnEntry, ApiError>;

    /// Admin (API level 2): removes one persistence template now (its connections
    /// continue; the client's next new connection is scheduled anew); answers it as it was.
    async fn kill_template(template: TemplateKey) -> Result<ConnEntry, ApiError>;

    /// Admin (API level 2): writes the running configuration, API weight edits included,
    /// as TOML in the documented schema to `path` (absolute; a symlink there is refused;
    /// mode 0640, replaced atomically). A reload (SIGHUP) re-reads the daemon's own file,
    /// so save to it first to keep API edits across a reload.
    async fn save_config(path: String) -> Result<SavedConfig, ApiError>;

    /// API level 2: the director's interfaces with their addresses, which VIP lives on
    /// which interface and whether lvsd added it, the DIPs, and how each real server is
    /// reached (interface, next hop, forwarding method, next hop's MAC).
    async fn topology() -> Result<Topology, ApiError>;

    /// Admin (API level 2): adds a virtual service without real servers; the VIP is added
    /// to an interface and the kernel guard and packet filters are updated as on a reload.
    /// Checked as the configuration file is (`InvalidArgument` names what is wrong).
    async fn add_service(service: NewService) -> Result<(), ApiError>;

    /// Admin (API level 2): removes a virtual service and its connections (a VIP lvsd
    /// added and no other service uses is removed).
    async fn remove_service(service: ServiceKey) -> Result<(), ApiError>;

    /// Admin (API level 2): adds a real server to a service, reached the way the
    /// configuration file's would be (the kernel's route to it; `InvalidArgument` if none
    /// works); it enters the scheduling list at the head, as with ipvsadm `-a`.
    async fn add_real_server(
        service: ServiceKey,
        real_server: NewRealServer,
    ) -> Result<(), ApiError>;

    /// Admin (API level 2): removes a real server from a service; it gets no new
    /// connections and its existing ones continue until they end (IPVS's trash).
    async fn remove_real_server(
        service: ServiceKey,
        real_server: RealServerKey,
    ) -> Result<(), ApiError>;

    /// API level 3: the director's VRRP instances with state, priorities, the current
    /// master, advert counters and transitions; empty when none is configured.
    async fn vrrp() -> Result<Vec<VrrpInstanceInfo>, ApiError>;
}
