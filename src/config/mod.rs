//! The config file: strict raw form -> validated `Config`. Unknown keys, bad values and
//! dangling references are errors naming file, line and field.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use toml::Spanned;

use crate::model::{Inventory, canonical_id, one_of};
use crate::policy::{LinkError, layers};
use crate::shard::Shard;
use crate::sources::native::{
    RawAddressSet, RawGroup, RawInstance, RawServiceSet, RawSubnet, Sections, Spans,
};
use crate::sources::unreadable;
use crate::sources::{Format, Merged, Reading, SourceError};

mod source;
pub use source::{Api, Fingerprint, Origin, SourceSpec, kill_running_commands};

pub const DEFAULT_CONTROL_SOCKET: &str = "/run/sgprobe/sgprobe.sock";
/// Overrides `[agent] shard`: `SGPROBE_SHARD=auto/4` in a StatefulSet's pod template.
pub const SHARD_ENV: &str = "SGPROBE_SHARD";
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9477";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("{at}: {message}")]
    Invalid { at: String, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    agent: Option<RawAgent>,
    #[serde(default)]
    source: Vec<Spanned<RawSource>>,
    #[serde(default)]
    discover: Vec<RawDiscover>,
    #[serde(default)]
    group: Vec<RawGroup>,
    #[serde(default)]
    address_set: Vec<RawAddressSet>,
    #[serde(default)]
    service_set: Vec<RawServiceSet>,
    #[serde(default)]
    subnet: Vec<RawSubnet>,
    #[serde(default)]
    instance: Vec<RawInstance>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    interval: Option<Spanned<String>>,
    metrics_listen: Option<Spanned<String>>,
    control_socket: Option<String>,
    confirm_cycles: Option<Spanned<u32>>,
    rate: Option<Spanned<u32>>,
    timeout: Option<Spanned<String>>,
    retries: Option<Spanned<u32>>,
    export: Option<Spanned<String>>,
    max_flow_series: Option<Spanned<usize>>,
    shard: Option<Spanned<String>>,
    web_reload: Option<bool>,
    vantage: Option<Spanned<String>>,
    seen_as: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: Option<String>,
    format: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    command: Option<Spanned<Vec<String>>>,
    api: Option<Spanned<String>>,
    region: Option<String>,
    endpoint: Option<String>,
    refresh: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    id: Option<String>,
}

/// Which of a source's instances to check: those with every tag given, bound to one of the
/// groups given (if any), in one of the subnets and VPCs given (if any).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscover {
    source: Spanned<String>,
    #[serde(default)]
    tags: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    subnets: Vec<String>,
    #[serde(default)]
    vpcs: Vec<String>,
}

impl RawDiscover {
    fn matches(&self, instance: &crate::model::Instance) -> bool {
        self.tags
            .iter()
            .all(|(k, v)| instance.labels.get(k) == Some(v))
            && (self.groups.is_empty()
                || self
                    .groups
                    .iter()
                    .any(|g| instance.is_bound_to(&canonical_id(g))))
            && (self.subnets.is_empty()
                || instance
                    .subnet
                    .as_ref()
                    .is_some_and(|s| self.subnets.iter().any(|id| canonical_id(id) == s.value)))
            && (self.vpcs.is_empty()
                || instance.vpc.as_ref().is_some_and(|v| self.vpcs.contains(v)))
    }
}

/// The agent's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// One cycle over every instance.
    pub interval: Duration,
    pub metrics_listen: SocketAddr,
    pub control_socket: PathBuf,
    /// Cycles that must agree before drift is confirmed.
    pub confirm_cycles: u32,
    /// Probe packets per second, all protocols together.
    pub rate: u32,
    pub timeout: Duration,
    pub retries: u32,
    /// Export per-flow series only for drifting flows.
    pub drifting_only: bool,
    /// Past this many planned flows, per-flow series are exported for drifting flows only.
    pub max_flow_series: usize,
    /// This agent's share of the instances.
    pub shard: Shard,
    /// `POST /-/reload` on the metrics listener reloads (off by default, as Prometheus'
    /// `--web.enable-lifecycle`: the listener is reachable from the network, the control
    /// socket only by its group).
    pub web_reload: bool,
    /// Where this agent probes from: the `vantage` label of everything it exports.
    pub vantage: Option<String>,
    /// The source addresses the clouds see for this agent (its NAT or egress address), at
    /// most one per family: predictions are made for them, not for its own interfaces.
    pub seen_as: Vec<IpAddr>,
}

