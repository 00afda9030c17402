//! Sources: cloud exports and native TOML, read into the model. One file per format.

mod alibaba;
mod aws;
mod azure;
mod error;
mod json;
pub mod native;
mod openstack;
mod qingcloud;
mod tencent;
pub mod unreadable;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

pub use error::SourceError;
use json::{Doc, Node};
pub use unreadable::Reading;

use std::collections::BTreeMap;

use crate::model::{
    Cloud, Direction, Instance, Inventory, MergeError, Ports, Protocol, SecurityGroup, parse_net,
};

/// The formats sources come in. Names and the list come from the enum (see `Cloud`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::EnumIter,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[strum(serialize_all = "lowercase", ascii_case_insensitive)]
pub enum Format {
    Native,
    Tencent,
    QingCloud,
    Aws,
    Alibaba,
    OpenStack,
    Azure,
}

crate::model::named_by_variants!(Format);

impl Format {
    /// The clouds' export formats: all but native TOML.
    pub fn exports() -> impl Iterator<Item = Format> {
        Format::all().filter(|f| *f != Format::Native)
    }

    /// What the format's module reads, in the words of the cloud's CLI and API.
    pub fn reads(self) -> &'static str {
        match self {
            Format::Native => "sgprobe's own TOML (README, \"Configuration\")",
            Format::Tencent => tencent::READS,
            Format::QingCloud => qingcloud::READS,
            Format::Aws => aws::READS,
            Format::Alibaba => alibaba::READS,
            Format::OpenStack => openstack::READS,
            Format::Azure => azure::READS,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The largest config or export read: far above any real account's export, far below what
/// would exhaust the agent.
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// Sources read one after another into one inventory, remembering which file first defined
/// each group so that a disagreement names both files.
#[derive(Debug, Default)]
pub struct Merged {
    pub inventory: Inventory,
    /// Each group's first file, as an index into `files`: a reload of a large export adds
    /// tens of thousands of groups, and allocates nothing for each.
    group_files: BTreeMap<std::sync::Arc<str>, usize>,
    files: Vec<PathBuf>,
}

impl Merged {
    pub fn add(&mut self, file: &Path, inv: Inventory) -> Result<(), SourceError> {
        let at = self.files.len();
        self.files.push(file.to_path_buf());
        for id in inv.groups.keys() {
            self.group_files.entry(id.clone()).or_insert(at);
        }
        self.inventory.merge(inv).map_err(|error| match error {
            MergeError::Group(group, at) => SourceError::Conflict {
                first: self.files[self.group_files[group.as_str()]].clone(),
                second: file.to_path_buf(),
                group,
                direction: at.direction,
                position: at.position,
            },
            MergeError::Instance(ambiguous) => SourceError::AmbiguousInstance {
                file: file.to_path_buf(),
                ambiguous,
            },
        })
    }
}

/// Reads one source file. `id` names the object for exports that do not carry its id (a
/// Tencent policy list, an AWS prefix-list's entries); `reading`, whether unreadable rules
/// are an error.
pub fn load(
    format: Format,
    file: &Path,
    id: Option<&str>,
    reading: Reading,
) -> Result<Inventory, SourceError> {
    let text = read_text(file)?;
    let inventory = read(format, file, &text, id)?;
    unreadable::check(reading, file, &inventory)?;
    Ok(inventory)
}

/// A config's or export's text. Only a regular file is opened (a FIFO or a device at the
/// path would block or never end), and only up to `MAX_FILE_BYTES`.
pub fn read_text(file: &Path) -> Result<String, SourceError> {
    let io = |error| SourceError::Io {
        file: file.to_path_buf(),
        error,
    };
    let meta = std::fs::metadata(file).map_err(io)?;
    if !meta.is_file() {
        return Err(SourceError::NotAFile {
            file: file.to_path_buf(),
        });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(SourceError::TooLarge {
            file: file.to_path_buf(),
            size: meta.len(),
            cap: MAX_FILE_BYTES,
        });
    }
    let bytes = std::fs::read(file).map_err(io)?;
    decode(bytes).ok_or_else(|| SourceError::NotText {
        file: file.to_path_buf(),
    })
}

/// Text as exports are saved: UTF-8, with or without a byte-order mark, or UTF-16 with one
/// (Windows PowerShell's `>` writes UTF-16LE). UTF-8 is taken in place: an export of 50 MB
/// is not copied.
fn decode(mut bytes: Vec<u8>) -> Option<String> {
    let utf16 = |rest: &[u8], unit: fn([u8; 2]) -> u16| {
        let units = rest
            .chunks(2)
            .map(|c| unit([c[0], *c.get(1).unwrap_or(&0)]));
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .ok()
    };
    match bytes.as_slice() {
        [0xff, 0xfe, rest @ ..] => utf16(rest, u16::from_le_bytes),
        [0xfe, 0xff, rest @ ..] => utf16(rest, u16::from_be_bytes),
        [0xef, 0xbb, 0xbf, ..] => {
            bytes.drain(..3);
            String::from_utf8(bytes).ok()
        }
        _ => String::from_utf8(bytes).ok(),
    }
}

/// Reads a source's text, strictly: a rule or group that does not read is an error. `file`
/// only names it in errors. Never panics, whatever the text.
pub fn parse(
    format: Format,
    file: &Path,
    text: &str,
    id: Option<&str>,
) -> Result<Inventory, SourceError> {
    let inventory = read(format, file, text, id)?;
    unreadable::check(Reading::Strict, file, &inventory)?;
    Ok(inventory)
}

/// Reads a source's text, with the rules and groups that do not read standing as rules that
/// may match anything (see `unreadable`). Never panics, whatever the text.
pub fn read(
    format: Format,
    file: &Path,
    text: &str,
    id: Option<&str>,
) -> Result<Inventory, SourceError> {
    if format == Format::Native {
        return native::parse(file, text);
    }
    let doc = Doc::parse(file, text)?;
    let root = doc.root();
    match format {
        Format::Tencent => tencent::import(&root, id),
        Format::QingCloud => qingcloud::import(&root, id),
        Format::Aws => aws::import(&root, id),
        Format::Alibaba => alibaba::import(&root, id),
        Format::OpenStack => openstack::import(&root, id),
        Format::Azure => azure::import(&root, id),
        Format::Native => unreachable!("handled above"),
    }
}

/// Adds an instance read from `file`; one that names several by a name is an error there.
fn add_instance(inv: &mut Inventory, file: &Path, instance: Instance) -> Result<(), SourceError> {
    inv.add_instance(instance)
        .map_err(|ambiguous| SourceError::AmbiguousInstance {
            file: file.to_path_buf(),
            ambiguous,
        })
}

/// The id for an export that does not carry its own.
fn group_id(root: &Node, id: Option<&str>, what: &str) -> Result<String, SourceError> {
    id.map(str::to_string).ok_or_else(|| SourceError::Field {
        file: root.file().to_path_buf(),
        path: root.path().to_string(),
        message: format!("{what} does not say which object it belongs to: give its id (`id = \"...\"` in the [[source]], or --id)"),
    })
}

/// An export none of whose known shapes matched is an error, not an empty inventory.
fn known_shape(root: &Node, recognised: bool, expected: &str) -> Result<(), SourceError> {
    if recognised {
        Ok(())
    } else {
        Err(root.error(expected))
    }
}

/// A service entry as templates spell it: `tcp:80`, `udp:53,54`, `tcp:1000-2000`, `icmp`, `ALL`.
fn service_entry(text: &str) -> Option<(Protocol, Ports)> {
    match text.split_once(':') {
        Some((protocol, ports)) => Some((Protocol::parse(protocol)?, Ports::parse(ports)?)),
        None => Some((Protocol::parse(text)?, Ports::All)),
    }
}

/// Gathers rules that an export lists flat, each naming its group, into groups. A rule's
/// index is its position among its group's rules of the same direction, as the export lists
/// them (counting rules that are then left out, so indexes match the cloud's console).
#[derive(Debug)]
struct FlatRules {
    cloud: Cloud,
    seen: BTreeMap<(String, Direction), usize>,
}

impl FlatRules {
    fn new(cloud: Cloud) -> Self {
        FlatRules {
            cloud,
            seen: BTreeMap::new(),
        }
    }

    fn next_index(&mut self, group: &str, direction: Direction) -> usize {
        let counter = self.seen.entry((group.to_string(), direction)).or_default();
        *counter += 1;
        *counter - 1
    }

    /// The group a flat rule names, created at its first rule.
    fn group<'i>(&self, inv: &'i mut Inventory, id: &str) -> &'i mut SecurityGroup {
        std::sync::Arc::make_mut(
            inv.groups
                .entry(id.into())
                .or_insert_with(|| SecurityGroup::new(id, self.cloud).into()),
        )
    }
}

