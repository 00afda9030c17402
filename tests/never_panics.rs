//! Property: no importer panics, whatever the input: arbitrary JSON built from the keys the
//! importers look for (so the generator reaches deep code), and arbitrary text.

use std::path::Path;

use proptest::prelude::*;
use serde_json::{Map, Value};
use sgprobe::model::{Direction, Flow, FlowPeer, parse_port_spec};
use sgprobe::policy::{evaluate, layers};
use sgprobe::sources::{Format, parse, read};

const KEYS: &[&str] = &[
    "Response",
    "SecurityGroupPolicySet",
    "Ingress",
    "Egress",
    "PolicyIndex",
    "Protocol",
    "Port",
    "CidrBlock",
    "Ipv6CidrBlock",
    "SecurityGroupId",
    "AddressTemplate",
    "AddressId",
    "AddressGroupId",
    "ServiceTemplate",
    "ServiceId",
    "ServiceGroupId",
    "Action",
    "InstanceSet",
    "InstanceId",
    "PrivateIpAddresses",
    "SecurityGroupIds",
    "Tags",
    "Key",
    "Value",
    "AddressTemplateSet",
    "AddressTemplateId",
    "AddressSet",
    "AddressExtraSet",
    "Address",
    "AddressTemplateGroupSet",
    "AddressTemplateGroupId",
    "AddressTemplateIdSet",
    "ServiceTemplateSet",
    "ServiceTemplateId",
    "ServiceSet",
    "ServiceTemplateGroupSet",
    "security_group_rule_set",
    "security_group_id",
    "direction",
    "action",
    "protocol",
    "val1",
    "val2",
    "val3",
    "priority",
    "disabled",
    "instance_set",
    "instance_id",
    "vxnets",
    "private_ip",
    "eip",
    "eip_addr",
    "security_group",
    "security_group_ipset_set",
    "security_group_ipset_id",
    "ipset_type",
    "val",
    "SecurityGroups",
    "GroupId",
    "IpPermissions",
    "IpPermissionsEgress",
    "IpProtocol",
    "FromPort",
    "ToPort",
    "IpRanges",
    "CidrIp",
    "Ipv6Ranges",
    "CidrIpv6",
    "PrefixListIds",
    "PrefixListId",
    "UserIdGroupPairs",
    "SecurityGroupRules",
    "IsEgress",
    "CidrIpv4",
    "ReferencedGroupInfo",
    "Reservations",
    "Instances",
    "NetworkInterfaces",
    "Entries",
    "Cidr",
    // AWS network ACLs and subnets
    "NetworkAcls",
    "NetworkAclId",
    "Associations",
    "SubnetId",
    "RuleNumber",
    "RuleAction",
    "Egress",
    "PortRange",
    "From",
    "To",
    "IcmpTypeCode",
    "Type",
    "Code",
    "Subnets",
    "Ipv6CidrBlockAssociationSet",
    // Alibaba
    "Permissions",
    "Permission",
    "Direction",
    "Policy",
    "Priority",
    "SourceCidrIp",
    "Ipv6SourceCidrIp",
    "SourceGroupId",
    "SourcePrefixListId",
    "DestCidrIp",
    "SourcePortRange",
    "InnerAccessPolicy",
    "SecurityGroup",
    "SecurityGroupType",
    "Instance",
    "VpcAttributes",
    "PrivateIpAddress",
    "IpAddress",
    "EipAddress",
    "Tag",
    "TagKey",
    // OpenStack
    "rules",
    "ethertype",
    "port_range_min",
    "port_range_max",
    "remote_ip_prefix",
    "remote_group_id",
    "remote_address_group_id",
    "id",
    "fixed_ips",
    "ip_address",
    "subnet_id",
    "security_group_ids",
    "port_security_enabled",
    "addresses",
    "stateful",
    // Azure
    "properties",
    "securityRules",
    "defaultSecurityRules",
    "name",
    "priority",
    "access",
    "sourcePortRange",
    "destinationPortRange",
    "destinationPortRanges",
    "sourceAddressPrefix",
    "sourceAddressPrefixes",
    "destinationAddressPrefix",
    "sourceApplicationSecurityGroups",
    "effectiveSecurityRules",
    "expandedSourceAddressPrefix",
    "networkSecurityGroup",
    "association",
    "ipConfigurations",
    "privateIPAddress",
    "subnet",
    "applicationSecurityGroups",
    "addressSpace",
    "addressPrefixes",
    "addressPrefix",
    "subnets",
    "value",
    // Forms read since: Alibaba quintuple rules, the Neutron API and CLI rule list, NICs.
    "DestCidrIp",
    "SourceCidrIp",
    "security_group",
    "security_groups",
    "security_group_rules",
    "port",
    "ports",
    "ID",
    "IP Protocol",
    "Port Range",
    "Direction",
    "Ethertype",
    "IP Range",
    "Remote Security Group",
    "publicIPAddress",
    "ipAddress",
];

