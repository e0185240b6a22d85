//! The errors an RPC answers with.
//!
//! Every message is one sentence that names what was wrong, so a CLI can print it as is
//! (`no virtual service tcp 203.0.113.10:81`, `weight 70000 out of range 0..=65535`,
//! `permission denied: read-only role`).

use serde::{Deserialize, Serialize};

use crate::types::{MAX_WEIGHT, RealServerKey, ServiceKey};

/// An RPC's error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum ApiError {
    /// No virtual service with that key.
    #[error("no virtual service {service}")]
    NoSuchService {
        /// The key asked for.
        service: ServiceKey,
    },
    /// The service has no real server with that key.
    #[error("no real server {real_server} in virtual service {service}")]
    NoSuchRealServer {
        /// The service.
        service: ServiceKey,
        /// The real server asked for.
        real_server: RealServerKey,
    },
    /// A weight above [`MAX_WEIGHT`].
    #[error("weight {weight} out of range 0..={MAX_WEIGHT}")]
    WeightOutOfRange {
        /// The weight asked for.
        weight: u64,
    },
    /// `undrain` or `drain_status` on a real server that is not drained.
    #[error("real server {real_server} in virtual service {service} is not drained")]
    NotDrained {
        /// The service.
        service: ServiceKey,
        /// The real server.
        real_server: RealServerKey,
    },
    /// The caller may not do this.
    #[error("permission denied: {reason}")]
    PermissionDenied {
        /// Why (`read-only role: uid 1000 is neither root nor in group lvsadm`).
        reason: String,
    },
    /// An argument is malformed or out of range (other than a weight).
    #[error("invalid argument: {message}")]
    InvalidArgument {
        /// What is wrong with it.
        message: String,
    },
    /// No connection entry or persistence template with that identity.
    #[error("no {what} in the connection table")]
    NoSuchConnection {
        /// What was asked for (`connection tcp 198.51.100.7:40000 -> 203.0.113.10:80`).
        what: String,
    },
    /// The service or real server to add is already there.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What (`virtual service tcp 203.0.113.10:80`).
        what: String,
    },
    /// The running configuration could not be written.
    #[error("cannot save the configuration: {message}")]
    SaveFailed {
        /// Why (names the file).
        message: String,
    },
    /// The daemon cannot answer now (shutting down, or its forwarding loop did not answer
    /// in time). Retrying later may work.
    #[error("daemon unavailable: {message}")]
    Unavailable {
        /// Why.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn messages_name_what_was_wrong() {
        let service = ServiceKey::tcp(Ipv4Addr::new(203, 0, 113, 10), 81);
        assert_eq!(
            ApiError::NoSuchService { service }.to_string(),
            "no virtual service tcp 203.0.113.10:81"
        );
        assert_eq!(
            ApiError::WeightOutOfRange { weight: 70000 }.to_string(),
            "weight 70000 out of range 0..=65535"
        );
        assert_eq!(
            ApiError::PermissionDenied {
                reason: "read-only role".into()
            }
            .to_string(),
            "permission denied: read-only role"
        );
        let real_server = RealServerKey::new(Ipv4Addr::new(192, 0, 2, 19), 80);
        assert_eq!(
            ApiError::NoSuchRealServer {
                service,
                real_server
            }
            .to_string(),
            "no real server 192.0.2.19:80 in virtual service tcp 203.0.113.10:81"
        );
    }

    #[test]
    fn round_trips_through_json() {
        let e = ApiError::WeightOutOfRange { weight: 70000 };
        let json = serde_json::to_string(&e).unwrap_or_default();
        assert_eq!(json, r#"{"error":"weight_out_of_range","weight":70000}"#);
        let back: ApiError = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, e);
    }
}
