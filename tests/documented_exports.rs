//! Exports in the forms the clouds document, each row citing the page (title and URL) that
//! gives the expected answer: they load, and they answer as the cloud would. Malformed
//! fields are errors naming the field's path, never a wider rule.

use sgprobe::config::Config;
use sgprobe::model::{Direction, Flow, FlowPeer, parse_port_spec};
use sgprobe::policy::{Predicted, evaluate, layers};
use sgprobe::sources::Reading;

use Direction::{Inbound, Outbound};
use Predicted::{Closed, Open, Partial, Unknown};

/// An AWS default network ACL of a dual-stack VPC, as describe-network-acls prints it: the
/// IPv6 `*` rule is number 32768. (VPC User Guide, "Default network ACL for a VPC",
/// https://docs.aws.amazon.com/vpc/latest/userguide/default-network-acl.html; AWS CLI
/// examples, "Use DescribeNetworkAcls with a CLI",
/// https://docs.aws.amazon.com/vpc/latest/userguide/example_ec2_DescribeNetworkAcls_section.html)
const AWS_DUAL_STACK_ACL: &str = r#"{"NetworkAcls": [{"NetworkAclId": "acl-dual", "IsDefault": false, "VpcId": "vpc-1",
  "Associations": [{"NetworkAclAssociationId": "aclassoc-1", "NetworkAclId": "acl-dual", "SubnetId": "subnet-dual"}],
  "Entries": [
    {"CidrBlock": "0.0.0.0/0", "Egress": true, "Protocol": "6", "RuleAction": "allow", "RuleNumber": 100, "PortRange": {"From": 1024, "To": 65535}},
    {"Ipv6CidrBlock": "::/0", "Egress": true, "Protocol": "6", "RuleAction": "allow", "RuleNumber": 101, "PortRange": {"From": 1024, "To": 65535}},
    {"CidrBlock": "0.0.0.0/0", "Egress": true, "Protocol": "-1", "RuleAction": "deny", "RuleNumber": 32767},
    {"Ipv6CidrBlock": "::/0", "Egress": true, "Protocol": "-1", "RuleAction": "deny", "RuleNumber": 32768},
    {"CidrBlock": "0.0.0.0/0", "Egress": false, "Protocol": "6", "RuleAction": "allow", "RuleNumber": 100, "PortRange": {"From": 443, "To": 443}},
    {"CidrBlock": "0.0.0.0/0", "Egress": false, "Protocol": "1", "RuleAction": "allow", "RuleNumber": 110, "IcmpTypeCode": {"Type": 3, "Code": 4}},
    {"CidrBlock": "0.0.0.0/0", "Egress": false, "Protocol": "1", "RuleAction": "allow", "RuleNumber": 120, "IcmpTypeCode": {"Type": 8, "Code": -1}},
    {"CidrBlock": "0.0.0.0/0", "Egress": false, "Protocol": "-1", "RuleAction": "deny", "RuleNumber": 32767},
    {"Ipv6CidrBlock": "::/0", "Egress": false, "Protocol": "-1", "RuleAction": "deny", "RuleNumber": 32768}
  ]}]}"#;

const AWS_OPEN_GROUP: &str = r#"{"SecurityGroups": [{"GroupId": "sg-all", "GroupName": "all",
  "IpPermissions": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}],
  "IpPermissionsEgress": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}]}]}"#;

const AWS_INSTANCE: &str = r#"
[[instance]]
name = "dual"
addresses = ["10.0.1.10", "2001:db8:1::10"]
security_groups = ["sg-all"]
subnet = "subnet-dual"
"#;

