//! The agent's rules, kept fresh without a signal. One refresher owns, for each source, its
//! last good inventory, its health and when it is next due: a file when it changes, a
//! command or an API every `refresh`. A load reads the config (fetching nothing), fetches
//! the sources that are due, and assembles the config's own inventory with every source's
//! last good one; the caller swaps the result in whole. A source that fails keeps its last
//! good inventory and is reported down.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Config, ConfigError, Fingerprint, Origin, SourceSpec};
use crate::model::Inventory;
use crate::sources::{Reading, SourceError};

/// One source's health, as metrics show it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    pub up: bool,
    /// Unix time of the last fetch that loaded; 0 before any.
    pub last_success: f64,
    pub rules: usize,
    pub fetch_seconds: f64,
    /// For commands and APIs, how often they run; 0 for files (read when they change).
    pub refresh_seconds: f64,
    /// The parts of its last good export that could not be read: group, and what failed.
    pub unreadable: Vec<(String, crate::model::Unreadable)>,
    /// Why its last fetch failed (`SourceError::reason`), while it is down.
    pub failure: Option<&'static str>,
}

/// One source as the refresher holds it.
#[derive(Debug)]
struct Held {
    /// What it was fetched as: a source whose spec changes starts again.
    spec: SourceSpec,
    /// The last good fetch, as the source gave it (before `[[discover]]` filters it).
    inventory: Option<Arc<Inventory>>,
    /// A file's fingerprint from just before it was last read: a change while it is read
    /// makes it due again.
    print: Option<Fingerprint>,
    /// When it was last fetched, well or not: a periodic source is due `refresh` later, so
    /// a throttled API gets its rest.
    fetched_at: Option<Instant>,
    health: Health,
}

impl Held {
    fn new(spec: &SourceSpec) -> Held {
        Held {
            spec: spec.clone(),
            inventory: None,
            print: None,
            fetched_at: None,
            health: Health {
                refresh_seconds: if spec.origin.is_periodic() {
                    spec.refresh.as_secs_f64()
                } else {
                    0.0
                },
                ..Health::default()
            },
        }
    }

    /// Whether it should be fetched again: a file that changed, a command or API whose
    /// `refresh` has passed.
    fn due(&self, now: Instant) -> bool {
        match &self.spec.origin {
            Origin::File(path) => Fingerprint::of(path) != self.print,
            _ => self
                .fetched_at
                .is_none_or(|at| now.duration_since(at) >= self.spec.refresh),
        }
    }

