//! Native TOML: groups, address and service sets, instances. Strict: unknown keys are errors
//! naming file, line and key. `render` writes what `parse` reads, so `sgprobe import` output
//! round-trips.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{SourceError, service_entry};
use crate::model::{
    Action, AddressSet, Cloud, Decision, Direction, IcmpMatch, Instance, Inventory, Located,
    Origin, Peer, Ports, Protocol, Rule, SecurityGroup, Service, ServiceSet, Subnet, Unreadable,
    canonical_id, one_of, parse_net, parse_port_spec,
};

/// The sections a native file (and the config file) may hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sections {
    #[serde(default)]
    pub group: Vec<RawGroup>,
    #[serde(default)]
    pub address_set: Vec<RawAddressSet>,
    #[serde(default)]
    pub service_set: Vec<RawServiceSet>,
    #[serde(default)]
    pub subnet: Vec<RawSubnet>,
    #[serde(default)]
    pub instance: Vec<RawInstance>,
}

/// A subnet: its ranges (traffic within them does not cross an AWS network ACL) and the
/// layers associated with it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSubnet {
    id: String,
    #[serde(default)]
    cidrs: Vec<Spanned<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    id: String,
    name: Option<String>,
    cloud: Spanned<String>,
    #[serde(default)]
    ingress: Vec<RawRule>,
    #[serde(default)]
    egress: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    action: Spanned<String>,
    protocol: Option<Spanned<String>>,
    ports: Option<Spanned<String>>,
    icmp_type: Option<u8>,
    icmp_code: Option<u8>,
    /// A service template id, instead of protocol and ports.
    service: Option<String>,
    /// The source ports of the packet that opens the flow (Alibaba's quintuple rules).
    source_ports: Option<Spanned<String>>,
    /// A rule an export held that could not be read: it may match anything.
    unreadable: Option<RawUnreadable>,
    peer: Spanned<String>,
    /// The instance's own addresses the rule applies to (Azure's destination inbound).
    local: Option<Spanned<String>>,
    priority: Option<i64>,
    id: Option<String>,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUnreadable {
    field: String,
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAddressSet {
    id: String,
    name: Option<String>,
    #[serde(default)]
    members: Vec<Spanned<String>>,
    #[serde(default)]
    includes: Vec<String>,
    /// Sets whose addresses are never members.
    #[serde(default)]
    excludes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServiceSet {
    id: String,
    name: Option<String>,
    /// Entries such as `tcp:80`, `udp:53-54`, `icmp`.
    #[serde(default)]
    services: Vec<Spanned<String>>,
    #[serde(default)]
    includes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInstance {
    name: Spanned<String>,
    id: Option<String>,
    #[serde(default)]
    addresses: Vec<Spanned<String>>,
    #[serde(default)]
    public_addresses: Vec<Spanned<String>>,
    #[serde(default)]
    security_groups: Vec<Spanned<String>>,
    #[serde(default)]
    subnet_layers: Vec<Spanned<String>>,
    subnet: Option<Spanned<String>>,
    vpc: Option<String>,
    #[serde(default)]
    application_security_groups: Vec<String>,
    ports: Option<Spanned<String>>,
    serves: Option<Spanned<String>>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    local: bool,
    #[serde(default)]
    outbound: Vec<RawOutbound>,
}

/// An egress check: `ports` to `destination`, from the instance itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutbound {
    ports: Spanned<String>,
    destination: Spanned<String>,
}

/// Errors at a span of a TOML file.
#[derive(Debug)]
pub struct Spans<'a> {
    pub file: &'a Path,
    pub text: &'a str,
    /// Where each line starts, found once: every instance records its place, and counting
    /// lines from the top each time made loading quadratic.
    lines: std::cell::OnceCell<Vec<usize>>,
}

impl<'a> Spans<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        Spans {
            file,
            text,
            lines: std::cell::OnceCell::new(),
        }
    }

    /// Line and column (1-based) of a byte offset.
    fn line_column(&self, offset: usize) -> (usize, usize) {
        let starts = self.lines.get_or_init(|| {
            std::iter::once(0)
                .chain(self.text.match_indices('\n').map(|(at, _)| at + 1))
                .collect()
        });
        let offset = offset.min(self.text.len());
        let line = starts.partition_point(|start| *start <= offset);
        let start = starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(0, |t| t.chars().count())
            + 1;
        (line, column)
    }

    pub fn at(&self, span: Range<usize>, message: impl Into<String>) -> SourceError {
        let (line, column) = self.line_column(span.start);
        SourceError::At {
            file: self.file.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }

    pub fn place(&self, span: Range<usize>) -> String {
        format!("{}:{}", self.file.display(), self.line_column(span.start).0)
    }

    /// A TOML syntax or schema error (unknown key, wrong type), on one line.
    pub fn toml(&self, error: &toml::de::Error) -> SourceError {
        self.at(
            error.span().unwrap_or(0..0),
            error.message().trim().replace('\n', " "),
        )
    }

    fn parse<T>(
        &self,
        value: &Spanned<String>,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, SourceError> {
        parse(value.get_ref()).ok_or_else(|| {
            self.at(
                value.span(),
                format!("expected {expected}, found {:?}", value.get_ref()),
            )
        })
    }
}

pub fn parse(file: &Path, text: &str) -> Result<Inventory, SourceError> {
    let spans = Spans::new(file, text);
    let sections: Sections = toml::from_str(text).map_err(|e| spans.toml(&e))?;
    sections.into_inventory(&spans)
}

impl Sections {
    pub fn into_inventory(self, spans: &Spans) -> Result<Inventory, SourceError> {
        let mut inv = Inventory::default();
        for raw in self.group {
            let group = group(raw, spans)?;
            inv.insert_group(group);
        }
        for raw in self.address_set {
            let mut members = Vec::new();
            for member in &raw.members {
                members.push(spans.parse(member, "a CIDR or an address", parse_net)?);
            }
            let set = AddressSet {
                id: raw.id,
                name: raw.name,
                members,
                includes: raw.includes,
                excludes: raw.excludes,
            };
            inv.address_sets.insert(set.id.clone(), set);
        }
        for raw in self.service_set {
            let mut services = Vec::new();
            for entry in &raw.services {
                services.push(spans.parse(
                    entry,
                    "a service such as tcp:80, udp:53-54 or icmp",
                    service_entry,
                )?);
            }
            let set = ServiceSet {
                id: raw.id,
                name: raw.name,
                services,
                includes: raw.includes,
            };
            inv.service_sets.insert(set.id.clone(), set);
        }
        for raw in self.subnet {
            let mut cidrs = Vec::new();
            for cidr in &raw.cidrs {
                cidrs.push(spans.parse(cidr, "a CIDR", parse_net)?);
            }
            inv.add_subnet(Subnet {
                id: canonical_id(&raw.id),
                cidrs,
                layers: raw.layers.iter().map(|id| canonical_id(id)).collect(),
            });
        }
        for raw in self.instance {
            super::add_instance(&mut inv, spans.file, instance(raw, spans)?)?;
        }
        Ok(inv)
    }
}

fn group(raw: RawGroup, spans: &Spans) -> Result<SecurityGroup, SourceError> {
    let cloud = spans.parse(
        &raw.cloud,
        &format!("one of {}", one_of(Cloud::all())),
        Cloud::parse,
    )?;
    let mut group = SecurityGroup::new(canonical_id(&raw.id), cloud);
    group.name = raw.name;
    for (direction, rules) in [
        (Direction::Inbound, raw.ingress),
        (Direction::Outbound, raw.egress),
    ] {
        for (index, raw) in rules.into_iter().enumerate() {
            let action_span = raw.action.span();
            let rule = rule(raw, &group.id, index, spans)?;
            if rule.action == Action::Drop && cloud.semantics().decision == Decision::AllowUnion {
                return Err(spans.at(
                    action_span,
                    format!("{cloud} security groups allow only: a rule cannot drop"),
                ));
            }
            group.rules_mut(direction).push(rule);
        }
    }
    Ok(group)
}

fn rule(raw: RawRule, group: &str, index: usize, spans: &Spans) -> Result<Rule, SourceError> {
    let action = spans.parse(&raw.action, "accept or drop", Action::parse)?;
    let service = match (raw.service, &raw.protocol, raw.unreadable) {
        (None, None, Some(RawUnreadable { field, reason })) => {
            Service::Unreadable(Unreadable { field, reason })
        }
        (_, Some(protocol), Some(_)) => {
            return Err(spans.at(
                protocol.span(),
                "an unreadable rule has no protocol: nothing of it is known",
            ));
        }
        (Some(_), None, Some(_)) => {
            return Err(spans.at(
                raw.action.span(),
                "an unreadable rule has no service: nothing of it is known",
            ));
        }
        (Some(template), None, None) => Service::Template(template),
        (Some(_), Some(protocol), None) => {
            return Err(spans.at(
                protocol.span(),
                "a rule has either `service` or `protocol`, not both",
            ));
        }
        (None, protocol, None) => {
            let protocol = match protocol {
                Some(p) => spans.parse(
                    p,
                    "tcp, udp, icmp, icmpv6, all or a protocol number",
                    Protocol::parse,
                )?,
                None => Protocol::All,
            };
            let ports = |value: &Option<Spanned<String>>| match value {
                Some(ports) => spans.parse(
                    ports,
                    "all, a port, a list or a range such as 8000-9000",
                    Ports::parse,
                ),
                None => Ok(Ports::All),
            };
            let (source_ports, ports) = (ports(&raw.source_ports)?, ports(&raw.ports)?);
            Service::Ports {
                protocol,
                ports,
                icmp: IcmpMatch {
                    icmp_type: raw.icmp_type,
                    code: raw.icmp_code,
                },
                source_ports,
            }
        }
    };
    let reference = |text: &str| match Peer::parse(text)? {
        Peer::Group(id) => Some(Peer::Group(canonical_id(&id))),
        Peer::GroupPublic(id) => Some(Peer::GroupPublic(canonical_id(&id))),
        peer => Some(peer),
    };
    let peer = spans.parse(&raw.peer, "all, a CIDR, group:ID or set:ID", reference)?;
    let local = match &raw.local {
        Some(local) => spans.parse(local, "all, a CIDR, group:ID or set:ID", reference)?,
        None => Peer::All,
    };
    Ok(Rule {
        action,
        service,
        peer,
        local,
        priority: raw.priority,
        origin: Origin {
            group: group.into(),
            index,
            id: raw.id,
            description: raw.description,
        },
    })
}

fn instance(raw: RawInstance, spans: &Spans) -> Result<Instance, SourceError> {
    let at = spans.place(raw.name.span());
    let mut instance = Instance::new(raw.name.into_inner(), at);
    instance.id = raw.id;
    for (list, into) in [
        (&raw.addresses, &mut instance.addresses),
        (&raw.public_addresses, &mut instance.public_addresses),
    ] {
        for address in list {
            into.push(spans.parse(address, "an IP address", |t| t.trim().parse().ok())?);
        }
    }
    let located = |id: Spanned<String>| Located {
        at: spans.place(id.span()),
        value: canonical_id(id.get_ref()),
    };
    instance.security_groups = raw.security_groups.into_iter().map(located).collect();
    instance.subnet_layers = raw.subnet_layers.into_iter().map(located).collect();
    instance.application_security_groups = raw
        .application_security_groups
        .iter()
        .map(|id| canonical_id(id))
        .collect();
    instance.vpc = raw.vpc;
    instance.subnet = raw.subnet.map(located);
    for (spec, into) in [
        (raw.ports, &mut instance.ports),
        (raw.serves, &mut instance.serves),
    ] {
        if let Some(spec) = spec {
            *into = parse_port_spec(spec.get_ref())
                .map_err(|e| spans.at(spec.span(), e.to_string()))?;
        }
    }
    instance.labels = raw.labels;
    instance.local = raw.local;
    for outbound in &raw.outbound {
        if !raw.local {
            return Err(spans.at(outbound.ports.span(), "outbound checks are probed from the instance itself: set `local = true` on the instance the agent runs on"));
        }
        let destination = spans.parse(&outbound.destination, "a destination IP address", |t| {
            t.trim().parse::<std::net::IpAddr>().ok()
        })?;
        let specs = parse_port_spec(outbound.ports.get_ref())
            .map_err(|e| spans.at(outbound.ports.span(), e.to_string()))?;
        for spec in specs {
            if !spec.protocol.is_probe() {
                return Err(spans.at(
                    outbound.ports.span(),
                    "`all`, ICMP types and IP protocols are verdicts, not probes: name tcp, udp or icmp ports",
                ));
            }
            instance.outbound.push((spec, destination));
        }
    }
    Ok(instance)
}

/// Writes an inventory as native TOML.
pub fn render(inv: &Inventory) -> String {
    let mut out = String::new();
    for group in inv.groups.values() {
        let _ = writeln!(out, "[[group]]\nid = {}", quote(&group.id));
        if let Some(name) = &group.name {
            let _ = writeln!(out, "name = {}", quote(name));
        }
        let _ = writeln!(out, "cloud = {}\n", quote(group.cloud.name()));
        for (key, rules) in [("ingress", &group.ingress), ("egress", &group.egress)] {
            for rule in rules {
                let _ = writeln!(out, "[[group.{key}]]\n{}", render_rule(rule));
            }
        }
    }
    for set in inv.address_sets.values() {
        let members = set.members.iter().map(ToString::to_string).collect();
        render_set(
            &mut out,
            "address_set",
            &set.id,
            set.name.as_deref(),
            ("members", members),
            &set.includes,
        );
        if !set.excludes.is_empty() {
            // The set's table is still open: its keys go on.
            out.pop();
            let _ = writeln!(out, "excludes = [{}]\n", quoted_list(&set.excludes));
        }
    }
    for set in inv.service_sets.values() {
        let services = set
            .services
            .iter()
            .map(|(p, ports)| format!("{p}:{ports}"))
            .collect();
        render_set(
            &mut out,
            "service_set",
            &set.id,
            set.name.as_deref(),
            ("services", services),
            &set.includes,
        );
    }
    for subnet in inv.subnets.values() {
        let cidrs: Vec<String> = subnet.cidrs.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "[[subnet]]\nid = {}\ncidrs = [{}]\nlayers = [{}]\n",
            quote(&subnet.id),
            quoted_list(&cidrs),
            quoted_list(&subnet.layers)
        );
    }
    for instance in &inv.instances {
        let ids = |ids: &[Located<String>]| {
            quoted_list(&ids.iter().map(|g| g.value.clone()).collect::<Vec<_>>())
        };
        let _ = writeln!(out, "[[instance]]\nname = {}", quote(&instance.name));
        if let Some(id) = &instance.id {
            let _ = writeln!(out, "id = {}", quote(id));
        }
        let addresses: Vec<String> = instance.addresses.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "addresses = [{}]", quoted_list(&addresses));
        if !instance.public_addresses.is_empty() {
            let public: Vec<String> = instance
                .public_addresses
                .iter()
                .map(ToString::to_string)
                .collect();
            let _ = writeln!(out, "public_addresses = [{}]", quoted_list(&public));
        }
        let _ = writeln!(
            out,
            "security_groups = [{}]",
            ids(&instance.security_groups)
        );
        if !instance.subnet_layers.is_empty() {
            let _ = writeln!(out, "subnet_layers = [{}]", ids(&instance.subnet_layers));
        }
        if let Some(subnet) = &instance.subnet {
            let _ = writeln!(out, "subnet = {}", quote(&subnet.value));
        }
        if let Some(vpc) = &instance.vpc {
            let _ = writeln!(out, "vpc = {}", quote(vpc));
        }
        if !instance.application_security_groups.is_empty() {
            let _ = writeln!(
                out,
                "application_security_groups = [{}]",
                quoted_list(&instance.application_security_groups)
            );
        }
        for (key, specs) in [("ports", &instance.ports), ("serves", &instance.serves)] {
            if !specs.is_empty() {
                let specs: Vec<String> = specs.iter().map(ToString::to_string).collect();
                let _ = writeln!(out, "{key} = {}", quote(&specs.join(",")));
            }
        }
        if instance.local {
            let _ = writeln!(out, "local = true");
        }
        if !instance.labels.is_empty() {
            let labels: Vec<String> = instance
                .labels
                .iter()
                .map(|(k, v)| format!("{} = {}", quote(k), quote(v)))
                .collect();
            let _ = writeln!(out, "labels = {{ {} }}", labels.join(", "));
        }
        // Sub-tables last: keys after them would belong to them.
        for (spec, destination) in &instance.outbound {
            let _ = writeln!(
                out,
                "[[instance.outbound]]\nports = {}\ndestination = {}",
                quote(&spec.to_string()),
                quote(&destination.to_string())
            );
        }
        out.push('\n');
    }
    out
}