/// Addresses as clouds list them: a string or an array of strings, each a CIDR, an address,
/// or a range `a-b`; lists may also be comma- or newline-separated in one string.
fn address_members(node: &Node) -> Result<Vec<IpNet>, SourceError> {
    let texts = match node.items() {
        Ok(items) => items
            .iter()
            .map(Node::text)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect(),
        Err(_) => node.text()?.into_iter().collect::<Vec<_>>(),
    };
    let mut members = Vec::new();
    for text in texts {
        for part in text
            .split([',', '\n', '\r', ';'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let nets = parse_net(part)
                .map(|n| vec![n])
                .or_else(|| address_range(part))
                .ok_or_else(|| node.error("addresses: CIDRs, addresses or ranges a-b"))?;
            members.extend(nets);
        }
    }
    Ok(members)
}

/// `10.0.0.1-10.0.0.9` as the CIDRs that cover exactly that range.
fn address_range(text: &str) -> Option<Vec<IpNet>> {
    let (a, b) = text.split_once('-')?;
    let (a, b): (IpAddr, IpAddr) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    let (bits, first, last) = match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (32, u128::from(u32::from(a)), u128::from(u32::from(b))),
        (IpAddr::V6(a), IpAddr::V6(b)) => (128, u128::from(a), u128::from(b)),
        _ => return None,
    };
    if first > last {
        return None;
    }
    let mut nets = Vec::new();
    let mut start = first;
    loop {
        // The largest aligned block starting at `start` that does not pass `last`.
        let mut size = if start == 0 {
            bits
        } else {
            start.trailing_zeros().min(bits)
        };
        while size > 0 && (size >= 128 || start + ((1u128 << size) - 1) > last) {
            size -= 1;
        }
        let addr = if bits == 32 {
            IpAddr::V4(u32::try_from(start).ok()?.into())
        } else {
            IpAddr::V6(start.into())
        };
        nets.push(IpNet::new(addr, u8::try_from(bits - size).ok()?).ok()?);
        match start.checked_add(1u128 << size) {
            Some(next) if next <= last => start = next,
            _ => return Some(nets),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Rule;

    #[test]
    fn exports_saved_with_a_byte_order_mark_or_as_utf16_read_as_text() {
        let text = "{\"a\": \"é\"}";
        assert_eq!(decode(text.as_bytes().to_vec()).as_deref(), Some(text));
        let bom = [&[0xef, 0xbb, 0xbf][..], text.as_bytes()].concat();
        assert_eq!(decode(bom).as_deref(), Some(text));
        let le: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(decode(le).as_deref(), Some(text));
        let be: Vec<u8> = [0xfe, 0xff]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        assert_eq!(decode(be).as_deref(), Some(text));
        assert_eq!(decode(vec![0xc3, 0x28]), None, "not UTF-8, no mark");
    }

    fn qingcloud_page(rules: &[(&str, u8, &str)]) -> String {
        let rules: Vec<String> = rules
            .iter()
            .map(|(id, direction, port)| {
                format!(
                    r#"{{"security_group_id": "sg-q", "security_group_rule_id": "{id}", "priority": 1, "direction": {direction}, "action": "accept", "protocol": "tcp", "val1": "{port}", "val3": ""}}"#
                )
            })
            .collect();
        format!(r#"{{"security_group_rule_set": [{}]}}"#, rules.join(","))
    }

    fn add(merged: &mut Merged, file: &str, text: &str) -> Result<(), SourceError> {
        let inv = parse(Format::QingCloud, Path::new(file), text, None).expect("valid page");
        merged.add(Path::new(file), inv)
    }

    #[test]
    fn pages_of_one_group_add_up_and_a_disagreement_names_both_files() {
        // QingCloud API, DescribeSecurityGroupRules: at most 100 rules per call (limit/offset),
        // and `direction` filters ingress or egress; exports of one group arrive in pages.
        let mut merged = Merged::default();
        add(
            &mut merged,
            "in-1.json",
            &qingcloud_page(&[("sgr-1", 0, "22"), ("sgr-2", 0, "80")]),
        )
        .expect("first page");
        add(
            &mut merged,
            "in-2.json",
            &qingcloud_page(&[("sgr-2", 0, "80"), ("sgr-3", 0, "443")]),
        )
        .expect("an overlapping page repeats a rule unchanged");
        add(
            &mut merged,
            "out.json",
            &qingcloud_page(&[("sgr-9", 1, "53")]),
        )
        .expect("egress");
        let group = &merged.inventory.groups["sg-q"];
        let ids = |rules: &[Rule]| -> Vec<String> {
            rules.iter().filter_map(|r| r.origin.id.clone()).collect()
        };
        assert_eq!(
            ids(&group.ingress),
            ["sgr-1", "sgr-2", "sgr-3"],
            "file order"
        );
        assert_eq!(ids(&group.egress), ["sgr-9"]);

        let error = add(
            &mut merged,
            "stale.json",
            &qingcloud_page(&[("sgr-1", 0, "2222")]),
        )
        .expect_err("the same rule id with other content")
        .to_string();
        assert!(error.starts_with("stale.json: "), "{error}");
        assert!(error.contains("inbound rule id sgr-1"), "{error}");
        assert!(error.contains("in-1.json"), "{error}");
    }

    #[test]
    fn ranges_become_exact_cidrs() {
        let nets = address_range("10.0.0.1-10.0.0.8").expect("valid range");
        let text: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/30", "10.0.0.8/32"]
        );
        let all = address_range("0.0.0.0-255.255.255.255").expect("valid range");
        assert_eq!(
            all.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["0.0.0.0/0"]
        );
        assert!(address_range("10.0.0.9-10.0.0.1").is_none());
        assert!(address_range("10.0.0.1-::1").is_none());
    }
}
