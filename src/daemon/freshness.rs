//! Keeping the agent's rules fresh without a signal: before each cycle, files that changed
//! (the config, file sources) and command sources whose `refresh` has passed trigger a load.
//! A load swaps the config in whole or not at all; a source that fails keeps its last good
//! output and is reported down.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::config::{Config, ConfigError, Fingerprint, Origin, Payload, SourceSpec};
use crate::sources::SourceError;

/// One source's health, as metrics show it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    pub up: bool,
    /// Unix time of the last fetch that loaded; 0 before any.
    pub last_success: f64,
    pub rules: usize,
    pub fetch_seconds: f64,
    /// For commands, how often they run; 0 for files (read when they change).
    pub refresh_seconds: f64,
    /// The parts of its last good export that could not be read: group, and what failed.
    pub unreadable: Vec<(String, crate::model::Unreadable)>,
}

#[derive(Debug, Default)]
pub struct Freshness {
    /// Fingerprints at the last load that succeeded: the config file, then each file source.
    files: Vec<(PathBuf, Option<Fingerprint>)>,
    /// Each periodic source's last good output (a command's text, an API's inventory), and
    /// when it was fetched.
    outputs: HashMap<String, (Arc<Payload>, Instant)>,
    pub health: BTreeMap<String, Health>,
    /// The next load fetches every source now, commands included, whatever their refresh.
    force: bool,
}

/// What one load did with each source.
#[derive(Debug, Default)]
pub struct Attempt {
    /// The files read (the config first), fingerprinted before each was read: a change
    /// while the load runs makes the next check see a change, and the file is read again.
    prints: Vec<(PathBuf, Option<Fingerprint>)>,
    /// Fetched now (not served from a command's last output).
    fresh: Vec<String>,
    /// Failed now; a command's last output stood in, if it had one.
    failed: Vec<String>,
    /// The source being read, and the file its errors name.
    current: Option<(String, PathBuf)>,
}

impl Attempt {
    /// A file's fingerprint from before the load read it; now, for a file it did not read.
    fn print_of(&self, path: &Path) -> Option<Fingerprint> {
        self.prints
            .iter()
            .find(|(seen, _)| seen == path)
            .map_or_else(|| Fingerprint::of(path), |(_, print)| *print)
    }

    /// An attempt at loading `config`, fingerprinted now, before it is read.
    pub fn new(config: &Path) -> Attempt {
        Attempt {
            prints: vec![(config.to_path_buf(), Fingerprint::of(config))],
            ..Attempt::default()
        }
    }
}

impl Freshness {
    /// Whether a load is due: the config or a file source changed, or a command is due.
    /// Makes the next load fetch every command now: drift about to be confirmed is judged
    /// against rules fetched after it was seen.
    pub fn force(&mut self) {
        self.force = true;
    }

    pub fn due(&self, config: &Config, now: Instant) -> bool {
        if self.force {
            return true;
        }
        let changed = self
            .files
            .iter()
            .any(|(path, seen)| Fingerprint::of(path) != *seen);
        let stale = config.sources.iter().any(|source| {
            source.origin.is_periodic()
                && self
                    .outputs
                    .get(&source.name)
                    .is_none_or(|(_, at)| now.duration_since(*at) >= source.refresh)
        });
        changed || stale
    }

    /// One source's text for a load: a file read now; a command run if due, else its last
    /// output; a failing command's last good output, if any.
    pub fn fetch(
        &mut self,
        source: &SourceSpec,
        now: Instant,
        attempt: &mut Attempt,
    ) -> Result<Payload, SourceError> {
        attempt.current = Some((source.name.clone(), source.file()));
        if let Origin::File(path) = &source.origin {
            attempt.prints.push((path.clone(), Fingerprint::of(path)));
        }
        let cached = self.outputs.get(&source.name);
        if let (true, Some((payload, at))) = (source.origin.is_periodic(), cached)
            && !self.force
            && now.duration_since(*at) < source.refresh
        {
            return Ok(Payload::clone(payload));
        }
        match source.fetch() {
            Ok(payload) => {
                attempt.fresh.push(source.name.clone());
                if source.origin.is_periodic() {
                    self.outputs
                        .insert(source.name.clone(), (Arc::new(payload.clone()), now));
                }
                Ok(payload)
            }
            Err(error) => {
                attempt.failed.push(source.name.clone());
                // Tried again after `refresh`, not every cycle: a throttled API gets its rest.
                match self.outputs.get_mut(&source.name) {
                    Some((payload, at)) => {
                        *at = now;
                        // Quoted and escaped (Debug): an API's message or a command's stderr must not
                        // forge a line of the log.
                        tracing::warn!(source = %source.name, error = ?error.to_string(), "source fetch failed; its last good output stands");
                        Ok(Payload::clone(payload))
                    }
                    None => Err(error),
                }
            }
        }
    }