/// A quintuple rule as DescribeSecurityGroupAttribute returns it: SourcePortRange restricts
/// the client's port, DestCidrIp the instance's address. (Alibaba Cloud ECS, "Security group
/// quintuple rules", https://www.alibabacloud.com/help/doc-detail/97439.html; ECS API,
/// "AuthorizeSecurityGroup",
/// https://www.alibabacloud.com/help/en/ecs/developer-reference/api-ecs-2014-05-26-authorizesecuritygroup)
const ALIBABA_QUINTUPLE: &str = r#"{"SecurityGroupId": "sg-q5", "VpcId": "vpc-1", "InnerAccessPolicy": "Accept",
  "Permissions": {"Permission": [
    {"SecurityGroupRuleId": "sgr-ssh", "Direction": "ingress", "IpProtocol": "TCP", "PortRange": "22/22", "SourcePortRange": "1/1023",
     "SourceCidrIp": "0.0.0.0/0", "DestCidrIp": "10.0.0.5/32", "Policy": "Accept", "Priority": "1", "NicType": "intranet"},
    {"SecurityGroupRuleId": "sgr-app", "Direction": "ingress", "IpProtocol": "TCP", "PortRange": "8080/8080", "SourcePortRange": "60000/62000",
     "SourceCidrIp": "0.0.0.0/0", "DestCidrIp": "", "Policy": "Accept", "Priority": "1", "NicType": "intranet"}
  ]}}"#;

const ALIBABA_INSTANCE: &str = r#"
[[instance]]
name = "q5"
addresses = ["10.0.0.5", "10.0.0.6"]
security_groups = ["sg-q5"]
"#;

/// The Networking API's own JSON, as `curl` and openstacksdk return it. (OpenStack
/// Networking API v2.0, "Security groups (security-groups)" and "Ports",
/// https://docs.openstack.org/api-ref/network/v2/index.html)
const NEUTRON_GROUP: &str = r#"{"security_group": {"id": "85cc3048-abc3-43cc-89b3-377341426ac5", "name": "web", "stateful": true,
  "security_group_rules": [
    {"direction": "ingress", "ethertype": "IPv4", "id": "r-any", "protocol": "0", "port_range_min": null, "port_range_max": null,
     "remote_ip_prefix": "10.9.0.0/16", "remote_group_id": null, "security_group_id": "85cc3048-abc3-43cc-89b3-377341426ac5"},
    {"direction": "ingress", "ethertype": "IPv4", "id": "r-sctp", "protocol": "sctp", "port_range_min": 5000, "port_range_max": 5001,
     "remote_ip_prefix": "0.0.0.0/0", "remote_group_id": null, "security_group_id": "85cc3048-abc3-43cc-89b3-377341426ac5"},
    {"direction": "ingress", "ethertype": "IPv4", "id": "r-132", "protocol": "132", "port_range_min": 9000, "port_range_max": 9000,
     "remote_ip_prefix": "192.0.2.0/24", "remote_group_id": null, "security_group_id": "85cc3048-abc3-43cc-89b3-377341426ac5"},
    {"direction": "ingress", "ethertype": "IPv4", "id": "r-dccp", "protocol": "dccp", "port_range_min": null, "port_range_max": null,
     "remote_ip_prefix": "0.0.0.0/0", "remote_group_id": null, "security_group_id": "85cc3048-abc3-43cc-89b3-377341426ac5"},
    {"direction": "egress", "ethertype": "IPv4", "id": "r-out", "protocol": null, "port_range_min": null, "port_range_max": null,
     "remote_ip_prefix": null, "remote_group_id": null, "security_group_id": "85cc3048-abc3-43cc-89b3-377341426ac5"}
  ]}}"#;

const NEUTRON_PORT: &str = r#"{"port": {"id": "46d4bfb9-b26e-41f3-bd2e-e6dcc1ccedb2", "name": "web-1-port", "port_security_enabled": true,
  "device_id": "5e3898d7-11be-483e-9732-b2f5eccd2b2e",
  "fixed_ips": [{"ip_address": "10.0.0.21", "subnet_id": "a0304c3a-4f08-4c43-88af-d796509c97d2"}],
  "security_groups": ["85cc3048-abc3-43cc-89b3-377341426ac5"]}}"#;

