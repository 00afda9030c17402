//! `sgprobe lint`: risky or useless rules.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use super::output::{describe_rule, table};
use super::{ConfigArg, EXIT_FINDINGS, KeepGoingArg};
use crate::config::Config;
use crate::model::Direction;
use crate::policy::RuleRef;
use crate::policy::lint::{Severity, lint};

#[derive(Debug, Args)]
#[command(
    about = "Find risky or useless rules: SSH, RDP, databases and high-risk ports open to the world, all ports open, rules that never decide",
    after_help = "Checks (each group judged on its own):\n  \
all-ports-open          critical  an inbound rule accepts every port (or protocol) from 0.0.0.0/0 or ::/0\n  \
remote-login-open       critical  SSH (22) or Remote Desktop (3389) is open to 0.0.0.0/0 or ::/0\n  \
sensitive-port-open     high      an administration or data-store port is open to the world (AWS Security Hub EC2.19's \
ports, Oracle, Redis, MongoDB, Memcached, Docker, WinRM, ...)\n  \
high-risk-open          high      a high-risk port (the carriers' list: TCP 445, 3389-adjacent, ...) is open to the world\n  \
shadowed                medium    a rule never decides: earlier rules always decide first\n  \
acl-return-ports        medium    a stateless ACL drops replies to some clients' ephemeral ports (by OS)\n  \
equal-priority-conflict medium    QingCloud rules at one priority, different actions, same traffic\n  \
alibaba-tcp-25          low       an outbound allow for TCP 25, which Alibaba Cloud restricts by default\n  \
redundant               info      an allow-only rule allows nothing the group's other rules do not\n\n\
Exit code 1 when a finding reaches --fail-on.\n\n\
Example:\n  sgprobe lint --config deploy/example/sgprobe.toml --fail-on medium"
)]
pub struct LintArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    keep_going: KeepGoingArg,
    /// Exit 1 when a finding is at least this severe: info, low, medium, high, critical, or never.
    #[arg(long, value_name = "SEVERITY", default_value = "high", value_parser = parse_fail_on)]
    fail_on: FailOn,
    /// One JSON array of findings.
    #[arg(long)]
    json: bool,
}

/// The threshold, or `None` for never.
#[derive(Debug, Clone, Copy)]
struct FailOn(Option<Severity>);

fn parse_fail_on(text: &str) -> Result<FailOn, String> {
    if text.eq_ignore_ascii_case("never") {
        return Ok(FailOn(None));
    }
    Severity::ALL
        .into_iter()
        .find(|s| s.name().eq_ignore_ascii_case(text))
        .map(|s| FailOn(Some(s)))
        .ok_or_else(|| format!("{text:?}: expected info, low, medium, high, critical or never"))
}

#[derive(Serialize)]
struct FindingJson<'a> {
    severity: Severity,
    check: &'static str,
    group: &'a str,
    direction: Direction,
    rule: Option<RuleRef>,
    message: &'a str,
}

pub fn run(args: LintArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config.config, args.keep_going.reading())
        .context("cannot load the config")?;
    let findings = lint(&config.inventory);
    if args.json {
        let json: Vec<FindingJson> = findings
            .iter()
            .map(|f| FindingJson {
                severity: f.severity,
                check: f.check,
                group: &f.group,
                direction: f.direction,
                rule: f.rule.map(RuleRef::from),
                message: &f.message,
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&json)?)?;
    } else if findings.is_empty() {
        let groups = config.inventory.groups.len();
        outln!(
            "no findings in {groups} {}",
            if groups == 1 { "group" } else { "groups" }
        )?;
    } else {
        let mut out = table(&["SEVERITY", "CHECK", "GROUP", "DIRECTION", "RULE", "FINDING"]);
        for f in &findings {
            out.add_row(vec![
                f.severity.name().to_string(),
                f.check.to_string(),
                f.group.clone(),
                f.direction.to_string(),
                f.rule
                    .map_or("-".to_string(), |r| describe_rule(r, f.direction)),
                f.message.clone(),
            ]);
        }
        outln!("{out}")?;
    }
    let failing = args
        .fail_on
        .0
        .is_some_and(|threshold| findings.iter().any(|f| f.severity >= threshold));
    Ok(if failing {
        ExitCode::from(EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    })
}
