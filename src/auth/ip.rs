//! `auth.ip`: client address allow and deny lists (CIDR), decided before any credential.

use super::Denied;
use ipnet::IpNet;
use std::net::IpAddr;

/// Deny wins over allow; an empty allow list allows every address not denied.
pub(super) struct IpRule {
    allow: Box<[IpNet]>,
    deny: Box<[IpNet]>,
}

impl IpRule {
    pub(super) fn new(allow: &[IpNet], deny: &[IpNet]) -> IpRule {
        IpRule {
            allow: allow.iter().map(IpNet::trunc).collect(),
            deny: deny.iter().map(IpNet::trunc).collect(),
        }
    }

    /// A linear scan: lists are short, and it neither allocates nor branches on a secret.
    pub(super) fn check(&self, client: IpAddr) -> Result<(), Denied<'static>> {
        let ip = canonical(client);
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return Err(forbidden("client address denied"));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|n| n.contains(&ip)) {
            return Err(forbidden("client address not in allow list"));
        }
        Ok(())
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, from a dual-stack socket) is matched as the
/// IPv4 address it is, so `10.0.0.0/8` covers it.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn forbidden(reason: &'static str) -> Denied<'static> {
    Denied {
        status: 403,
        www_authenticate: None,
        reason,
    }
}