/// `openstack security group rule list web -f json`: the columns as keys; given one group,
/// the `Security Group` column is left out. (python-openstackclient, "security group rule",
/// https://docs.openstack.org/python-openstackclient/latest/cli/command-objects/security-group-rule.html)
const OPENSTACK_RULE_LIST: &str = r#"[
  {"ID": "r1", "IP Protocol": "tcp", "Ethertype": "IPv4", "IP Range": "0.0.0.0/0", "Port Range": "22:22", "Direction": "ingress", "Remote Security Group": null, "Remote Address Group": null},
  {"ID": "r2", "IP Protocol": "tcp", "Ethertype": "IPv4", "IP Range": "0.0.0.0/0", "Port Range": "3306:3306", "Direction": "ingress", "Remote Security Group": "sg-db-clients", "Remote Address Group": null},
  {"ID": "r3", "IP Protocol": "icmp", "Ethertype": "IPv4", "IP Range": "0.0.0.0/0", "Port Range": "type=8", "Direction": "ingress", "Remote Security Group": null, "Remote Address Group": null},
  {"ID": "r4", "IP Protocol": null, "Ethertype": "IPv4", "IP Range": "0.0.0.0/0", "Port Range": "", "Direction": "egress", "Remote Security Group": null, "Remote Address Group": null}
]"#;

const NSG_ID: &str =
    "/subscriptions/s1/resourceGroups/RG/providers/Microsoft.Network/networkSecurityGroups/nsg-web";
const SUBNET_NSG_ID: &str = "/subscriptions/s1/resourceGroups/RG/providers/Microsoft.Network/networkSecurityGroups/nsg-subnet";
const SUBNET_ID: &str = "/subscriptions/s1/resourceGroups/RG/providers/Microsoft.Network/virtualNetworks/vnet/subnets/app";
const NIC_ID: &str =
    "/subscriptions/s1/resourceGroups/RG/providers/Microsoft.Network/networkInterfaces/web-1-nic";

/// `az network nsg show`: a user rule on the VM's public IP (NSGs see the private address
/// after the public IP is translated: "How network security groups filter network traffic",
/// https://learn.microsoft.com/azure/virtual-network/network-security-group-how-it-works),
/// ports 0-1023, and Any (which GRE never crosses: "Azure Virtual Network FAQ",
/// https://learn.microsoft.com/azure/virtual-network/virtual-networks-faq).
fn azure_nsg_show() -> String {
    format!(
        r#"{{"id": "{NSG_ID}", "name": "nsg-web", "securityRules": [
      {{"name": "AllowLowPorts", "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "0-1023", "sourceAddressPrefix": "*", "destinationAddressPrefix": "*", "access": "Allow", "priority": 100, "direction": "Inbound"}},
      {{"name": "AllowPublicIp", "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "8443", "sourceAddressPrefix": "*", "destinationAddressPrefix": "20.1.2.3", "access": "Allow", "priority": 110, "direction": "Inbound"}},
      {{"name": "AllowAnyFromPartner", "protocol": "*", "sourcePortRange": "*", "destinationPortRange": "*", "sourceAddressPrefix": "198.51.100.0/24", "destinationAddressPrefix": "*", "access": "Allow", "priority": 120, "direction": "Inbound"}},
      {{"name": "AllowHttpsFromTheVnet", "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "9443", "sourceAddressPrefix": "VirtualNetwork", "destinationAddressPrefix": "*", "access": "Allow", "priority": 130, "direction": "Inbound"}}
    ]}}"#
    )
}

/// `az network nic list-effective-nsg`: one entry per NSG, each with its association (the
/// NIC, or the NIC's subnet), rules as `lo-hi` ranges and tags expanded. ("Diagnose a virtual
/// machine network traffic filter problem",
/// https://learn.microsoft.com/azure/virtual-network/diagnose-network-traffic-filter-problem;
/// REST "Network Interfaces - List Effective Network Security Groups",
/// https://learn.microsoft.com/rest/api/virtualnetwork/network-interfaces/list-effective-network-security-groups)
fn azure_effective() -> String {
    let rule = |name: &str,
                ports: &str,
                source: &str,
                expanded: &str,
                access: &str,
                priority: u32| {
        format!(
            r#"{{"name": "{name}", "protocol": "All", "sourcePortRange": "0-65535", "destinationPortRange": "{ports}", "sourceAddressPrefix": "{source}", "expandedSourceAddressPrefix": {expanded}, "destinationAddressPrefix": "0.0.0.0/0", "expandedDestinationAddressPrefix": null, "access": "{access}", "priority": {priority}, "direction": "Inbound"}}"#
        )
    };
    let nic_rules = [
        rule(
            "securityRules/AllowLowPorts",
            "0-1023",
            "0.0.0.0/0",
            "null",
            "Allow",
            100,
        ),
        rule(
            "securityRules/AllowPublicIp",
            "8443-8443",
            "0.0.0.0/0",
            "null",
            "Allow",
            110,
        ),
        rule(
            "securityRules/AllowAnyFromPartner",
            "0-65535",
            "198.51.100.0/24",
            "null",
            "Allow",
            120,
        ),
        rule(
            "securityRules/AllowHttpsFromTheVnet",
            "9443-9443",
            "VirtualNetwork",
            r#"["10.1.0.0/16"]"#,
            "Allow",
            130,
        ),
        rule(
            "defaultSecurityRules/DenyAllInBound",
            "0-65535",
            "0.0.0.0/0",
            "null",
            "Deny",
            65500,
        ),
    ];
    let subnet_rules = [
        rule(
            "securityRules/DenyTelnet",
            "23-23",
            "0.0.0.0/0",
            "null",
            "Deny",
            100,
        ),
        rule(
            "defaultSecurityRules/AllowAll",
            "0-65535",
            "0.0.0.0/0",
            "null",
            "Allow",
            65000,
        ),
    ];
    format!(
        r#"{{"value": [
      {{"networkSecurityGroup": {{"id": "{NSG_ID}"}}, "association": {{"networkInterface": {{"id": "{NIC_ID}"}}}}, "effectiveSecurityRules": [{}]}},
      {{"networkSecurityGroup": {{"id": "{SUBNET_NSG_ID}"}}, "association": {{"subnet": {{"id": "{SUBNET_ID}"}}}}, "effectiveSecurityRules": [{}]}}
    ]}}"#,
        nic_rules.join(","),
        subnet_rules.join(",")
    )
}