    /// After a load: on success the files' fingerprints and the sources' health are
    /// recorded; on failure the source being read is down (a failure after every source
    /// was read is the config's, and leaves the sources as they were), and the files as
    /// they are now are remembered, so a broken file is tried again when it changes, not
    /// every cycle.
    pub fn settle(
        &mut self,
        config_path: &Path,
        result: &Result<Config, ConfigError>,
        attempt: Attempt,
        unix_now: f64,
    ) {
        self.force = false;
        for name in &attempt.failed {
            self.health.entry(name.clone()).or_default().up = false;
        }
        let config = match result {
            Ok(config) => config,
            Err(error) => {
                // Blamed on a source only if the error is about it (not, say, a group no
                // source defines).
                let blamed = match (error, &attempt.current) {
                    (ConfigError::Source(e), Some((name, file))) if e.file() == file => {
                        Some(name.clone())
                    }
                    _ => None,
                };
                if let Some(name) = blamed {
                    self.health.entry(name).or_default().up = false;
                }
                if self.files.is_empty() {
                    self.files.push((config_path.to_path_buf(), None));
                }
                for (path, print) in &mut self.files {
                    *print = attempt.print_of(path);
                }
                return;
            }
        };
        // As they were before they were read: what changed since is read at the next check.
        self.files = std::iter::once(config_path.to_path_buf())
            .chain(config.sources.iter().filter_map(|s| match &s.origin {
                Origin::File(path) => Some(path.clone()),
                _ => None,
            }))
            .map(|path| {
                let print = attempt.print_of(&path);
                (path, print)
            })
            .collect();
        let names: Vec<&String> = config.sources.iter().map(|s| &s.name).collect();
        self.health.retain(|name, _| names.contains(&name));
        self.outputs.retain(|name, _| names.contains(&name));
        for (source, fetched) in config.sources.iter().zip(&config.fetched) {
            let health = self.health.entry(source.name.clone()).or_default();
            health.refresh_seconds = if source.origin.is_periodic() {
                source.refresh.as_secs_f64()
            } else {
                0.0
            };
            if attempt.fresh.contains(&source.name) {
                for (group, part) in &fetched.unreadable {
                    tracing::warn!(
                        source = %source.name,
                        group = ?group,
                        field = ?part.field,
                        reason = ?part.reason,
                        "part of the export cannot be read: the rest is checked, flows that depend on this part are unknown"
                    );
                }
                *health = Health {
                    up: true,
                    last_success: unix_now,
                    rules: fetched.rules,
                    fetch_seconds: fetched.seconds,
                    refresh_seconds: health.refresh_seconds,
                    unreadable: fetched.unreadable.clone(),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const GROUP: &str = r#"{"SecurityGroups": [{"GroupId": "sg-1", "IpPermissions": [RULES], "IpPermissionsEgress": []}]}"#;
    const RULE: &str = r#"{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}"#;

    fn group(rules: usize) -> String {
        GROUP.replace("RULES", &vec![RULE; rules].join(","))
    }

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).expect("write");
    }

    /// A config in `dir` whose one source, `sgs`, is the file `sg.json` with one rule.
    fn one_file_source(dir: &Path) -> PathBuf {
        write(dir, "sg.json", &group(1));
        write(
            dir,
            "sgprobe.toml",
            "[[source]]\nname = \"sgs\"\nformat = \"aws\"\npath = \"sg.json\"\n[[instance]]\nname = \"web\"\naddresses = [\"10.0.0.5\"]\nsecurity_groups = [\"sg-1\"]\n",
        );
        dir.join("sgprobe.toml")
    }

    /// One load as the agent does it; the config, if it loaded.
    fn load(freshness: &mut Freshness, config: &Path, now: Instant) -> Option<Config> {
        let mut attempt = Attempt::new(config);
        let result = Config::load_for_agent(config, &mut |s| freshness.fetch(s, now, &mut attempt));
        freshness.settle(config, &result, attempt, 1000.0);
        result.ok()
    }

    #[test]
    fn a_changed_file_is_due_and_a_broken_one_keeps_the_old_rules_with_up_0() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = one_file_source(dir.path());
        let mut freshness = Freshness::default();
        let now = Instant::now();
        let config = load(&mut freshness, &config_path, now).expect("loads");
        assert_eq!(freshness.health["sgs"].rules, 1);
        assert!(freshness.health["sgs"].up);
        assert!(!freshness.due(&config, now), "nothing changed");

        write(dir.path(), "sg.json", &group(3));
        assert!(freshness.due(&config, now), "the file changed");
        let config = load(&mut freshness, &config_path, now).expect("loads");
        assert_eq!(config.inventory.groups["sg-1"].ingress.len(), 3);
        assert_eq!(freshness.health["sgs"].rules, 3);

        // A config-level failure (a group no source defines) is not the source's.
        let good = std::fs::read_to_string(&config_path).expect("read");
        write(
            dir.path(),
            "sgprobe.toml",
            &format!(
                "{good}[[instance]]\nname = \"db\"\naddresses = [\"10.0.0.6\"]\nsecurity_groups = [\"sg-gone\"]\n"
            ),
        );
        assert!(load(&mut freshness, &config_path, now).is_none());
        assert!(freshness.health["sgs"].up, "the source read fine");
        write(dir.path(), "sgprobe.toml", &good);
        let config = load(&mut freshness, &config_path, now).expect("loads");

        write(dir.path(), "sg.json", "{\"SecurityGroups\": [");
        assert!(freshness.due(&config, now));
        assert!(load(&mut freshness, &config_path, now).is_none(), "broken");
        assert!(!freshness.health["sgs"].up, "the broken source is down");
        assert_eq!(
            freshness.health["sgs"].rules, 3,
            "its last good count stands"
        );
    }

    #[test]
    fn a_file_changed_while_it_loads_or_whose_permissions_change_is_read_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = one_file_source(dir.path());
        let mut freshness = Freshness::default();
        let now = Instant::now();
        // The export is rewritten just after the load read it, before the load ends.
        let mut attempt = Attempt::new(&config_path);
        let result = Config::load_for_agent(&config_path, &mut |s| {
            let text = freshness.fetch(s, now, &mut attempt);
            std::thread::sleep(Duration::from_millis(20));
            write(dir.path(), "sg.json", &group(2));
            text
        });
        freshness.settle(&config_path, &result, attempt, 1000.0);
        let config = result.expect("loads");
        assert_eq!(freshness.health["sgs"].rules, 1, "what was read");
        assert!(freshness.due(&config, now), "the newer file is due");
        let config = load(&mut freshness, &config_path, now).expect("loads");
        assert_eq!(freshness.health["sgs"].rules, 2);
        assert!(!freshness.due(&config, now));

        // Permissions alone: a file made readable again is read again.
        use std::os::unix::fs::PermissionsExt;
        let file = dir.path().join("sg.json");
        std::thread::sleep(Duration::from_millis(20));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(freshness.due(&config, now), "a chmod is seen");
    }

