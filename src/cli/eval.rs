//! `sgprobe eval`: verdicts for flows, no packets.

use crate::sources::native::render_rule;
use std::net::IpAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use ipnet::IpNet;
use serde::Serialize;

use super::BadInput;
use super::output::{describe_rule, table};
use super::{ConfigArg, KeepGoingArg};
use crate::config::Config;
use crate::model::catalog::service_name;
use crate::model::{Direction, Flow, FlowPeer, FlowSpec, Instance, parse_port_spec};
use crate::plan::console_checks;
use crate::policy::{Considered, Layer, Predicted, RuleRef, Verdict, evaluate, layers, remedy};

#[derive(Debug, Args)]
#[command(
    about = "Predict which flows the security groups open, and which rule decides (no packets)",
    after_help = "Examples:\n  \
sgprobe eval --config deploy/example/sgprobe.toml\n      \
the console's common ports (ICMP, TCP 20, 21, 22, 80, 443, 3389 inbound; all outbound) for every instance\n  \
sgprobe eval -c sgprobe.toml --instance web-1 --peer 203.0.113.10 --ports tcp:22\n      \
is SSH to web-1 open from 203.0.113.10, and why?\n  \
sgprobe eval -c sgprobe.toml --ports tcp:22,80,443,udp:53,icmp --json\n\n\
PREDICTED: allowed, denied, partial (allowed to some peers only: the peers are listed), unknown (a rule \
refers to something the exports lack, and it matters), ambiguous (equal priorities, different actions); \
JSON's predicted says open, closed, partial, unknown, ambiguous. With --remedy and a --peer, a flow a \
default denies gets the rule that would allow it, in the cloud's own terms and as native TOML: never \
one an explicit deny closes on purpose, never for a wider peer than the one asked about."
)]
pub struct EvalArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    keep_going: KeepGoingArg,
    /// Only this instance (name or cloud id); default every instance.
    #[arg(long, short = 'i', value_name = "NAME")]
    instance: Option<String>,
    /// The other end of the flow: the source for inbound, the destination for outbound.
    #[arg(long, alias = "from", value_name = "ADDR|all", default_value = "all", value_parser = parse_peer)]
    peer: FlowPeer,
    /// Flows to check, as tcp:22,80,udp:53,icmp (also icmp:3/4, icmpv6:1, gre, esp, proto:132);
    /// default the console's common ports plus the instance's own `ports` and `serves`.
    #[arg(long, short = 'p', value_name = "SPEC", value_parser = parse_spec)]
    ports: Option<PortList>,
    /// The peer's own port: a client's source port (for an outbound flow, the instance's).
    /// Matters only where a stateless layer (an AWS network ACL) must pass the reply; the
    /// default is every port sgprobe's probes send from.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    peer_port: Option<u16>,
    /// Only this direction; with --ports the default is inbound.
    #[arg(long, short = 'd', value_name = "inbound|outbound", value_parser = parse_direction)]
    direction: Option<Direction>,
    /// One JSON array, one object per flow.
    #[arg(long)]
    json: bool,
    /// Show every rule considered for each flow.
    #[arg(long)]
    trace: bool,
    /// For each flow a default denies, the rule that would allow it from (or to) --peer, in the
    /// cloud's own terms and as native TOML. Needs --peer ADDR: a rule for every peer is
    /// rarely the fix.
    #[arg(long)]
    remedy: bool,
}

fn parse_peer(text: &str) -> Result<FlowPeer, String> {
    FlowPeer::parse(text).ok_or_else(|| format!("{text:?} is neither an IP address nor `all`"))
}

/// A parsed port spec (a newtype: clap reads a bare `Vec` as a repeated option).
#[derive(Debug, Clone)]
pub struct PortList(pub Vec<FlowSpec>);

pub fn parse_spec(text: &str) -> Result<PortList, String> {
    parse_port_spec(text)
        .map(PortList)
        .map_err(|e| e.to_string())
}

pub fn parse_direction(text: &str) -> Result<Direction, String> {
    Direction::parse(text).ok_or_else(|| format!("{text:?}: expected inbound or outbound"))
}

/// One evaluated flow.
pub struct Row<'a> {
    pub instance: &'a Instance,
    pub layers: &'a [Layer<'a>],
    pub flow: Flow,
    pub verdict: Verdict<'a>,
}

