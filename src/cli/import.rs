//! `sgprobe import`: cloud exports to native TOML.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::sources::native::render;
use crate::sources::{Format, Merged, load};

#[derive(Debug, Args)]
#[command(
    about = "Convert cloud exports to native TOML (on stdout)",
    after_help = "Formats and the exports each reads (recognised by shape; raw API responses too):\n  \
tencent    DescribeSecurityGroupPolicies (needs --id), DescribeInstances, DescribeAddressTemplates,\n             \
DescribeAddressTemplateGroups, DescribeServiceTemplates, DescribeServiceTemplateGroups\n  \
qingcloud  DescribeSecurityGroups, DescribeSecurityGroupRules, DescribeInstances,\n             \
DescribeSecurityGroupIPSets\n  \
aws        describe-security-groups, describe-security-group-rules, describe-instances,\n             \
get-managed-prefix-list-entries (needs --id), describe-network-acls, describe-subnets\n  \
alibaba    DescribeSecurityGroupAttribute, DescribeSecurityGroups, DescribeInstances,\n             \
DescribePrefixListAttributes\n  \
azure      az network nsg show (or the ARM resource), nic list-effective-nsg, nic show/list,\n             \
vnet show, list-service-tags\n  \
openstack  the Networking API's security_group(s), security_group_rules and port(s) JSON; the CLI's\n             \
security group show, security group rule list, port show, address group show (-f json)\n\n\
Several files of one group (pages) merge in order; a rule that differs between them is an error.\n\n\
Example:\n  tccli vpc DescribeSecurityGroupPolicies --SecurityGroupId sg-2ykq3cxa > sg-web.json\n  \
sgprobe import tencent sg-web.json --id sg-2ykq3cxa > sg-web.toml"
)]
pub struct ImportArgs {
    /// The export format: tencent, qingcloud, aws, alibaba, azure or openstack.
    #[arg(value_parser = parse_format)]
    format: Format,
    /// Export files (JSON), merged in order.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The id of the object an export belongs to, where the export does not carry it.
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    #[command(flatten)]
    keep_going: super::KeepGoingArg,
}

fn parse_format(text: &str) -> Result<Format, String> {
    Format::parse(text)
        .filter(|f| *f != Format::Native)
        .ok_or_else(|| {
            format!("{text:?}: expected tencent, qingcloud, aws, alibaba, azure or openstack")
        })
}

pub fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let mut merged = Merged::default();
    for file in &args.files {
        let inventory = load(
            args.format,
            file,
            args.id.as_deref(),
            args.keep_going.reading(),
        )?;
        merged.add(file, inventory)?;
    }
    out!("{}", render(&merged.inventory))?;
    Ok(ExitCode::SUCCESS)
}
