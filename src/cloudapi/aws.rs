//! AWS EC2 through the official SDK (the `aws-api` feature), read-only: every page of
//! DescribeSecurityGroups, DescribeInstances, DescribeNetworkAcls and DescribeSubnets, and
//! the entries of the managed prefix lists the groups name. The SDK brings the credential
//! chain the AWS CLI has (environment, profiles, SSO, IMDSv2, web identity) and signs
//! (SigV4). What it reads is written as the CLI prints it and read by the `aws` importer.

use std::collections::BTreeSet;

use aws_config::{BehaviorVersion, Region};
use serde_json::{Value, json};

use super::{ApiError, absorb};
use crate::model::Inventory;
use crate::sources::{Format, Merged};

const API: &str = "aws";

/// The region's groups, instances, network ACLs, subnets and prefix lists.
/// Each operation within `timeout` (at most `ATTEMPTS` tries), the whole fetch within
/// `deadline` and the default `Limits`: pages, items and the bytes of what is read.
pub fn fetch(
    region: &str,
    endpoint: Option<String>,
    timeout: std::time::Duration,
    deadline: std::time::Duration,
) -> Result<Inventory, ApiError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed("runtime", e.to_string()))?;
    runtime.block_on(async {
        tokio::time::timeout(
            deadline,
            read(region.to_string(), endpoint, timeout, deadline),
        )
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::Bound {
                api: API,
                action: "fetch".to_string(),
                what: "the fetch ran past its deadline (the source's refresh, or ten timeouts)"
                    .to_string(),
            })
        })
    })
}

fn failed(action: &str, message: String) -> ApiError {
    ApiError::Transport {
        api: API,
        action: action.to_string(),
        message,
    }
}

/// An SDK error with its causes, which the SDK's own Display leaves out.
fn sdk(action: &str, error: impl std::error::Error) -> ApiError {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    failed(action, message)
}

/// Tries of one page (the SDK's standard retry mode, stated so that a release of the SDK
/// cannot change it): a fetch sends at most this many requests per page counted.
const ATTEMPTS: u32 = 3;

async fn read(
    region: String,
    endpoint: Option<String>,
    timeout: std::time::Duration,
    deadline: std::time::Duration,
) -> Result<Inventory, ApiError> {
    // Each operation (its retries included) within the source's timeout: an API that stops
    // answering fails the fetch instead of holding the agent's rules.
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .operation_timeout(timeout)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region))
        .timeout_config(timeouts)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(ATTEMPTS));
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let config = loader.load().await;
    let budget = super::Budget::new(deadline);
    let described = describe(aws_sdk_ec2::Client::new(&config), &budget, timeout).await;
    // An endpoint may echo what a request carried (the session token): no error repeats it.
    match credentials_of(&config).await {
        Some(credentials) => described.map_err(|e| e.redacted(&credentials)),
        None => described,
    }
}

/// The keys the SDK signs with, to keep them out of errors; `None` where it has none.
async fn credentials_of(config: &aws_config::SdkConfig) -> Option<super::Credentials> {
    use aws_sdk_ec2::config::ProvideCredentials;
    let keys = config
        .credentials_provider()?
        .provide_credentials()
        .await
        .ok()?;
    Some(super::Credentials {
        id: keys.access_key_id().to_string(),
        secret: keys.secret_access_key().to_string(),
        token: keys.session_token().map(str::to_string),
    })
}