#[derive(Serialize)]
struct RowJson<'a> {
    instance: &'a str,
    address: IpAddr,
    direction: Direction,
    protocol: &'static str,
    port: Option<u16>,
    peer: FlowPeer,
    predicted: Predicted,
    rule: Option<RuleRef>,
    /// The rule decided on the reply, which a stateless layer must let back too.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    on_reply: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed_peers: Vec<IpNet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace: Option<Vec<String>>,
}

pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config.config, args.keep_going.reading())
        .context("cannot load the config")?;
    let inv = &config.inventory;
    let instances: Vec<&Instance> = match &args.instance {
        Some(name) => vec![
            inv.instance(name)
                .map_err(|e| BadInput(e.to_string()))?
                .ok_or_else(|| {
                    let known: Vec<&str> = inv.instances.iter().map(|i| i.name.as_str()).collect();
                    BadInput(format!(
                        "no instance {name:?} in {} (known: {})",
                        config.file.display(),
                        known.join(", ")
                    ))
                })?,
        ],
        None => inv.instances.iter().collect(),
    };
    if instances.is_empty() {
        return Err(BadInput(format!(
            "{} defines no instance: add an [[instance]] or an inventory export as a [[source]]",
            config.file.display()
        ))
        .into());
    }
    let linked = instances
        .iter()
        .map(|i| Ok((*i, layers(inv, i)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut rows = Vec::new();
    for (instance, layers) in &linked {
        for flow in flows(instance, &args) {
            rows.push(Row {
                instance,
                layers,
                flow,
                verdict: evaluate(inv, layers, &flow),
            });
        }
    }
    if rows.is_empty() {
        return Err(BadInput(format!(
            "no instance checked has an address of the peer's family ({})",
            args.peer
        ))
        .into());
    }
    if args.json {
        print_json(&rows, args.trace)?;
    } else {
        print_table(&rows, args.trace, args.remedy)?;
        if args.remedy && args.peer == FlowPeer::All {
            outln!("\n--remedy names the rule to add for one peer: give --peer ADDR")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The flows to check on one instance: per address of the peer's family, per spec.
fn flows(instance: &Instance, args: &EvalArgs) -> Vec<Flow> {
    let specs: Vec<(Direction, FlowSpec)> = match &args.ports {
        Some(PortList(specs)) => specs
            .iter()
            .map(|s| (args.direction.unwrap_or(Direction::Inbound), *s))
            .collect(),
        None => {
            let mut specs = console_checks(instance);
            specs.retain(|(d, _)| args.direction.is_none_or(|wanted| wanted == *d));
            specs
        }
    };
    let addresses: Vec<IpAddr> = instance
        .all_addresses()
        .copied()
        .filter(|a| match args.peer {
            FlowPeer::Addr(peer) => peer.is_ipv6() == a.is_ipv6(),
            FlowPeer::All => true,
        })
        .collect();
    addresses
        .iter()
        .flat_map(|address| {
            specs
                .iter()
                .filter(|(_, spec)| spec.protocol.applies_to(*address))
                .map(|(direction, spec)| Flow {
                    address: *address,
                    direction: *direction,
                    spec: *spec,
                    peer: args.peer,
                    peer_port: args.peer_port,
                })
        })
        .collect()
}

/// A verdict in the table's words: what the rules allow or deny (what packets show is open,
/// closed or filtered, as nmap says).
pub fn policy_word(predicted: Predicted) -> &'static str {
    match predicted {
        Predicted::Open => "allowed",
        Predicted::Closed => "denied",
        Predicted::Partial => "partial",
        Predicted::Unknown => "unknown",
        Predicted::Ambiguous => "ambiguous",
    }
}

/// The list a rule deciding `direction`'s flow sits in: the flow's own, or the reverse for
/// the reply a stateless layer must pass.
fn list_of(direction: Direction, reply: bool) -> Direction {
    if reply {
        direction.reverse()
    } else {
        direction
    }
}

/// What decided, in one line.
pub fn decided_by(layers: &[Layer], verdict: &Verdict, direction: Direction) -> String {
    let what = match verdict.decider.rule {
        Some(rule) => describe_rule(rule, list_of(direction, verdict.decider.reply)),
        None => {
            let layer = &layers[verdict.decider.layer];
            format!(
                "default {} of {} ({})",
                verdict.decider.action,
                layer.groups.join(","),
                layer.cloud
            )
        }
    };
    if verdict.decider.reply {
        format!("reply: {what}")
    } else {
        what
    }
}

fn trace_lines(layers: &[Layer], verdict: &Verdict, direction: Direction) -> Vec<String> {
    verdict
        .trace
        .iter()
        .map(|step| {
            let what = match step.rule {
                Some(rule) => describe_rule(rule, list_of(direction, step.reply)),
                None => format!(
                    "default {} of {}",
                    step.action,
                    layers[step.layer].groups.join(",")
                ),
            };
            let how = match step.considered {
                Considered::Matched => "matched",
                Considered::Maybe => "may match (unresolved reference)",
                Considered::Default => "no rule matched",
            };
            let reply = if step.reply { "reply: " } else { "" };
            format!("{reply}{what}: {how}")
        })
        .collect()
}

fn print_json(rows: &[Row], with_trace: bool) -> anyhow::Result<()> {
    let json: Vec<RowJson> = rows
        .iter()
        .map(|row| RowJson {
            instance: &row.instance.name,
            address: row.flow.address,
            direction: row.flow.direction,
            protocol: row.flow.protocol_label(),
            port: row.flow.spec.port,
            peer: row.flow.peer,
            predicted: row.verdict.predicted,
            rule: row.verdict.decider.rule.map(RuleRef::from),
            on_reply: row.verdict.decider.reply,
            allowed_peers: row.verdict.allowed_peers.clone(),
            trace: with_trace.then(|| trace_lines(row.layers, &row.verdict, row.flow.direction)),
        })
        .collect();
    outln!("{}", serde_json::to_string_pretty(&json)?)?;
    Ok(())
}

fn print_table(rows: &[Row], with_trace: bool, with_remedy: bool) -> std::io::Result<()> {
    let mut out = table(&[
        "INSTANCE",
        "ADDRESS",
        "PORT",
        "DIRECTION",
        "PEER",
        "PREDICTED",
        "DECIDED BY",
    ]);
    for row in rows {
        let port = match service_name(row.flow.spec) {
            Some(service) => format!("{} ({service})", row.flow.spec),
            None => row.flow.spec.to_string(),
        };
        out.add_row(vec![
            row.instance.name.clone(),
            row.flow.address.to_string(),
            port,
            row.flow.direction.to_string(),
            row.flow.peer.to_string(),
            policy_word(row.verdict.predicted).to_string(),
            decided_by(row.layers, &row.verdict, row.flow.direction),
        ]);
    }
    outln!("{out}")?;
    for row in rows {
        let (flow, layers) = (&row.flow, row.layers);
        // The peer is the source of an inbound flow and the destination of an outbound one.
        let toward = match flow.direction {
            Direction::Inbound => "from",
            Direction::Outbound => "to",
        };
        let title = format!(
            "{} {} on {} ({}) {toward} {}",
            flow.spec, flow.direction, row.instance.name, flow.address, flow.peer
        );
        if with_trace {
            outln!("\n{title}:")?;
            for line in trace_lines(layers, &row.verdict, flow.direction) {
                outln!("  {line}")?;
            }
        }
        if !row.verdict.allowed_peers.is_empty() {
            let peers: Vec<String> = row
                .verdict
                .allowed_peers
                .iter()
                .map(ToString::to_string)
                .collect();
            outln!("\n{title}: open only to {}", peers.join(", "))?;
        }
        let fix = (with_remedy && flow.peer != FlowPeer::All)
            .then(|| remedy(layers, flow, &row.verdict))
            .flatten();
        if let Some(fix) = fix {
            outln!("\nTo open {title}: add a rule {}:", fix.placement)?;
            outln!("  {}", super::remedy::command(&fix))?;
            outln!(
                "  as native TOML ([[group.{}]] of {}):",
                if fix.direction == Direction::Inbound {
                    "ingress"
                } else {
                    "egress"
                },
                fix.group
            )?;
            for line in render_rule(&fix.rule).lines() {
                outln!("    {line}")?;
            }
        }
    }
    Ok(())
}
