//! Who a client is and what it may do.
//!
//! The identity is the peer's credentials of the Unix socket (`SO_PEERCRED`), which the
//! kernel records at `connect()` and a client cannot forge: uid, primary gid, pid. The role:
//! - [`Role::Admin`] for uid 0, and for members of the configured admin group — by primary
//!   gid, or by supplementary membership in the user database (`getgrouplist` on the
//!   user's name, so NSS sources count). The peer's `/proc/PID` is deliberately not read:
//!   the pid may have been reused since the connect.
//! - [`Role::ReadOnly`] for everyone else the socket's mode lets in.
//!
//! [`role_for`] is the pure decision; [`identify`] does the (blocking) lookups.

use lvs_proto::{Actor, Role};
use nix::unistd::{Gid, Group, Uid, User};
use tracing::warn;

/// The configured admin group, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminGroup {
    /// Its name.
    pub name: String,
    /// Its gid.
    pub gid: u32,
}

impl AdminGroup {
    /// Looks `name` up in the group database; `None` (with a warning) if there is no such
    /// group, in which case only root may change things.
    pub fn resolve(name: &str) -> Option<AdminGroup> {
        match Group::from_name(name) {
            Ok(Some(g)) => Some(AdminGroup {
                name: name.to_string(),
                gid: g.gid.as_raw(),
            }),
            Ok(None) => {
                warn!("control: admin group `{name}` does not exist; only root may change things");
                None
            }
            Err(e) => {
                warn!("control: looking up admin group `{name}`: {e}; only root may change things");
                None
            }
        }
    }
}

/// A connected client: who, what it may do, and (for refusals) why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its identity.
    pub actor: Actor,
    /// Its role.
    pub role: Role,
}

impl Peer {
    /// Why a read-only peer may not change things, for [`lvs_proto::ApiError::PermissionDenied`].
    pub fn refusal(&self, admin: Option<&AdminGroup>) -> String {
        if let Some(t) = &self.actor.tls {
            return format!(
                "read-only role: certificate `{}` is not in control.tls_admin_names",
                t.name
            );
        }
        match admin {
            Some(g) => format!(
                "read-only role: {} is neither root nor in group {}",
                self.actor, g.name
            ),
            None => format!(
                "read-only role: {} is not root (no admin group is configured)",
                self.actor
            ),
        }
    }
}

/// The role of a peer with user id `uid` in groups `gids` (primary and supplementary).
pub fn role_for(uid: u32, gids: &[u32], admin_gid: Option<u32>) -> Role {
    if uid == 0 || admin_gid.is_some_and(|g| gids.contains(&g)) {
        Role::Admin
    } else {
        Role::ReadOnly
    }
}

/// Resolves a peer's name and groups and decides its role. Blocking (user database).
pub fn identify(uid: u32, gid: u32, pid: Option<i32>, admin: Option<&AdminGroup>) -> Peer {
    let user = User::from_uid(Uid::from_raw(uid)).ok().flatten();
    let mut gids = vec![gid];
    if let (Some(u), Some(_)) = (&user, admin) {
        if let Ok(name) = std::ffi::CString::new(u.name.clone()) {
            if let Ok(list) = nix::unistd::getgrouplist(&name, Gid::from_raw(gid)) {
                gids.extend(list.into_iter().map(Gid::as_raw));
            }
        }
    }
    let role = role_for(uid, &gids, admin.map(|g| g.gid));
    Peer {
        actor: Actor {
            uid,
            gid,
            pid,
            user: user.map(|u| u.name),
            tls: None,
        },
        role,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_admin_group_members_may_change_things() {
        assert_eq!(role_for(0, &[0], None), Role::Admin);
        assert_eq!(role_for(0, &[1000], Some(990)), Role::Admin);
        assert_eq!(role_for(1000, &[1000], None), Role::ReadOnly);
        assert_eq!(role_for(1000, &[1000], Some(990)), Role::ReadOnly);
        // Primary or supplementary membership.
        assert_eq!(role_for(1000, &[990], Some(990)), Role::Admin);
        assert_eq!(role_for(1000, &[1000, 27, 990], Some(990)), Role::Admin);
    }

    #[test]
    fn identify_resolves_root() {
        let p = identify(0, 0, Some(1), None);
        assert_eq!(p.role, Role::Admin);
        assert_eq!(p.actor.user.as_deref(), Some("root"));
        // An unknown uid is still identified by number, read-only.
        let p = identify(4_000_000, 4_000_000, None, None);
        assert_eq!(p.role, Role::ReadOnly);
        assert_eq!(p.actor.user, None);
        assert_eq!(
            p.refusal(None),
            "read-only role: uid 4000000 is not root (no admin group is configured)"
        );
    }
}