    #[test]
    fn a_command_runs_when_due_and_a_failing_one_serves_its_last_output() {
        let dir = tempfile::tempdir().expect("temp dir");
        write(dir.path(), "out.json", &group(2));
        let script = dir.path().join("export.sh");
        write(
            dir.path(),
            "export.sh",
            &format!("cat {}", dir.path().join("out.json").display()),
        );
        write(
            dir.path(),
            "sgprobe.toml",
            &format!(
                "[[source]]\nname = \"cli\"\nformat = \"aws\"\ncommand = [\"sh\", \"{}\"]\nrefresh = \"1m\"\n[[instance]]\nname = \"web\"\naddresses = [\"10.0.0.5\"]\nsecurity_groups = [\"sg-1\"]\n",
                script.display()
            ),
        );
        let config_path = dir.path().join("sgprobe.toml");
        let mut freshness = Freshness::default();
        let start = Instant::now();
        let config = load(&mut freshness, &config_path, start).expect("loads");
        assert_eq!(freshness.health["cli"].rules, 2);
        assert_eq!(freshness.health["cli"].refresh_seconds, 60.0);
        assert!(!freshness.due(&config, start + Duration::from_secs(30)));
        let later = start + Duration::from_secs(61);
        assert!(freshness.due(&config, later), "refresh passed");

        // The cloud's CLI fails (expired credentials): the last output stands, the source is down.
        write(dir.path(), "export.sh", "echo 'ExpiredToken' >&2; exit 255");
        let config = load(&mut freshness, &config_path, later).expect("the last output stands");
        assert_eq!(config.inventory.groups["sg-1"].ingress.len(), 2);
        assert!(!freshness.health["cli"].up);

        write(dir.path(), "out.json", &group(4));
        write(
            dir.path(),
            "export.sh",
            &format!("cat {}", dir.path().join("out.json").display()),
        );
        let even_later = later + Duration::from_secs(61);
        let config = load(&mut freshness, &config_path, even_later).expect("loads");
        assert_eq!(config.inventory.groups["sg-1"].ingress.len(), 4);
        assert!(freshness.health["cli"].up, "recovered");
    }
}