fn quote(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

fn quoted_list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| quote(i))
        .collect::<Vec<_>>()
        .join(", ")
}

fn render_set(
    out: &mut String,
    table: &str,
    id: &str,
    name: Option<&str>,
    (key, items): (&str, Vec<String>),
    includes: &[String],
) {
    let _ = writeln!(out, "[[{table}]]\nid = {}", quote(id));
    if let Some(name) = name {
        let _ = writeln!(out, "name = {}", quote(name));
    }
    let _ = writeln!(
        out,
        "{key} = [{}]\nincludes = [{}]\n",
        quoted_list(&items),
        quoted_list(includes)
    );
}

/// One rule's fields as native TOML lines (no table header).
pub fn render_rule(rule: &Rule) -> String {
    let mut out = format!("action = {}\n", quote(&rule.action.to_string()));
    match &rule.service {
        Service::Template(id) => {
            let _ = writeln!(out, "service = {}", quote(id));
        }
        Service::Unreadable(Unreadable { field, reason }) => {
            let _ = writeln!(
                out,
                "unreadable = {{ field = {}, reason = {} }}",
                quote(field),
                quote(reason)
            );
        }
        Service::Ports {
            protocol,
            ports,
            icmp,
            source_ports,
        } => {
            let _ = writeln!(out, "protocol = {}", quote(&protocol.to_string()));
            if protocol.has_ports() {
                let _ = writeln!(out, "ports = {}", quote(&ports.to_string()));
            }
            if *source_ports != Ports::All {
                let _ = writeln!(out, "source_ports = {}", quote(&source_ports.to_string()));
            }
            if let Some(t) = icmp.icmp_type {
                let _ = writeln!(out, "icmp_type = {t}");
            }
            if let Some(c) = icmp.code {
                let _ = writeln!(out, "icmp_code = {c}");
            }
        }
    }
    let _ = writeln!(out, "peer = {}", quote(&rule.peer.to_string()));
    if rule.local != Peer::All {
        let _ = writeln!(out, "local = {}", quote(&rule.local.to_string()));
    }
    if let Some(priority) = rule.priority {
        let _ = writeln!(out, "priority = {priority}");
    }
    if let Some(id) = &rule.origin.id {
        let _ = writeln!(out, "id = {}", quote(id));
    }
    if let Some(description) = &rule.origin.description {
        let _ = writeln!(out, "description = {}", quote(description));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_ports_read_and_render_beside_the_checked_ones() {
        let text = "[[instance]]\nname = \"web\"\naddresses = [\"10.0.0.5\"]\nports = \"tcp:8080\"\nserves = \"tcp:443,udp:53\"\n";
        let inv = parse(Path::new("x.toml"), text).expect("valid");
        let specs = |specs: &[crate::model::FlowSpec]| {
            specs.iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        let web = &inv.instances[0];
        assert_eq!(specs(&web.ports), ["TCP:8080"]);
        assert_eq!(specs(&web.serves), ["TCP:443", "UDP:53"]);
        let again = parse(Path::new("y.toml"), &render(&inv)).expect("renders valid TOML");
        assert_eq!(specs(&again.instances[0].serves), ["TCP:443", "UDP:53"]);
        let error = parse(Path::new("x.toml"), &text.replace("udp:53", "udp:99999"))
            .expect_err("a port past 65535");
        assert!(error.to_string().starts_with("x.toml:5:"), "{error}");
    }

    #[test]
    fn the_line_index_agrees_with_counting_from_the_top() {
        let text = "a = 1\n\nb = \"é\"\nc\n";
        let spans = Spans::new(Path::new("x.toml"), text);
        for offset in (0..=text.len()).filter(|o| text.is_char_boundary(*o)) {
            let before = &text[..offset];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            assert_eq!(spans.line_column(offset), (line, column), "offset {offset}");
        }
        assert_eq!(
            spans.line_column(1000),
            (5, 1),
            "past the end: the last line"
        );
    }
}
