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

/// What an exposed port gives whoever reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// A remote login: the security tools' own checks for the world (critical).
    RemoteLogin,
    /// Administration, a data store, a development server, a legacy clear-text protocol.
    Sensitive,
}

/// One port security tools report when it is open to 0.0.0.0/0 or ::/0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExposedPort {
    pub port: u16,
    pub service: &'static str,
    pub exposure: Exposure,
}

const fn exposed(port: u16, service: &'static str, exposure: Exposure) -> ExposedPort {
    ExposedPort {
        port,
        service,
        exposure,
    }
}

/// TCP ports that must not be open to the world. Sources:
/// - AWS Security Hub, EC2.13 (22) and EC2.14 (3389), the remote logins; EC2.19, "Security
///   groups should not allow unrestricted access to ports with high risk": 20, 21, 22, 23,
///   25, 110, 135, 143, 445, 1433, 1434, 3000, 3306, 3389, 4333, 5000, 5432, 5500, 5601,
///   8080, 8088, 8888, 9200, 9300.
/// - The seed document QingCloud "常用端口" (table "常用端口"): Oracle 1521.
/// - Prowler's and ScoutSuite's checks for data stores and daemons open to the internet:
///   Redis 6379, Memcached 11211, MongoDB 27017-27018, Cassandra 7199 and 9160, Kafka 9092,
///   the Docker daemon 2375-2376, VNC 5900, WinRM 5985-5986.
pub const EXPOSED_TCP: [ExposedPort; 37] = {
    use Exposure::{RemoteLogin, Sensitive};
    [
        exposed(20, "FTP data", Sensitive),
        exposed(21, "FTP", Sensitive),
        exposed(22, "SSH", RemoteLogin),
        exposed(23, "Telnet", Sensitive),
        exposed(25, "SMTP", Sensitive),
        exposed(110, "POP3", Sensitive),
        exposed(135, "Windows RPC", Sensitive),
        exposed(143, "IMAP", Sensitive),
        exposed(445, "SMB", Sensitive),
        exposed(1433, "SQL Server", Sensitive),
        exposed(1434, "SQL Server browser", Sensitive),
        exposed(1521, "Oracle", Sensitive),
        exposed(2375, "Docker daemon", Sensitive),
        exposed(2376, "Docker daemon (TLS)", Sensitive),
        exposed(3000, "development server", Sensitive),
        exposed(3306, "MySQL", Sensitive),
        exposed(3389, "Remote Desktop", RemoteLogin),
        exposed(4333, "ahsp", Sensitive),
        exposed(5000, "development server", Sensitive),
        exposed(5432, "PostgreSQL", Sensitive),
        exposed(5500, "fcp-addr-srvr1", Sensitive),
        exposed(5601, "Kibana", Sensitive),
        exposed(5900, "VNC", Sensitive),
        exposed(5985, "WinRM", Sensitive),
        exposed(5986, "WinRM (TLS)", Sensitive),
        exposed(6379, "Redis", Sensitive),
        exposed(7199, "Cassandra JMX", Sensitive),
        exposed(8080, "HTTP proxy", Sensitive),
        exposed(8088, "HTTP alternate", Sensitive),
        exposed(8888, "HTTP alternate", Sensitive),
        exposed(9092, "Kafka", Sensitive),
        exposed(9160, "Cassandra Thrift", Sensitive),
        exposed(9200, "Elasticsearch", Sensitive),
        exposed(9300, "Elasticsearch transport", Sensitive),
        exposed(11211, "Memcached", Sensitive),
        exposed(27017, "MongoDB", Sensitive),
        exposed(27018, "MongoDB shard", Sensitive),
    ]
};

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
