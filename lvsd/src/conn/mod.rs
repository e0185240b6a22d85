//! Connection tracking, pure: the IPVS TCP state table and timeouts ([`tcp`]) and the
//! connection table ([`table`], generic over the address family: [`ConnAddr`], IPv4 by
//! default). No clock reads; time is passed in by the caller.

mod index;
pub mod table;
pub mod tcp;

pub use table::{
    Activity, Conn, ConnAddr, ConnId, ConnState, ConnTable, FlowKey, NewConn, NewTemplate,
};
pub use tcp::{Direction, IpvsadmTimeouts, TcpFlags, TcpState, Timeouts};
