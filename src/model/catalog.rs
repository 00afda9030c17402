//! The port catalogues sgprobe grew from, kept as data.

use super::flow::{FlowProtocol, FlowSpec};
use super::rule::{Direction, PortRange};

/// One row of the console's common-port table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommonPort {
    pub direction: Direction,
    pub spec: FlowSpec,
    pub purpose: &'static str,
}

const fn common(
    direction: Direction,
    protocol: FlowProtocol,
    port: Option<u16>,
    purpose: &'static str,
) -> CommonPort {
    CommonPort {
        direction,
        spec: FlowSpec { protocol, port },
        purpose,
    }
}

/// The ports the console's Port Verification checks by default.
/// Source: the seed document Tencent Cloud VPC "Port Verification", table "common ports".
pub const COMMON_PORTS: [CommonPort; 8] = {
    use Direction::{Inbound, Outbound};
    use FlowProtocol::{All, Icmp, Tcp};
    [
        common(Inbound, Icmp, None, "control messages such as ping"),
        common(Inbound, Tcp, Some(20), "FTP uploads and downloads"),
        common(Inbound, Tcp, Some(21), "FTP uploads and downloads"),
        common(Inbound, Tcp, Some(22), "Linux SSH login"),
        common(Inbound, Tcp, Some(3389), "Windows remote login"),
        common(Inbound, Tcp, Some(443), "website HTTPS"),
        common(Inbound, Tcp, Some(80), "website HTTP"),
        common(
            Outbound,
            All,
            None,
            "all outbound traffic to external networks",
        ),
    ]
};

/// A well-known service and the default port it listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServicePort {
    pub service: &'static str,
    pub protocol: FlowProtocol,
    pub port: u16,
}

const fn service(service: &'static str, protocol: FlowProtocol, port: u16) -> ServicePort {
    ServicePort {
        service,
        protocol,
        port,
    }
}

/// Default ports of typical applications.
/// Source: the seed document QingCloud "常用端口" (table "常用端口").
pub const SERVICE_PORTS: [ServicePort; 17] = {
    use FlowProtocol::{Tcp, Udp};
    [
        service("FTP", Tcp, 21),
        service("SSH", Tcp, 22),
        service("Telnet", Tcp, 23),
        service("SMTP", Tcp, 25),
        service("HTTP", Tcp, 80),
        service("POP3", Tcp, 110),
        service("IMAP", Tcp, 143),
        service("HTTPS", Tcp, 443),
        service("SQL Server", Tcp, 1433),
        service("SQL Server browser", Udp, 1434),
        service("Oracle", Tcp, 1521),
        service("MySQL", Tcp, 3306),
        service("Windows Remote Desktop", Tcp, 3389),
        service("HTTP proxy", Tcp, 8080),
        service("NetBIOS name", Udp, 137),
        service("NetBIOS datagram", Udp, 138),
        service("NetBIOS session", Tcp, 139),
    ]
};

/// The service usually behind a port, for labelling tables.
pub fn service_name(spec: FlowSpec) -> Option<&'static str> {
    SERVICE_PORTS
        .iter()
        .find(|s| s.protocol == spec.protocol && Some(s.port) == spec.port)
        .map(|s| s.service)
}

/// Ephemeral (client source) port ranges by client type, for stateless layers' return traffic.
/// Source: the seed document QingCloud "常用端口" (table "临时端口").
pub const EPHEMERAL_RANGES: [(&str, PortRange); 4] = [
    (
        "Linux",
        PortRange {
            first: 32768,
            last: 61000,
        },
    ),
    (
        "Windows Server 2003",
        PortRange {
            first: 1025,
            last: 5000,
        },
    ),
    (
        "Windows Server 2008 and later",
        PortRange {
            first: 49152,
            last: 65535,
        },
    ),
    (
        "NAT gateway",
        PortRange {
            first: 1024,
            last: 65535,
        },
    ),
];

/// TCP ports some carriers block as high-risk.
/// Source: the seed document QingCloud "常用端口" (table "高危端口", TCP row).
pub const HIGH_RISK_TCP: [u16; 21] = [
    42, 135, 137, 138, 139, 444, 445, 593, 1025, 1068, 1434, 3127, 3128, 3129, 3130, 4444, 4789,
    5554, 5800, 5900, 9996,
];

/// UDP ports some carriers block as high-risk (`135~139` written out).
/// Source: the seed document QingCloud "常用端口" (table "高危端口", UDP row).
pub const HIGH_RISK_UDP: [u16; 14] = [
    135, 136, 137, 138, 139, 1026, 1027, 1028, 1068, 1433, 1434, 4789, 5554, 9996,
];

/// The source ports sgprobe's own probes use: outside Linux's default ip_local_port_range
/// (32768-60999) and inside every documented network-ACL return range.
pub const PROBE_SOURCE_PORTS: PortRange = PortRange {
    first: 61001,
    last: 65535,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_source_ports_lie_inside_the_seed_ephemeral_ranges_of_windows_and_nat() {
        for (client, range) in EPHEMERAL_RANGES {
            let inside =
                range.contains(PROBE_SOURCE_PORTS.first) && range.contains(PROBE_SOURCE_PORTS.last);
            assert_eq!(
                inside,
                client != "Linux" && client != "Windows Server 2003",
                "{client}"
            );
        }
    }

    #[test]
    fn service_names_follow_the_seed_table() {
        let ssh = FlowSpec {
            protocol: FlowProtocol::Tcp,
            port: Some(22),
        };
        assert_eq!(service_name(ssh), Some("SSH"));
        let udp22 = FlowSpec {
            protocol: FlowProtocol::Udp,
            port: Some(22),
        };
        assert_eq!(service_name(udp22), None);
    }
}