/// Every page of what the fetch reads, merged.
async fn describe(
    client: aws_sdk_ec2::Client,
    budget: &super::Budget,
    timeout: std::time::Duration,
) -> Result<Inventory, ApiError> {
    let mut merged = Merged::default();
    // Each page is one request of the budget, its items counted; each operation's text, its
    // bytes.
    let count = |action: &str, items: usize| -> Result<(), ApiError> {
        budget.request(API, action, timeout)?;
        budget.items(API, action, items)
    };
    let mut absorb = |action: &str, text: String, id: Option<&str>| -> Result<(), ApiError> {
        budget.reply(API, action, text.len())?;
        absorb(
            &mut merged,
            Format::Aws,
            &format!("api:aws {action}"),
            &text,
            id,
        )
    };

    let mut groups = Vec::new();
    let mut lists = BTreeSet::new();
    let mut pages = client.describe_security_groups().into_paginator().send();
    while let Some(page) = pages.next().await {
        let got = page.map_err(|e| sdk("DescribeSecurityGroups", e))?;
        let rules: usize = got
            .security_groups()
            .iter()
            .map(|g| g.ip_permissions().len() + g.ip_permissions_egress().len())
            .sum();
        count(
            "DescribeSecurityGroups",
            got.security_groups().len() + rules,
        )?;
        for group in got.security_groups() {
            let mut permissions = |list: &[aws_sdk_ec2::types::IpPermission]| -> Vec<Value> {
                list.iter()
                    .map(|p| {
                        lists.extend(
                            p.prefix_list_ids()
                                .iter()
                                .filter_map(|l| l.prefix_list_id().map(str::to_string)),
                        );
                        permission(p)
                    })
                    .collect()
            };
            let ingress = permissions(group.ip_permissions());
            let egress = permissions(group.ip_permissions_egress());
            groups.push(json!({
                "GroupId": group.group_id(),
                "GroupName": group.group_name(),
                "IpPermissions": ingress,
                "IpPermissionsEgress": egress,
            }));
        }
    }
    absorb(
        "DescribeSecurityGroups",
        json!({"SecurityGroups": groups}).to_string(),
        None,
    )?;

    let mut reservations = Vec::new();
    let mut pages = client.describe_instances().into_paginator().send();
    while let Some(page) = pages.next().await {
        let got = page.map_err(|e| sdk("DescribeInstances", e))?;
        let instances: usize = got.reservations().iter().map(|r| r.instances().len()).sum();
        count("DescribeInstances", instances)?;
        for reservation in got.reservations() {
            let instances: Vec<Value> = reservation.instances().iter().map(instance).collect();
            reservations.push(json!({"Instances": instances}));
        }
    }
    absorb(
        "DescribeInstances",
        json!({"Reservations": reservations}).to_string(),
        None,
    )?;

    let mut acls = Vec::new();
    let mut pages = client.describe_network_acls().into_paginator().send();
    while let Some(page) = pages.next().await {
        let got = page.map_err(|e| sdk("DescribeNetworkAcls", e))?;
        let entries: usize = got.network_acls().iter().map(|a| a.entries().len()).sum();
        count("DescribeNetworkAcls", got.network_acls().len() + entries)?;
        acls.extend(got.network_acls().iter().map(network_acl));
    }
    absorb(
        "DescribeNetworkAcls",
        json!({"NetworkAcls": acls}).to_string(),
        None,
    )?;

    let mut subnets = Vec::new();
    let mut pages = client.describe_subnets().into_paginator().send();
    while let Some(page) = pages.next().await {
        let got = page.map_err(|e| sdk("DescribeSubnets", e))?;
        count("DescribeSubnets", got.subnets().len())?;
        for subnet in got.subnets() {
            let v6: Vec<Value> = subnet
                .ipv6_cidr_block_association_set()
                .iter()
                .map(|a| json!({"Ipv6CidrBlock": a.ipv6_cidr_block()}))
                .collect();
            subnets.push(json!({
                "SubnetId": subnet.subnet_id(),
                "CidrBlock": subnet.cidr_block(),
                "Ipv6CidrBlockAssociationSet": v6,
            }));
        }
    }
    absorb(
        "DescribeSubnets",
        json!({"Subnets": subnets}).to_string(),
        None,
    )?;

    for list in lists {
        let mut entries = Vec::new();
        let mut pages = client
            .get_managed_prefix_list_entries()
            .prefix_list_id(&list)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let got = page.map_err(|e| sdk("GetManagedPrefixListEntries", e))?;
            count("GetManagedPrefixListEntries", got.entries().len())?;
            entries.extend(got.entries().iter().map(|e| json!({"Cidr": e.cidr()})));
        }
        absorb(
            &format!("GetManagedPrefixListEntries {list}"),
            json!({"Entries": entries}).to_string(),
            Some(&list),
        )?;
    }
    Ok(merged.inventory)
}

fn permission(p: &aws_sdk_ec2::types::IpPermission) -> Value {
    json!({
        "IpProtocol": p.ip_protocol(),
        "FromPort": p.from_port(),
        "ToPort": p.to_port(),
        "IpRanges": p.ip_ranges().iter().map(|r| json!({"CidrIp": r.cidr_ip(), "Description": r.description()})).collect::<Vec<_>>(),
        "Ipv6Ranges": p.ipv6_ranges().iter().map(|r| json!({"CidrIpv6": r.cidr_ipv6(), "Description": r.description()})).collect::<Vec<_>>(),
        "PrefixListIds": p.prefix_list_ids().iter().map(|l| json!({"PrefixListId": l.prefix_list_id(), "Description": l.description()})).collect::<Vec<_>>(),
        "UserIdGroupPairs": p.user_id_group_pairs().iter().map(|g| json!({"GroupId": g.group_id(), "Description": g.description()})).collect::<Vec<_>>(),
    })
}

fn instance(i: &aws_sdk_ec2::types::Instance) -> Value {
    let interfaces: Vec<Value> = i
        .network_interfaces()
        .iter()
        .map(|n| {
            json!({
                "PrivateIpAddresses": n.private_ip_addresses().iter().map(|a| json!({
                    "PrivateIpAddress": a.private_ip_address(),
                    "Association": a.association().map(|s| json!({"PublicIp": s.public_ip()})),
                })).collect::<Vec<_>>(),
                "Ipv6Addresses": n.ipv6_addresses().iter().map(|a| json!({"Ipv6Address": a.ipv6_address()})).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "InstanceId": i.instance_id(),
        "SubnetId": i.subnet_id(),
        "PrivateIpAddress": i.private_ip_address(),
        "PublicIpAddress": i.public_ip_address(),
        "Ipv6Address": i.ipv6_address(),
        "NetworkInterfaces": interfaces,
        "SecurityGroups": i.security_groups().iter().map(|g| json!({"GroupId": g.group_id()})).collect::<Vec<_>>(),
        "Tags": i.tags().iter().map(|t| json!({"Key": t.key(), "Value": t.value()})).collect::<Vec<_>>(),
    })
}

fn network_acl(acl: &aws_sdk_ec2::types::NetworkAcl) -> Value {
    let entries: Vec<Value> = acl
        .entries()
        .iter()
        .map(|e| {
            json!({
                "RuleNumber": e.rule_number(),
                "Protocol": e.protocol(),
                "RuleAction": e.rule_action().map(|a| a.as_str()),
                "Egress": e.egress(),
                "CidrBlock": e.cidr_block(),
                "Ipv6CidrBlock": e.ipv6_cidr_block(),
                "PortRange": e.port_range().map(|r| json!({"From": r.from(), "To": r.to()})),
                "IcmpTypeCode": e.icmp_type_code().map(|c| json!({"Type": c.r#type(), "Code": c.code()})),
            })
        })
        .collect();
    json!({
        "NetworkAclId": acl.network_acl_id(),
        "Associations": acl.associations().iter().map(|a| json!({"SubnetId": a.subnet_id()})).collect::<Vec<_>>(),
        "Entries": entries,
    })
}