impl Default for Agent {
    fn default() -> Self {
        Agent {
            interval: Duration::from_secs(30),
            metrics_listen: DEFAULT_METRICS_LISTEN.parse().expect("valid literal"),
            control_socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
            confirm_cycles: 2,
            rate: 1000,
            timeout: Duration::from_secs(1),
            retries: 2,
            drifting_only: false,
            max_flow_series: 10_000,
            shard: Shard::WHOLE,
            web_reload: false,
            vantage: None,
            seen_as: Vec::new(),
        }
    }
}

/// A validated config: every instance links to groups that exist.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub agent: Agent,
    pub inventory: Inventory,
    pub sources: Vec<SourceSpec>,
}

/// A config file read and checked before any source is fetched: the agent's settings, the
/// sources to fetch, and what the file itself defines. `assemble` makes it a `Config` with
/// each source's inventory.
#[derive(Debug)]
pub struct Draft {
    pub file: PathBuf,
    pub agent: Agent,
    pub sources: Vec<SourceSpec>,
    discover: Vec<RawDiscover>,
    own: Inventory,
}

impl Config {
    /// Loads a config, fetching every source now; `reading` says whether an export with
    /// unreadable rules loads.
    pub fn load(file: &Path, reading: Reading) -> Result<Config, ConfigError> {
        Config::read(file)?.fetch_and_assemble(reading)
    }

    /// Reads and checks a config file without fetching any source (no command runs, no API
    /// is called).
    pub fn read(file: &Path) -> Result<Draft, ConfigError> {
        let text = crate::sources::read_text(file)?;
        Draft::parse(file, &text)
    }

    /// The `[agent]` section alone, checked as `load` checks it: a client that needs only
    /// where the agent listens is not held up by the rest of the file.
    pub fn read_agent(file: &Path) -> Result<Agent, ConfigError> {
        let text = crate::sources::read_text(file)?;
        let spans = Spans::new(file, &text);
        let raw: RawConfig = toml::from_str(&text).map_err(|e| spans.toml(&e))?;
        Ok(agent(raw.agent.unwrap_or_default(), &spans)?)
    }

    /// This config, if an agent can run it: one that names at least one instance.
    pub fn runnable(self) -> Result<Config, ConfigError> {
        if self.inventory.instances.is_empty() {
            return Err(ConfigError::Invalid {
                at: self.file.display().to_string(),
                message: "no instance: the agent would check nothing (add an [[instance]], or an inventory export as a [[source]])".into(),
            });
        }
        Ok(self)
    }

    /// Parses and validates, strictly; sources are read relative to the config file's
    /// folder, and fetched now.
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        Draft::parse(file, text)?.fetch_and_assemble(Reading::Strict)
    }
}

impl Draft {
    /// Parses a config's text: every section checked, nothing fetched.
    pub fn parse(file: &Path, text: &str) -> Result<Draft, ConfigError> {
        let spans = Spans::new(file, text);
        let raw: RawConfig = toml::from_str(text).map_err(|e| spans.toml(&e))?;
        let agent = agent(raw.agent.unwrap_or_default(), &spans)?;
        let base = file.parent().unwrap_or(Path::new("."));
        let names: Vec<Option<String>> = raw
            .source
            .iter()
            .map(|s| s.get_ref().name.clone())
            .collect();
        for discover in &raw.discover {
            if !names
                .iter()
                .flatten()
                .any(|n| n == discover.source.get_ref())
            {
                return Err(spans
                    .at(
                        discover.source.span(),
                        format!(
                            "discover.source: no [[source]] is named {:?} (give the source a name = \"...\")",
                            discover.source.get_ref()
                        ),
                    )
                    .into());
            }
        }
        let mut sources: Vec<SourceSpec> = Vec::with_capacity(raw.source.len());
        for raw_source in raw.source {
            let table = raw_source.span();
            let spec = source_spec(raw_source, base, &spans)?;
            // Metrics, logs and the agent's last good rules are kept by name.
            if sources.iter().any(|s| s.name == spec.name) {
                return Err(spans
                    .at(
                        table,
                        format!(
                            "source.name: two sources are named {:?}: give each its own name = \"...\"",
                            spec.name
                        ),
                    )
                    .into());
            }
            sources.push(spec);
        }
        let inline = Sections {
            group: raw.group,
            address_set: raw.address_set,
            service_set: raw.service_set,
            subnet: raw.subnet,
            instance: raw.instance,
        };
        Ok(Draft {
            file: file.to_path_buf(),
            agent,
            sources,
            discover: raw.discover,
            own: inline.into_inventory(&spans)?,
        })
    }