/// A config whose sources are `exports` (file name, format, text) and whose own part is
/// `rest`, loaded strictly.
fn config(exports: &[(&str, &str, &str)], rest: &str) -> Result<Config, String> {
    config_for(exports, None, rest)
}

/// `config`, each source naming the object `id` its export does not carry.
fn config_for(
    exports: &[(&str, &str, &str)],
    id: Option<&str>,
    rest: &str,
) -> Result<Config, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut text = String::new();
    for (name, format, body) in exports {
        std::fs::write(dir.path().join(name), body).expect("write export");
        text.push_str(&format!(
            "[[source]]\nformat = \"{format}\"\npath = \"{name}\"\n"
        ));
        if let Some(id) = id {
            text.push_str(&format!("id = \"{id}\"\n"));
        }
    }
    text.push_str(rest);
    let path = dir.path().join("sgprobe.toml");
    std::fs::write(&path, text).expect("write config");
    Config::load(&path, Reading::Strict).map_err(|e| e.to_string())
}

/// One flow's verdict: `address`, direction, port spec, peer, and the peer's own port.
fn predicted(
    config: &Config,
    instance: &str,
    flow: (&str, Direction, &str, &str, Option<u16>),
) -> Predicted {
    let inv = &config.inventory;
    let instance = inv
        .instance(instance)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("instance {instance}"));
    let layers = layers(inv, instance).expect("links");
    let (address, direction, spec, peer, peer_port) = flow;
    let flow = Flow {
        address: address.parse().expect("address"),
        direction,
        spec: parse_port_spec(spec).expect("spec")[0],
        peer: FlowPeer::parse(peer).expect("peer"),
        peer_port,
    };
    evaluate(inv, &layers, &flow).predicted
}

struct Row {
    /// What the row checks, and where the cloud documents the answer.
    why: &'static str,
    instance: &'static str,
    flow: (
        &'static str,
        Direction,
        &'static str,
        &'static str,
        Option<u16>,
    ),
    expected: Predicted,
}

fn check(config: &Config, rows: &[Row]) {
    for row in rows {
        assert_eq!(
            predicted(config, row.instance, row.flow),
            row.expected,
            "{}: {:?}",
            row.why,
            row.flow
        );
    }
}