const TEXTS: &[&str] = &[
    "",
    "ALL",
    "tcp",
    "UDP",
    "icmp",
    "ICMPv6",
    "-1",
    "6",
    "999",
    "ACCEPT",
    "drop",
    "22",
    "80,443",
    "1-65535",
    "70000",
    "5-1",
    "0.0.0.0/0",
    "::/0",
    "10.0.0.1",
    "10.0.0.1-10.0.0.9",
    "300.1.1.1/8",
    "sg-1",
    "ipset-1",
    "ipm-1",
    "tcp:80",
    "udp:1-2",
    "1",
    "0",
    "true",
    "22/22",
    "-1/-1",
    "accept",
    "ingress",
    "egress",
    "normal",
    "enterprise",
    "sgi-1",
    "IPv4",
    "IPv6",
    "Inbound",
    "Allow",
    "Deny",
    "Tcp",
    "*",
    "VirtualNetwork",
    "Internet",
    "/subscriptions/s/x",
    "false",
    "ip_address='10.0.0.1', subnet_id='s'",
    "sctp",
    "132",
    "type=3:code=4",
    "22:22",
    "0-1023",
    "32768",
    "Gre",
    "65535",
];

/// Each group alone, on an instance with a public address, for a few flows: evaluation of
/// whatever an importer read never panics either.
fn judge_every_group(inv: &sgprobe::model::Inventory) {
    for id in inv.groups.keys() {
        let mut instance = sgprobe::model::Instance::new("i", "test");
        instance.addresses = vec!["10.0.0.5".parse().expect("address")];
        instance.public_addresses = vec!["192.0.2.5".parse().expect("address")];
        instance.security_groups = vec![sgprobe::model::Located {
            value: id.to_string(),
            at: String::new(),
        }];
        let Ok(layers) = layers(inv, &instance) else {
            continue;
        };
        for (address, spec) in [
            ("10.0.0.5", "tcp:22"),
            ("192.0.2.5", "proto:132"),
            ("10.0.0.5", "icmp:3/4"),
        ] {
            let flow = Flow {
                address: address.parse().expect("address"),
                direction: Direction::Inbound,
                spec: parse_port_spec(spec).expect("spec")[0],
                peer: FlowPeer::parse("all").expect("peer"),
                peer_port: None,
            };
            let _ = evaluate(inv, &layers, &flow);
        }
    }
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-2i64..70000).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(TEXTS).prop_map(|s| Value::String(s.to_string())),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|pairs| {
                Value::Object(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn json_importers_never_panic(value in value(), id in prop::option::of("[a-z-]{1,8}")) {
        let text = value.to_string();
        for format in Format::exports() {
            let _ = parse(format, Path::new("x.json"), &text, id.as_deref());
            // Read leniently, as the agent does, and judged: unreadable parts included.
            if let Ok(inv) = read(format, Path::new("x.json"), &text, id.as_deref()) {
                judge_every_group(&inv);
            }
        }
    }

    #[test]
    fn any_text_gives_a_result_not_a_panic(text in ".{0,200}") {
        for format in Format::all() {
            let _ = parse(format, Path::new("x"), &text, Some("sg-1"));
        }
    }
}

mod packets {
    use proptest::prelude::*;
    use sgprobe::packet::{icmp, tcp};

    /// A valid ICMPv4 admin-prohibited error quoting a TCP SYN: mutations of it reach the
    /// parser's inner paths, which random bytes rarely do.
    fn icmp_error() -> Vec<u8> {
        let ip = |protocol: u8| {
            vec![
                0x45, 0, 0, 0, 0, 0, 0, 0, 64, protocol, 0, 0, 10, 77, 1, 5, 10, 77, 0, 1,
            ]
        };
        let mut packet = ip(1);
        packet.extend_from_slice(&[3, 13, 0, 0, 0, 0, 0, 0]);
        packet.extend_from_slice(&ip(6));
        packet.extend_from_slice(&[0xee, 0x49, 0, 22, 1, 2, 3, 4]);
        packet
    }

    fn parse_all(bytes: &[u8]) {
        let from = "fd77::1".parse().expect("address");
        let _ = tcp::parse_v4(bytes);
        let _ = tcp::parse_v6(bytes, from, Some(64));
        let _ = icmp::parse_v4(bytes);
        let _ = icmp::parse_v6(bytes, from, Some(64));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

        #[test]
        fn parsers_never_panic_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            parse_all(&bytes);
        }

        #[test]
        fn parsers_never_panic_on_mutated_packets(edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<usize>()) {
            let mut packet = icmp_error();
            for (at, value) in edits {
                let at = at % packet.len();
                packet[at] = value;
            }
            packet.truncate(cut % (packet.len() + 1));
            parse_all(&packet);
        }
    }
}