    /// Fetches it now. A failure keeps the last good inventory; the error is returned only
    /// where there is none to stand in.
    fn fetch(&mut self, now: Instant, unix_now: f64) -> Result<(), SourceError> {
        let name = &self.spec.name;
        if let Origin::File(path) = &self.spec.origin {
            self.print = Fingerprint::of(path);
        }
        self.fetched_at = Some(now);
        // A large export's read and parse come on top of the rules held meanwhile: the pages
        // freed since the last load go back first, so the peak is the two sets of rules and
        // the text, not those and the heap's leftovers.
        super::memory::release_freed();
        let started = Instant::now();
        match self.spec.fetch() {
            Ok(inventory) => {
                let unreadable: Vec<_> = crate::sources::unreadable::report(&inventory)
                    .into_iter()
                    .map(|(group, part)| (group.to_string(), part.clone()))
                    .collect();
                for (group, part) in &unreadable {
                    tracing::warn!(
                        source = %name,
                        group = ?group,
                        field = ?part.field,
                        reason = ?part.reason,
                        "part of the export cannot be read: the rest is checked, flows that depend on this part are unknown"
                    );
                }
                self.health = Health {
                    up: true,
                    last_success: unix_now,
                    rules: inventory
                        .groups
                        .values()
                        .map(|g| g.ingress.len() + g.egress.len())
                        .sum(),
                    fetch_seconds: started.elapsed().as_secs_f64(),
                    refresh_seconds: self.health.refresh_seconds,
                    unreadable,
                    failure: None,
                };
                self.inventory = Some(Arc::new(inventory));
                Ok(())
            }
            Err(error) => {
                self.health.up = false;
                self.health.failure = Some(error.reason());
                if self.inventory.is_none() {
                    return Err(error);
                }
                // Quoted and escaped (Debug): an API's message or a command's stderr must not
                // forge a line of the log.
                tracing::warn!(source = %name, error = ?error.to_string(), "source fetch failed; its last good rules stand");
                Ok(())
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct Refresher {
    /// The config file, and its fingerprint from just before it was last read (well or
    /// not: a broken config is read again when it changes, not every cycle).
    config: Option<(PathBuf, Option<Fingerprint>)>,
    /// The sources of the last config read, by name.
    held: BTreeMap<String, Held>,
    /// The next load fetches every source now, whatever its refresh.
    force: bool,
}

impl Refresher {
    /// Makes the next load fetch every source now: drift about to be confirmed is judged
    /// against rules fetched after it was seen.
    pub fn force(&mut self) {
        self.force = true;
    }

    /// Whether a load is due: the config or a file source changed, or a command or an API
    /// is due, or a fetch of every source was asked for.
    pub fn due(&self, now: Instant) -> bool {
        self.force
            || self
                .config
                .as_ref()
                .is_some_and(|(path, print)| Fingerprint::of(path) != *print)
            || self.held.values().any(|held| held.due(now))
    }

    /// Each source's health, by name.
    pub fn health(&self) -> impl Iterator<Item = (&str, &Health)> + Clone {
        self.held
            .iter()
            .map(|(name, held)| (name.as_str(), &held.health))
    }

    /// Reads the config at `path`, fetches the sources that are due (and any with no last
    /// good inventory yet), and assembles a config an agent can run. `step` hears each
    /// fetch's bound before it starts and `ZERO` when it ends, for the watchdog.
    pub fn load(
        &mut self,
        path: &Path,
        now: Instant,
        unix_now: f64,
        step: &dyn Fn(Duration),
    ) -> Result<Config, ConfigError> {
        let force = std::mem::take(&mut self.force);
        self.config = Some((path.to_path_buf(), Fingerprint::of(path)));
        let draft = Config::read(path)?;
        let mut fetched = Vec::with_capacity(draft.sources.len());
        for spec in &draft.sources {
            let held = self
                .held
                .entry(spec.name.clone())
                .or_insert_with(|| Held::new(spec));
            if !held.spec.fetches_as(spec) {
                // Other rules under the same name: nothing held stands for them.
                *held = Held::new(spec);
            } else if held.spec != *spec {
                // A new refresh or timeout: the rules held are still these.
                held.spec = spec.clone();
                held.health.refresh_seconds = Held::new(spec).health.refresh_seconds;
            }
            // A source that is down is tried at every load, not only when due: a reload after
            // its credentials or file are mended takes it up at once.
            if force || !held.health.up || held.due(now) {
                step(spec.fetch_bound());
                let result = held.fetch(now, unix_now);
                step(Duration::ZERO);
                result?;
            }
            fetched.push(
                held.inventory
                    .clone()
                    .expect("fetched, or held from before"),
            );
        }
        let config = draft.assemble(Reading::KeepGoing, &fetched)?.runnable()?;
        // Only once it loaded: a load that fails leaves the running config's sources watched
        // and shown.
        self.held
            .retain(|name, _| config.sources.iter().any(|s| &s.name == name));
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
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
    fn load(refresher: &mut Refresher, config: &Path, now: Instant) -> Option<Config> {
        refresher.load(config, now, 1000.0, &|_| {}).ok()
    }

    /// A load's `step` that counts the fetches it hears of.
    fn counting(fetches: &std::cell::Cell<usize>) -> impl Fn(Duration) + '_ {
        move |bound| {
            if !bound.is_zero() {
                fetches.set(fetches.get() + 1);
            }
        }
    }

    fn health<'a>(refresher: &'a Refresher, name: &str) -> &'a Health {
        refresher
            .health()
            .find(|(n, _)| *n == name)
            .map(|(_, h)| h)
            .expect("a source of that name")
    }

    #[test]
    fn a_changed_file_is_due_and_a_broken_one_keeps_its_last_good_rules_with_up_0() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = one_file_source(dir.path());
        let mut refresher = Refresher::default();
        let now = Instant::now();
        load(&mut refresher, &config_path, now).expect("loads");
        assert_eq!(health(&refresher, "sgs").rules, 1);
        assert!(health(&refresher, "sgs").up);
        assert!(!refresher.due(now), "nothing changed");

        write(dir.path(), "sg.json", &group(3));
        assert!(refresher.due(now), "the file changed");
        let config = load(&mut refresher, &config_path, now).expect("loads");
        assert_eq!(config.inventory.groups["sg-1"].ingress.len(), 3);
        assert_eq!(health(&refresher, "sgs").rules, 3);

        // A config-level failure (a group no source defines) is not the source's.
        let good = std::fs::read_to_string(&config_path).expect("read");
        write(
            dir.path(),
            "sgprobe.toml",
            &format!(
                "{good}[[instance]]\nname = \"db\"\naddresses = [\"10.0.0.6\"]\nsecurity_groups = [\"sg-gone\"]\n"
            ),
        );
        assert!(refresher.due(now), "the config changed");
        // Fetched in that load too (forced, as before a confirmation), and read fine.
        refresher.force();
        write(dir.path(), "sg.json", &group(2));
        assert!(load(&mut refresher, &config_path, now).is_none());
        assert!(health(&refresher, "sgs").up, "the source read fine");
        assert_eq!(health(&refresher, "sgs").rules, 2, "and was fetched");
        assert!(
            !refresher.due(now),
            "a broken config is read again when it changes"
        );
        write(dir.path(), "sgprobe.toml", &good);
        load(&mut refresher, &config_path, now).expect("loads");

        write(dir.path(), "sg.json", "{\"SecurityGroups\": [");
        assert!(refresher.due(now));
        let config = load(&mut refresher, &config_path, now).expect("its last good rules stand");
        assert_eq!(config.inventory.groups["sg-1"].ingress.len(), 2);
        assert!(!health(&refresher, "sgs").up, "the broken source is down");
        assert_eq!(health(&refresher, "sgs").failure, Some("malformed"));
        assert_eq!(
            health(&refresher, "sgs").rules,
            2,
            "its last good count stands"
        );
        assert!(
            !refresher.due(now),
            "a broken file is read again when it changes"
        );

        // Another failure says so; mended, none is left.
        std::fs::remove_file(dir.path().join("sg.json")).expect("remove");
        load(&mut refresher, &config_path, now).expect("its last good rules stand");
        assert_eq!(health(&refresher, "sgs").failure, Some("io"));
        write(dir.path(), "sg.json", &group(1));
        load(&mut refresher, &config_path, now).expect("loads");
        assert_eq!(
            (
                health(&refresher, "sgs").up,
                health(&refresher, "sgs").failure
            ),
            (true, None)
        );
    }

    #[test]
    fn a_source_that_never_loaded_fails_the_load_and_one_the_config_drops_goes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = one_file_source(dir.path());
        let mut refresher = Refresher::default();
        let now = Instant::now();
        write(dir.path(), "sg.json", "{\"SecurityGroups\": [");
        let error = refresher
            .load(&config_path, now, 1000.0, &|_| {})
            .expect_err("nothing stands in for it");
        assert!(error.to_string().contains("sg.json"), "{error}");
        assert!(!health(&refresher, "sgs").up);

        // Renamed: the old name's health goes with it.
        let text = std::fs::read_to_string(&config_path).expect("read");
        write(dir.path(), "sg.json", &group(2));
        write(
            dir.path(),
            "sgprobe.toml",
            &text.replace("\"sgs\"", "\"export\""),
        );
        load(&mut refresher, &config_path, now).expect("loads");
        let names: Vec<&str> = refresher.health().map(|(n, _)| n).collect();
        assert_eq!(names, ["export"]);
    }