    /// Every source fetched now, then `assemble`d.
    fn fetch_and_assemble(self, reading: Reading) -> Result<Config, ConfigError> {
        let fetched = self
            .sources
            .iter()
            .map(|source| source.fetch().map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        self.assemble(reading, &fetched)
    }

    /// The config with each source's inventory (`fetched`, in `sources` order): each
    /// filtered by its `[[discover]]` tables, all merged with what the file defines, and
    /// validated. The sources' rules are shared with `fetched`, not copied.
    pub fn assemble(
        self,
        reading: Reading,
        fetched: &[Arc<Inventory>],
    ) -> Result<Config, ConfigError> {
        assert_eq!(fetched.len(), self.sources.len(), "an inventory per source");
        let mut merged = Merged::default();
        for (spec, inventory) in self.sources.iter().zip(fetched) {
            unreadable::check(reading, &spec.file(), inventory)?;
            let mut inventory = Inventory::clone(inventory);
            let filters: Vec<&RawDiscover> = self
                .discover
                .iter()
                .filter(|d| d.source.get_ref() == &spec.name)
                .collect();
            if !filters.is_empty() {
                inventory.retain_instances(|i| filters.iter().any(|d| d.matches(i)));
            }
            merged.add(&spec.file(), inventory)?;
        }
        unreadable::check(reading, &self.file, &self.own)?;
        merged.add(&self.file, self.own)?;
        let mut inventory = merged.inventory;
        if reading == Reading::KeepGoing {
            unreadable::stand_in_for_nameless(&mut inventory);
        }
        validate(&inventory)?;
        Ok(Config {
            file: self.file,
            agent: self.agent,
            inventory,
            sources: self.sources,
        })
    }
}

/// The default `refresh` of a command source, and the timeout it gets unless told.
const DEFAULT_REFRESH: Duration = Duration::from_secs(300);
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

fn source_spec(
    raw: Spanned<RawSource>,
    base: &Path,
    spans: &Spans,
) -> Result<SourceSpec, SourceError> {
    // Where the table is: errors about what it lacks point there.
    let table = raw.span();
    let raw = raw.into_inner();
    let format = match (&raw.format, &raw.api) {
        (Some(format), None) => Format::parse(format.get_ref()).ok_or_else(|| {
            spans.at(
                format.span(),
                format!(
                    "unknown format {:?}: one of {}",
                    format.get_ref(),
                    one_of(Format::all())
                ),
            )
        })?,
        (Some(format), Some(_)) => {
            return Err(spans.at(
                format.span(),
                "source.format: an api source's rules come from the API, not an export: drop format",
            ));
        }
        // An API client gives its rules as native TOML.
        (None, Some(_)) => Format::Native,
        (None, None) => {
            return Err(spans.at(
                table,
                format!(
                    "a [[source]] needs a format ({}) unless it names an api",
                    one_of(Format::all())
                ),
            ));
        }
    };
    let api = match &raw.api {
        Some(api) => {
            let parsed = Api::parse(api.get_ref()).ok_or_else(|| {
                spans.at(
                    api.span(),
                    format!(
                        "source.api: {:?}: expected {}",
                        api.get_ref(),
                        one_of(Api::all())
                    ),
                )
            })?;
            if parsed == Api::Aws && !cfg!(feature = "aws-api") {
                return Err(spans.at(api.span(), "source.api: \"aws\" needs a build with the aws-api feature (cargo build --release --features aws-api; the container image has it), or use command = [\"aws\", \"ec2\", ...]"));
            }
            let region = raw.region.clone().ok_or_else(|| {
                spans.at(api.span(), "source.api needs a region (Tencent: ap-guangzhou; QingCloud: a zone such as pek3a)")
            })?;
            Some(Origin::Api {
                api: parsed,
                region,
                endpoint: raw.endpoint.clone(),
            })
        }
        None => None,
    };
    let duration = |value: &Option<Spanned<String>>, key: &str, default: Duration| {
        let Some(value) = value else {
            return Ok(default);
        };
        let (low, high) = SOURCE_DURATION;
        humantime::parse_duration(value.get_ref())
            .ok()
            .filter(|d| (low..=high).contains(d))
            .ok_or_else(|| {
                spans.at(
                    value.span(),
                    format!(
                        "source.{key}: expected a duration from {} to {} such as \"5m\", found {:?}",
                        humantime::format_duration(low),
                        humantime::format_duration(high),
                        value.get_ref()
                    ),
                )
            })
    };
    let refresh = duration(&raw.refresh, "refresh", DEFAULT_REFRESH)?;
    let timeout = duration(
        &raw.timeout,
        "timeout",
        DEFAULT_COMMAND_TIMEOUT.min(refresh),
    )?;
    let origin = match (raw.path, raw.command) {
        (None, None) if api.is_some() => api.expect("checked"),
        (Some(_), _) | (_, Some(_)) if api.is_some() => {
            return Err(spans.at(
                raw.api.as_ref().map_or(table.clone(), |a| a.span()),
                "a source has one of path, command and api",
            ));
        }
        (Some(path), None) => Origin::File(base.join(path.get_ref())),
        (None, Some(command)) if !command.get_ref().is_empty() => {
            Origin::Command(command.into_inner())
        }
        (None, Some(command)) => {
            return Err(spans.at(command.span(), "source.command: name the program and its arguments, as [\"aws\", \"ec2\", \"describe-security-groups\"]"));
        }
        (Some(path), Some(_)) => {
            return Err(spans.at(path.span(), "a source has a path or a command, not both"));
        }
        (None, None) => {
            return Err(spans.at(
                raw.format.as_ref().map_or(table.clone(), |f| f.span()),
                "a source needs a path (an export file), a command (that prints one) or an api",
            ));
        }
    };
    let name = raw.name.unwrap_or_else(|| match &origin {
        Origin::File(path) => path.display().to_string(),
        Origin::Command(argv) => source::shown_command(argv),
        Origin::Api { api, region, .. } => format!("{}/{region}", api.name()),
    });
    Ok(SourceSpec {
        name,
        format,
        origin,
        id: raw.id,
        refresh,
        timeout,
    })
}

/// An inventory is usable when every instance has an address and links to existing groups
/// of one cloud.
pub fn validate(inv: &Inventory) -> Result<(), ConfigError> {
    for instance in &inv.instances {
        if instance.all_addresses().next().is_none() {
            return Err(ConfigError::Invalid {
                at: instance.at.clone(),
                message: format!("instance {:?} has no address", instance.name),
            });
        }
        layers(inv, instance)?;
    }
    Ok(())
}

/// The ranges an agent's settings must fall in: outside them an agent hangs, floods, or
/// never completes a cycle.
const INTERVAL: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(86_400));
/// The probes' timeout, rate and retries, for the agent and `sgprobe probe` alike.
pub const TIMEOUT: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(60));
pub const RATE: (u32, u32) = (1, 1_000_000);
pub const RETRIES: u32 = 10;
/// A source's refresh and timeout: at least a second, at most a day.
const SOURCE_DURATION: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(86_400));
const CONFIRM_CYCLES: u32 = 100;
const MAX_FLOW_SERIES: usize = 1_000_000;

