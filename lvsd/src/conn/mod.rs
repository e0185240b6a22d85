//! Connection tracking, pure: the IPVS TCP state table and timeouts ([`tcp`]) and the
//! connection table ([`table`]). No clock reads; time is passed in by the caller.

mod index;
pub mod table;
pub mod tcp;

pub use tcp::{Direction, IpvsadmTimeouts, TcpFlags, TcpState, Timeouts};
