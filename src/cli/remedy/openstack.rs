//! OpenStack: `openstack security group rule create`.

use super::Wanted;
use crate::model::{PortRange, Protocol};

pub(super) const NAMES_ICMP_TYPES: bool = true;

pub(super) fn command(w: &Wanted) -> String {
    let dir = if w.inbound { "--ingress" } else { "--egress" };
    let port = match (w.range, w.icmp_type) {
        (Some(r), _) => format!(" --dst-port {}", colon(r)),
        (None, Some(t)) => {
            let code = w
                .icmp_code
                .map_or(String::new(), |c| format!(" --icmp-code {c}"));
            format!(" --icmp-type {t}{code}")
        }
        (None, None) => String::new(),
    };
    let proto = if w.protocol == Protocol::All {
        "any".to_string()
    } else {
        w.protocol.to_string()
    };
    format!(
        "openstack security group rule create {dir} --protocol {proto}{port} --remote-ip {} {}",
        w.peer, w.group
    )
}

/// OpenStack's spelling of a port range.
fn colon(range: PortRange) -> String {
    if range.first == range.last {
        range.first.to_string()
    } else {
        format!("{}:{}", range.first, range.last)
    }
}