#[test]
fn an_aws_dual_stack_network_acl_loads_and_icmp_errors_need_no_reply() {
    let config = config(
        &[
            ("acls.json", "aws", AWS_DUAL_STACK_ACL),
            ("sgs.json", "aws", AWS_OPEN_GROUP),
        ],
        &format!("[[subnet]]\nid = \"subnet-dual\"\ncidrs = [\"10.0.1.0/24\"]\n{AWS_INSTANCE}"),
    )
    .expect("a dual-stack VPC's ACL loads");
    let rule = |why, flow, expected| Row {
        why,
        instance: "dual",
        flow,
        expected,
    };
    check(
        &config,
        &[
            rule(
                "VPC User Guide, Network ACL rules: rule 100 allows HTTPS, the reply leaves by rule 100 outbound",
                ("10.0.1.10", Inbound, "tcp:443", "203.0.113.9", None),
                Open,
            ),
            rule(
                "VPC User Guide, Default network ACL: the IPv6 * rule (32768) denies what no rule allows",
                ("2001:db8:1::10", Inbound, "tcp:443", "2001:db8:ff::9", None),
                Closed,
            ),
            rule(
                "RFC 792 (https://www.rfc-editor.org/rfc/rfc792): no ICMP message is sent about an ICMP error message, so a stateless ACL needs no outbound rule for a fragmentation-needed error",
                ("10.0.1.10", Inbound, "icmp:3/4", "203.0.113.9", None),
                Open,
            ),
            rule(
                "RFC 792: an echo request draws an echo reply, which the outbound rules (TCP only) drop",
                ("10.0.1.10", Inbound, "icmp", "203.0.113.9", None),
                Closed,
            ),
        ],
    );
}

#[test]
fn an_alibaba_quintuple_rule_is_exact_for_a_known_client_port_and_for_the_probes() {
    let config = config(
        &[("sg.json", "alibaba", ALIBABA_QUINTUPLE)],
        ALIBABA_INSTANCE,
    )
    .expect("a quintuple rule loads");
    let rule = |why, flow, expected| Row {
        why,
        instance: "q5",
        flow,
        expected,
    };
    check(
        &config,
        &[
            rule(
                "Security group quintuple rules: a client sending from port 1000 is within SourcePortRange 1/1023",
                ("10.0.0.5", Inbound, "tcp:22", "203.0.113.9", Some(1000)),
                Open,
            ),
            rule(
                "Security group quintuple rules: a client sending from 50000 is outside SourcePortRange 1/1023",
                ("10.0.0.5", Inbound, "tcp:22", "203.0.113.9", Some(50000)),
                Closed,
            ),
            rule(
                "sgprobe's probes send from 61001-65535: none within 1/1023",
                ("10.0.0.5", Inbound, "tcp:22", "203.0.113.9", None),
                Closed,
            ),
            rule(
                "AuthorizeSecurityGroup, DestCidrIp: the rule covers the instance's 10.0.0.5 only",
                ("10.0.0.6", Inbound, "tcp:22", "203.0.113.9", Some(1000)),
                Closed,
            ),
            rule(
                "SourcePortRange 60000/62000 holds for some of the probes' ports and not others: the port decides, none is known",
                ("10.0.0.6", Inbound, "tcp:8080", "203.0.113.9", None),
                Unknown,
            ),
            rule(
                "SourcePortRange 60000/62000 with a known client port",
                ("10.0.0.6", Inbound, "tcp:8080", "203.0.113.9", Some(61000)),
                Open,
            ),
        ],
    );
}