fn agent(raw: RawAgent, spans: &Spans) -> Result<Agent, SourceError> {
    let mut agent = Agent::default();
    let duration =
        |value: &Spanned<String>, key: &str, example: &str, (low, high): (Duration, Duration)| {
            let found = value.get_ref();
            match humantime::parse_duration(found) {
                Ok(d) if (low..=high).contains(&d) => Ok(d),
                Ok(_) => Err(spans.at(
                    value.span(),
                    format!(
                        "agent.{key}: {found:?} is outside {} to {}",
                        humantime::format_duration(low),
                        humantime::format_duration(high)
                    ),
                )),
                Err(_) => Err(spans.at(
                    value.span(),
                    format!("agent.{key}: expected a duration such as {example}, found {found:?}"),
                )),
            }
        };
    let number = |value: &Spanned<u32>, key: &str, (low, high): (u32, u32)| {
        let n = *value.get_ref();
        if (low..=high).contains(&n) {
            Ok(n)
        } else {
            Err(spans.at(
                value.span(),
                format!("agent.{key}: {n} is outside {low} to {high}"),
            ))
        }
    };
    if let Some(interval) = &raw.interval {
        agent.interval = duration(interval, "interval", "\"30s\" or \"2m\"", INTERVAL)?;
    }
    if let Some(timeout) = &raw.timeout {
        agent.timeout = duration(timeout, "timeout", "\"1s\" or \"500ms\"", TIMEOUT)?;
    }
    if let Some(listen) = raw.metrics_listen {
        // `:9477` is every interface, as exporters write it (Go's net.Listen).
        let text = listen.get_ref().trim();
        let full = match text.strip_prefix(':') {
            Some(port) => format!("0.0.0.0:{port}"),
            None => text.to_string(),
        };
        agent.metrics_listen = full
            .parse()
            .map_err(|_| spans.at(listen.span(), format!("agent.metrics_listen: expected address:port such as \"127.0.0.1:9477\" or \":9477\" (every interface), found {:?}", listen.get_ref())))?;
    }
    if let Some(socket) = raw.control_socket {
        agent.control_socket = PathBuf::from(socket);
    }
    if let Some(rate) = &raw.rate {
        agent.rate = number(rate, "rate", RATE)?;
    }
    if let Some(retries) = &raw.retries {
        agent.retries = number(retries, "retries", (0, RETRIES))?;
    }
    if let Some(cycles) = &raw.confirm_cycles {
        agent.confirm_cycles = number(cycles, "confirm_cycles", (1, CONFIRM_CYCLES))?;
    }
    if let Some(series) = &raw.max_flow_series {
        agent.max_flow_series = *series.get_ref();
        if agent.max_flow_series > MAX_FLOW_SERIES {
            return Err(spans.at(
                series.span(),
                format!(
                    "agent.max_flow_series: {} is more than {MAX_FLOW_SERIES}",
                    agent.max_flow_series
                ),
            ));
        }
    }
    agent.web_reload = raw.web_reload.unwrap_or(false);
    if let Some(vantage) = &raw.vantage {
        let name = vantage.get_ref();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(spans.at(
                vantage.span(),
                format!("agent.vantage: expected a name of letters, digits, '-', '_' and '.' such as \"vpc-main\" or \"internet-eu\", found {name:?}"),
            ));
        }
        agent.vantage = Some(name.clone());
    }
    if let Some(seen_as) = &raw.seen_as {
        for text in seen_as.get_ref() {
            let address = text
                .parse::<IpAddr>()
                .ok()
                .map(|a| a.to_canonical())
                .filter(|a| !(a.is_unspecified() || a.is_loopback() || a.is_multicast()))
                .ok_or_else(|| {
                    spans.at(
                        seen_as.span(),
                        format!("agent.seen_as: expected the unicast addresses the clouds see, such as [\"203.0.113.7\"], found {text:?}"),
                    )
                })?;
            if agent
                .seen_as
                .iter()
                .any(|a| a.is_ipv6() == address.is_ipv6())
            {
                return Err(spans.at(
                    seen_as.span(),
                    "agent.seen_as: one address per family (IPv4, IPv6): a prediction is made for one source",
                ));
            }
            agent.seen_as.push(address);
        }
    }
    if let Some(export) = raw.export {
        agent.drifting_only = match export.get_ref().as_str() {
            "all" => false,
            "drifting" => true,
            other => {
                return Err(spans.at(
                    export.span(),
                    format!("agent.export: expected \"all\" or \"drifting\", found {other:?}"),
                ));
            }
        };
    }
    // The environment wins, so one config serves every replica of a StatefulSet.
    // Kubernetes sets HOSTNAME to the pod's name.
    let hostname = std::env::var("HOSTNAME")
        .or_else(|_| std::fs::read_to_string("/proc/sys/kernel/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    if let Ok(text) = std::env::var(SHARD_ENV) {
        agent.shard = Shard::parse(&text, &hostname).map_err(|e| SourceError::At {
            file: PathBuf::from(format!("${SHARD_ENV}")),
            line: 1,
            column: 1,
            message: e.to_string(),
        })?;
    } else if let Some(shard) = &raw.shard {
        agent.shard = Shard::parse(shard.get_ref(), &hostname)
            .map_err(|e| spans.at(shard.span(), format!("agent.shard: {e}")))?;
    }
    // As Prometheus' scrape_timeout must fit its scrape_interval: every attempt of a silent
    // probe must fit in one interval.
    let attempts = agent.retries + 1;
    let silent = agent.timeout * attempts;
    if silent > agent.interval {
        let span = [
            raw.timeout.as_ref().map(Spanned::span),
            raw.retries.as_ref().map(Spanned::span),
            raw.interval.as_ref().map(Spanned::span),
        ]
        .into_iter()
        .flatten()
        .next()
        .unwrap_or(0..0);
        return Err(spans.at(
            span,
            format!(
                "agent.timeout x (agent.retries + 1) = {} x {attempts} = {} must fit in agent.interval ({}): a silent probe's attempts must end within a cycle",
                humantime::format_duration(agent.timeout),
                humantime::format_duration(silent),
                humantime::format_duration(agent.interval)
            ),
        ));
    }
    Ok(agent)
}