    #[test]
    fn the_config_is_assembled_from_the_sources_last_good_rules_without_reading_them_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = one_file_source(dir.path());
        let mut refresher = Refresher::default();
        let now = Instant::now();
        let first = load(&mut refresher, &config_path, now).expect("loads");
        // The config alone changes: the source is not fetched, its rules are the same ones.
        let text = std::fs::read_to_string(&config_path).expect("read");
        write(
            dir.path(),
            "sgprobe.toml",
            &text.replace("10.0.0.5", "10.0.0.7"),
        );
        let fetches = std::cell::Cell::new(0);
        let second = refresher
            .load(&config_path, now, 1000.0, &counting(&fetches))
            .expect("loads");
        assert_eq!(fetches.get(), 0, "nothing was due");
        assert!(Arc::ptr_eq(
            &first.inventory.groups["sg-1"],
            &second.inventory.groups["sg-1"]
        ));
        assert_eq!(
            second.inventory.instances[0].addresses[0].to_string(),
            "10.0.0.7"
        );

        // Forced (drift about to be confirmed): every source is fetched again.
        refresher.force();
        assert!(refresher.due(now));
        let third = refresher
            .load(&config_path, now, 1000.0, &counting(&fetches))
            .expect("loads");
        assert_eq!(fetches.get(), 1);
        assert!(!Arc::ptr_eq(
            &second.inventory.groups["sg-1"],
            &third.inventory.groups["sg-1"]
        ));
    }

    #[test]
    fn a_new_timeout_keeps_the_rules_held_and_a_failed_load_keeps_the_running_sources() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = one_file_source(dir.path());
        let mut refresher = Refresher::default();
        let now = Instant::now();
        let first = load(&mut refresher, &config_path, now).expect("loads");
        let text = std::fs::read_to_string(&config_path).expect("read");
        let fetches = std::cell::Cell::new(0);
        let count = counting(&fetches);
        write(
            dir.path(),
            "sgprobe.toml",
            &text.replace("path = ", "timeout = \"30s\"\npath = "),
        );
        let second = refresher
            .load(&config_path, now, 1000.0, &count)
            .expect("loads");
        assert_eq!(fetches.get(), 0, "the same rules: nothing to fetch");
        assert!(Arc::ptr_eq(
            &first.inventory.groups["sg-1"],
            &second.inventory.groups["sg-1"]
        ));
        // Renamed, in a config that does not load: the running config's source stays shown.
        write(
            dir.path(),
            "sgprobe.toml",
            &format!(
                "{}[[instance]]\nname = \"db\"\naddresses = [\"10.0.0.6\"]\nsecurity_groups = [\"sg-gone\"]\n",
                text.replace("\"sgs\"", "\"export\"")
            ),
        );
        assert!(load(&mut refresher, &config_path, now).is_none());
        assert!(refresher.health().any(|(name, _)| name == "sgs"));
    }

    #[test]
    fn a_file_changed_while_it_loads_or_whose_permissions_change_is_read_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = one_file_source(dir.path());
        let mut refresher = Refresher::default();
        let now = Instant::now();
        // The export is rewritten just after the load read it, before the load ends.
        refresher
            .load(&config_path, now, 1000.0, &|bound| {
                if bound.is_zero() {
                    std::thread::sleep(Duration::from_millis(20));
                    write(dir.path(), "sg.json", &group(2));
                }
            })
            .expect("loads");
        assert_eq!(health(&refresher, "sgs").rules, 1, "what was read");
        assert!(refresher.due(now), "the newer file is due");
        load(&mut refresher, &config_path, now).expect("loads");
        assert_eq!(health(&refresher, "sgs").rules, 2);
        assert!(!refresher.due(now));

        // Permissions alone: a file made readable again is read again.
        use std::os::unix::fs::PermissionsExt;
        let file = dir.path().join("sg.json");
        std::thread::sleep(Duration::from_millis(20));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(refresher.due(now), "a chmod is seen");
    }

    #[test]
    fn a_command_runs_when_due_and_a_failing_one_keeps_its_last_good_rules() {
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
        let mut refresher = Refresher::default();
        let start = Instant::now();
        load(&mut refresher, &config_path, start).expect("loads");
        assert_eq!(health(&refresher, "cli").rules, 2);
        assert_eq!(health(&refresher, "cli").refresh_seconds, 60.0);
        assert!(!refresher.due(start + Duration::from_secs(30)));
        let later = start + Duration::from_secs(61);
        assert!(refresher.due(later), "refresh passed");

        // The cloud's CLI fails (expired credentials): the last rules stand, the source is
        // down, and it is tried again after its refresh, not every cycle.
        write(dir.path(), "export.sh", "echo 'ExpiredToken' >&2; exit 255");
        let config = load(&mut refresher, &config_path, later).expect("the last rules stand");
        assert_eq!(config.inventory.groups["sg-1"].ingress.len(), 2);
        assert!(!health(&refresher, "cli").up);
        assert!(!refresher.due(later + Duration::from_secs(30)));

        write(dir.path(), "out.json", &group(4));
        write(
            dir.path(),
            "export.sh",
            &format!("cat {}", dir.path().join("out.json").display()),
        );
        let even_later = later + Duration::from_secs(61);
        assert!(refresher.due(even_later));
        let config = load(&mut refresher, &config_path, even_later).expect("loads");
        assert_eq!(config.inventory.groups["sg-1"].ingress.len(), 4);
        assert!(health(&refresher, "cli").up, "recovered");
    }
}