#[test]
fn neutron_api_json_and_the_clis_rule_list_load_and_answer() {
    let config = config(
        &[
            ("sg.json", "openstack", NEUTRON_GROUP),
            ("port.json", "openstack", NEUTRON_PORT),
        ],
        "",
    )
    .expect("the Networking API's JSON loads");
    let rule = |why, flow, expected| Row {
        why,
        instance: "web-1-port",
        flow,
        expected,
    };
    check(
        &config,
        &[
            rule(
                "Networking API v2.0, security group rules, protocol: `0` means all IP protocols",
                ("10.0.0.21", Inbound, "udp:161", "10.9.1.1", None),
                Open,
            ),
            rule(
                "protocol 0 is bounded by its remote_ip_prefix",
                ("10.0.0.21", Inbound, "udp:161", "10.8.1.1", None),
                Closed,
            ),
            rule(
                "protocol sctp with port_range 5000-5001 opens those ports, not all of SCTP",
                ("10.0.0.21", Inbound, "proto:132", "203.0.113.9", None),
                Partial,
            ),
            rule(
                "dccp by name, no port range: every DCCP port",
                ("10.0.0.21", Inbound, "proto:33", "203.0.113.9", None),
                Open,
            ),
            rule(
                "a null protocol on egress: every protocol",
                ("10.0.0.21", Outbound, "all", "203.0.113.9", None),
                Open,
            ),
        ],
    );

    let listed = config_with_id(&[("rules.json", "openstack", OPENSTACK_RULE_LIST)]);
    let check_listed = |spec: &str, peer: &str| {
        predicted(&listed, "cli", ("10.0.0.30", Inbound, spec, peer, None))
    };
    // python-openstackclient, `security group rule list`: "22:22" a port range, "type=8" an
    // ICMP type; a rule from a remote group shows the family's IP Range beside it.
    assert_eq!(check_listed("tcp:22", "203.0.113.9"), Open);
    assert_eq!(check_listed("icmp", "203.0.113.9"), Open);
    assert_eq!(
        check_listed("tcp:3306", "203.0.113.9"),
        Closed,
        "the remote group decides, not the IP Range column"
    );
}

/// The CLI's rule list of one group, read with the group's id given in the source.
fn config_with_id(exports: &[(&str, &str, &str)]) -> Config {
    config_for(
        exports,
        Some("sg-web"),
        "[[instance]]\nname = \"cli\"\naddresses = [\"10.0.0.30\"]\nsecurity_groups = [\"sg-web\"]\n\
         [[instance]]\nname = \"db-client\"\naddresses = [\"10.0.0.40\"]\nsecurity_groups = [\"sg-db-clients\"]\n\
         [[group]]\nid = \"sg-db-clients\"\ncloud = \"openstack\"\n",
    )
    .expect("the CLI's rule list loads")
}

#[test]
fn azure_show_and_effective_output_of_one_nsg_load_together_and_answer_as_azure() {
    // The NSG's id as `az` prints it (mixed case), the subnet and NIC from the effective
    // output; the NIC's public IP is its own.
    let rest = format!(
        "[[instance]]\nname = \"web-1-nic\"\naddresses = [\"10.1.0.4\"]\npublic_addresses = [\"20.1.2.3\"]\nsecurity_groups = [\"{NSG_ID}\"]\n\
         [[address_set]]\nid = \"tag:VirtualNetwork\"\nmembers = [\"10.1.0.0/16\"]\n"
    );
    let both = config(
        &[
            ("nsg.json", "azure", &azure_nsg_show()),
            ("effective.json", "azure", &azure_effective()),
        ],
        &rest,
    )
    .expect("show and effective output of one NSG load together");
    // Effective output names no addresses: the instance's come from the config.
    let alone = config(
        &[("effective.json", "azure", &azure_effective())],
        "[[instance]]\nname = \"web-1-nic\"\naddresses = [\"10.1.0.4\"]\n",
    )
    .expect("effective output alone loads");
    let rule = |why, flow, expected| Row {
        why,
        instance: "web-1-nic",
        flow,
        expected,
    };
    let rows = [
        rule(
            "Network security groups overview: destinationPortRange 0-1023 is ports 0 to 1023",
            ("10.1.0.4", Inbound, "tcp:22", "203.0.113.9", None),
            Open,
        ),
        rule(
            "Diagnose a VM network traffic filter problem: the subnet's NSG is a separate entry, and it denies Telnet",
            ("10.1.0.4", Inbound, "tcp:23", "203.0.113.9", None),
            Closed,
        ),
        rule(
            "Virtual Network FAQ: GRE packets are blocked within VNets, whatever Any allows",
            ("10.1.0.4", Inbound, "gre", "198.51.100.7", None),
            Closed,
        ),
        rule(
            "Any still allows UDP from the partner",
            ("10.1.0.4", Inbound, "udp:4500", "198.51.100.7", None),
            Open,
        ),
    ];
    check(&both, &rows);
    check(&alone, &rows);
    let public = rule(
        "How network security groups filter network traffic: inbound rules see the private address after the public IP is translated, so a rule naming the public IP never matches",
        ("20.1.2.3", Inbound, "tcp:8443", "203.0.113.9", None),
        Closed,
    );
    check(&both, std::slice::from_ref(&public));
    // The NSG's own export wins over the effective listing of it: the tag stays a tag.
    let nsg = both
        .inventory
        .groups
        .get(NSG_ID.to_ascii_lowercase().as_str())
        .expect("one NSG, by its lower-cased id");
    assert!(
        !nsg.expanded,
        "nsg show's rules, not the expanded listing's"
    );
}

#[test]
fn malformed_fields_are_errors_naming_the_field_not_wider_rules() {
    let aws_group = |permission: &str| {
        format!(
            r#"{{"SecurityGroups": [{{"GroupId": "sg-1", "IpPermissions": [{permission}], "IpPermissionsEgress": []}}]}}"#
        )
    };
    let nsg = |rules: &str| {
        format!(r#"{{"id": "{NSG_ID}", "name": "nsg-web", "securityRules": [{rules}]}}"#)
    };
    let azure_rule = |name: &str, protocol: &str, priority: u32| {
        format!(
            r#"{{"name": "{name}", "protocol": "{protocol}", "sourcePortRange": "*", "destinationPortRange": "22", "sourceAddressPrefix": "*", "destinationAddressPrefix": "*", "access": "Allow", "priority": {priority}, "direction": "Inbound"}}"#
        )
    };
    let rows: Vec<(&str, &str, String, &str)> = vec![
        (
            "EC2 API, IpPermission (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_IpPermission.html): for tcp, ToPort is the end of the port range; -1 is only for ICMP",
            "aws",
            aws_group(r#"{"IpProtocol": "tcp", "FromPort": 22, "ToPort": -1, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}"#),
            "$.SecurityGroups[0].IpPermissions[0].ToPort: expected a port 0-65535",
        ),
        (
            "EC2 API, IpPermission: a udp permission has both FromPort and ToPort",
            "aws",
            aws_group(r#"{"IpProtocol": "udp", "FromPort": 53, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}"#),
            "$.SecurityGroups[0].IpPermissions[0].ToPort: expected a port 0-65535",
        ),
        (
            "Network security groups overview (https://learn.microsoft.com/azure/virtual-network/network-security-groups-overview): priority is 100-4096",
            "azure",
            nsg(&azure_rule("TooLow", "Tcp", 5000)),
            "securityRules[0].priority: expected a priority 100-4096",
        ),
        (
            "Network security groups overview: a priority is unique per direction",
            "azure",
            nsg(&[azure_rule("One", "Tcp", 200), azure_rule("Two", "Udp", 200)].join(",")),
            "securityRules[1].priority: expected a priority no other inbound rule of the NSG has",
        ),
        (
            "Network security groups overview: protocols are TCP, UDP, ICMP, ESP, AH or Any",
            "azure",
            nsg(&azure_rule("Tunnel", "Gre", 300)),
            "securityRules[0].protocol: expected Tcp, Udp, Icmp, Esp, Ah or *",
        ),
        (
            "Networking API v2.0: ports are only for tcp, udp, sctp, dccp and udplite",
            "openstack",
            r#"{"security_group": {"id": "sg-o", "security_group_rules": [{"direction": "ingress", "ethertype": "IPv4", "protocol": "gre", "port_range_min": 1, "port_range_max": 2}]}}"#.to_string(),
            "port_range_max: expected no port range",
        ),
    ];
    for (why, format, text, expected) in rows {
        let error = config(&[("export.json", format, &text)], "").expect_err(why);
        assert!(
            error.contains("export.json") && error.contains(expected),
            "{why}\n  expected {expected:?}\n  in {error}"
        );
        assert!(error.contains("--keep-going"), "names the flag: {error}");
    }
}
