//! The daemon: a scheduler around the same plan/evaluate/probe/compare functions the CLI
//! uses, with Prometheus metrics and a control socket.

mod control;
pub mod cycle;
mod listen;
mod memory;
pub(crate) mod metrics;
mod progress;
mod refresh;
mod tasks;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Serialize;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Semaphore;

use crate::config::{Agent, Config};
use crate::drift::{Drift, Tracker};
use crate::engine::{Counters, Pacer, Settings};
use crate::model::PortState;
use cycle::{FlowKey, FlowResult, Selection, check};
use metrics::Metrics;

/// The daemon's state, shared by the scheduler, the metrics server and the control socket.
#[derive(Debug)]
pub struct Shared {
    config_path: PathBuf,
    config: Mutex<Arc<Config>>,
    metrics: Mutex<Metrics>,
    /// Keyed by `flow_id`.
    tracker: Mutex<Tracker<u64>>,
    /// Keys a flow's digest with this process's own random keys: instance names come from
    /// tenants, and a digest anyone can compute could be made to collide, so that two flows
    /// share one streak.
    flow_ids: std::hash::RandomState,
    /// The last cycle's flows with their confirmed drift: those with series of their own
    /// (`Metrics::shows`), which are all that /metrics and /v1/drift read.
    latest: Mutex<Vec<FlowResult>>,
    status: Mutex<Status>,
    /// On-demand checks at once: more are refused, not queued.
    checks: Semaphore,
    /// The one pacer of every probe the agent sends, cycles and checks alike: `rate` is a
    /// ceiling for all of them together.
    pacer: Pacer,
    /// Packets sent and answered by every run: the cycle's sign of life.
    activity: Arc<Counters>,
    /// When the running cycle began; `None` between cycles.
    cycle_started: Mutex<Option<tokio::time::Instant>>,
    /// Each source's last good inventory, health and due time.
    refresher: Mutex<refresh::Refresher>,
    /// A reload is running; one more is asked for after it. However many are asked for
    /// meanwhile (signals, the socket, changed sources), one follows.
    reloading: std::sync::atomic::AtomicBool,
    reload_pending: std::sync::atomic::AtomicBool,
    /// The last /metrics text and when it was rendered: scrapes within `RENDER_REUSE` of it
    /// share it, and one renders at a time (`rendering`), off the async workers.
    rendered: Mutex<Option<Rendered>>,
    rendering: tokio::sync::Mutex<()>,
    /// The running load's step (reading and parsing, or a source's fetch): when it began
    /// and what its bound allows it beyond `progress::LOAD_SLACK`.
    load_started: Mutex<Option<(tokio::time::Instant, Duration)>>,
    /// The next load fetches every source now, commands included, whatever their refresh.
    fetch_all: std::sync::atomic::AtomicBool,
    /// The watchdog found the cycle or a load stuck: `/-/healthy` fails while it is.
    stalled: std::sync::atomic::AtomicBool,
    /// Cancelled when the agent stops: every task ends at its next wait.
    stop: tokio_util::sync::CancellationToken,
}

/// One rendering of /metrics, and its gzip form once a scraper has asked for it.
#[derive(Debug)]
struct Rendered {
    at: std::time::Instant,
    text: axum::body::Bytes,
    gzip: Option<axum::body::Bytes>,
}

/// `text` gzipped, as Prometheus asks for with `Accept-Encoding: gzip`: a tenth of the bytes
/// for a large flow table.
fn gzipped(text: &[u8]) -> Option<axum::body::Bytes> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(text).ok()?;
    encoder.finish().ok().map(axum::body::Bytes::from)
}

/// The wait between looks at a flow whose drift is new: long enough that a blip (a burst of
/// loss, a reboot, a rule still reaching the hosts) is over by the next look, short enough
/// that drift pages within seconds of the cycle that saw it.
const CONFIRM_GAP: Duration = Duration::from_secs(5);
/// What a reload may take beyond its fetches' bounds: reading and assembling the config.
const RELOAD_SLACK: Duration = Duration::from_secs(10);

/// How long a rendered /metrics serves further scrapes: a crowd of scrapers costs one render
/// a second and one copy of the text, not one each.
const RENDER_REUSE: Duration = Duration::from_secs(1);

/// What a request for a reload came to.
#[derive(Debug)]
pub enum Reload {
    Done(Result<(), String>),
    /// Another was running: one more follows it.
    Queued,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub config: PathBuf,
    pub instances: usize,
    /// This agent's share: `I/N`.
    pub shard: String,
    pub cycles: u64,
    pub last_cycle_unix: Option<f64>,
    pub cycle_seconds: Option<f64>,
    pub flows: usize,
    pub drifting: usize,
    pub raw_sockets: bool,
    pub reload_ok: bool,
    pub reload_error: Option<String>,
}

/// Waits until `reloading` is clear, at most `bound`; whether it cleared.
async fn reload_ends_within(reloading: &std::sync::atomic::AtomicBool, bound: Duration) -> bool {
    let cleared = async {
        while reloading.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(bound, cleared).await.is_ok()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub fn settings(agent: &Agent) -> Settings {
    Settings {
        rate: agent.rate,
        timeout: agent.timeout,
        retries: agent.retries,
        force_connect: false,
    }
}

impl Shared {
    /// What the drift tracker keys a flow by: 8 bytes instead of the key's 72 (and two
    /// reference counts), for every planned flow. Two of 100,000 flows share a digest with a
    /// chance of about 1 in 3,700,000,000.
    fn flow_id(&self, key: &FlowKey) -> u64 {
        use std::hash::BuildHasher;
        self.flow_ids.hash_one(key)
    }

    fn config(&self) -> Arc<Config> {
        lock(&self.config).clone()
    }

    /// Loads the config file again. It cannot half-apply: the new config replaces the old only
    /// once it has loaded and validated whole; otherwise the old one keeps running.
    /// `reload` on a blocking thread: reading and parsing a large config must not stall
    /// /metrics, the socket or signals.
    pub async fn reload_off_thread(self: Arc<Self>) -> Reload {
        let shared = self.clone();
        // All of it on the blocking thread, the flag's release included: a caller that stops
        // waiting (a client gone, a connection's lifetime over) cannot leave it set.
        tokio::task::spawn_blocking(move || shared.coalesced_reload())
            .await
            .unwrap_or_else(|e| Reload::Done(Err(format!("the reload task failed: {e}"))))
    }

    /// Asked for first, then run if no one is running: whoever runs reloads until no request
    /// is pending, and checks again once it has stopped, so none is lost.
    fn coalesced_reload(&self) -> Reload {
        use std::sync::atomic::Ordering::SeqCst;
        self.reload_pending.store(true, SeqCst);
        let mut last = None;
        loop {
            if self.reloading.swap(true, SeqCst) {
                return last.map_or(Reload::Queued, Reload::Done);
            }
            let mut result = Ok(());
            {
                // Released however the reloads end, a panic included.
                struct Release<'a>(&'a std::sync::atomic::AtomicBool);
                impl Drop for Release<'_> {
                    fn drop(&mut self) {
                        self.0.store(false, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                let _release = Release(&self.reloading);
                while self.reload_pending.swap(false, SeqCst) {
                    result = self.reload();
                    memory::release_freed();
                }
            }
            if !self.reload_pending.load(SeqCst) {
                return Reload::Done(result);
            }
            last = Some(result);
        }
    }

    /// The /metrics text (gzipped if `gzip`): the last rendering if it is fresh, else a new
    /// one, rendered on a blocking thread (the flow table first, then the registry: the cycle
    /// never holds both), and compressed there once for every scraper that asks.
    async fn metrics_text(self: &Arc<Self>, gzip: bool) -> Option<axum::body::Bytes> {
        let _one = self.rendering.lock().await;
        let shared = self.clone();
        // Checked and stored on the blocking thread: a scrape that goes away mid-render
        // still leaves its rendering for the next.
        tokio::task::spawn_blocking(move || {
            let mut rendered = lock(&shared.rendered);
            let fresh = rendered
                .as_ref()
                .is_some_and(|r| r.at.elapsed() < RENDER_REUSE);
            if !fresh {
                let text = {
                    let flows = lock(&shared.latest);
                    axum::body::Bytes::from(lock(&shared.metrics).render(&flows))
                };
                *rendered = Some(Rendered {
                    at: std::time::Instant::now(),
                    text,
                    gzip: None,
                });
            }
            let current = rendered.as_mut()?;
            if !gzip {
                return Some(current.text.clone());
            }
            if current.gzip.is_none() {
                current.gzip = gzipped(&current.text);
            }
            current.gzip.clone()
        })
        .await
        .ok()
        .flatten()
    }

    /// Whether a source changed or a command is due: then a load runs before the cycle. A
    /// load under way is as good as one due (and holds the sources' state meanwhile).
    fn sources_due(&self) -> bool {
        // Under the lock: a load takes the state out under it, after `reloading` is set, so a
        // state seen here while no load runs is the real one.
        let refresher = lock(&self.refresher);
        if self.reloading.load(std::sync::atomic::Ordering::SeqCst) {
            return false;
        }
        refresher.due(std::time::Instant::now())
    }

    /// Loads the config, with the sources that are due fetched again.
    fn load(&self) -> Result<Config, crate::config::ConfigError> {
        // Each step is judged by its own bound, from the config being loaded: reading the
        // config and parsing have the slack alone, a fetch its source's bound as well.
        let step = |bound| *lock(&self.load_started) = Some((tokio::time::Instant::now(), bound));
        step(Duration::ZERO);
        // Cleared however the load ends, a panic included.
        struct Ended<'a>(&'a Mutex<Option<(tokio::time::Instant, Duration)>>);
        impl Drop for Ended<'_> {
            fn drop(&mut self) {
                *lock(self.0) = None;
            }
        }
        let _ended = Ended(&self.load_started);
        // Taken out for the load and put back however it ends (a panic included): no lock is
        // held while commands and APIs are fetched. Loads run one at a time
        // (`coalesced_reload`), and `sources_due` does not look while one runs.
        struct Taken<'a>(&'a Mutex<refresh::Refresher>, refresh::Refresher);
        impl Drop for Taken<'_> {
            fn drop(&mut self) {
                *lock(self.0) = std::mem::take(&mut self.1);
            }
        }
        let mut taken = Taken(&self.refresher, std::mem::take(&mut *lock(&self.refresher)));
        let refresher = &mut taken.1;
        if crate::failpoint::planted("reload-stall") {
            step(Duration::ZERO);
            std::thread::sleep(Duration::MAX);
        }
        if self
            .fetch_all
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            refresher.force();
        }
        let result = refresher.load(
            &self.config_path,
            std::time::Instant::now(),
            unix_now(),
            &step,
        );
        lock(&self.metrics).set_sources(refresher.health());
        result
    }

    fn reload(&self) -> Result<(), String> {
        match self.load() {
            Ok(config) => {
                let old = self.config();
                if config.agent.metrics_listen != old.agent.metrics_listen
                    || config.agent.control_socket != old.agent.control_socket
                    || config.agent.vantage != old.agent.vantage
                {
                    tracing::warn!(
                        "metrics_listen, control_socket and vantage change on restart only"
                    );
                }
                lock(&self.tracker).set_cycles(config.agent.confirm_cycles);
                self.pacer.set_rate(config.agent.rate);
                *lock(&self.config) = Arc::new(config);
                let metrics = lock(&self.metrics);
                metrics.reload_ok.set(1.0);
                metrics.reload_time.set(unix_now());
                let mut status = lock(&self.status);
                status.reload_ok = true;
                status.reload_error = None;
                tracing::info!(config = %self.config_path.display(), "config reloaded");
                Ok(())
            }
            Err(e) => {
                let message = e.to_string();
                lock(&self.metrics).reload_ok.set(0.0);
                let mut status = lock(&self.status);
                status.reload_ok = false;
                status.reload_error = Some(message.clone());
                tracing::error!(error = ?message, "config reload failed; the previous config keeps running");
                Err(message)
            }
        }
    }

    /// One probing round over `selection` of this agent's instances: probed, judged again
    /// against rules fetched now where it would confirm drift, and recorded in the drift
    /// tracker (`whole`: the cycle's full round, which also forgets flows that left the
    /// plan). The flows, each with its confirmed drift; what each had confirmed before; and
    /// whether raw sockets were there.
    async fn round(
        self: &Arc<Self>,
        selection: &Selection,
        whole: bool,
    ) -> anyhow::Result<(Vec<FlowResult>, Vec<Drift>, bool)> {
        let config = self.config();
        let instances: Vec<&crate::model::Instance> = owned(&config).collect();
        // A recheck's instances: looked up once, not once per flow.
        let instances: Vec<&crate::model::Instance> = match &selection.only {
            Some(only) => {
                let ids: std::collections::HashSet<&str> = only.iter().map(|k| &*k.id).collect();
                instances
                    .into_iter()
                    .filter(|i| ids.contains(i.key()))
                    .collect()
            }
            None => instances,
        };
        let mut checked = check(
            &config,
            &instances,
            selection,
            &settings(&config.agent),
            &self.pacer,
            self.activity.clone(),
        )
        .await?;
        // Reality follows a rule change at once, the agent's copy of the rules at the next
        // fetch: drift about to be confirmed is judged again against rules fetched now, so a
        // legitimate change (rules and reality together) never pages.
        let pending = {
            let tracker = lock(&self.tracker);
            checked
                .results
                .iter()
                .any(|r| tracker.would_confirm(&self.flow_id(&r.key), r.drift))
        };
        let has_sources = !config.sources.is_empty();
        // Each of a reload's fetches is bounded; past their sum it is stuck.
        let reload_bound = config
            .sources
            .iter()
            .map(|s| s.fetch_bound())
            .sum::<Duration>()
            + RELOAD_SLACK;
        // Let go before the sources are fetched again: held across the load, a config a
        // reload has replaced meanwhile would be a third copy of the rules at its peak.
        drop(instances);
        self.retire(config);
        if pending && has_sources {
            // Taken up by the next load, whenever it starts: never waited for here.
            self.fetch_all
                .store(true, std::sync::atomic::Ordering::SeqCst);
            // A load sends no probe: the watchdog judges it by the load's own bounds, not as a
            // silent cycle.
            let probing = lock(&self.cycle_started).take();
            let fresh = match self.clone().reload_off_thread().await {
                // A failed load keeps the rules that run.
                Reload::Done(_) => self.config(),
                // The running reload goes once more, from now: its rules are fresh enough.
                // Past its bounds, the rules held now judge rather than none.
                Reload::Queued => {
                    if !reload_ends_within(&self.reloading, reload_bound).await {
                        tracing::warn!(
                            "a reload still runs after {reload_bound:?}: drift is judged again with the rules held now"
                        );
                    }
                    self.config()
                }
            };
            if probing.is_some() {
                *lock(&self.cycle_started) = Some(tokio::time::Instant::now());
            }
            cycle::rejudge(&fresh, &mut checked.results);
        }
        // The engine decided how to probe; its warnings say whether raw sockets were there.
        let raw = !checked
            .warnings
            .contains(&crate::engine::Warning::NoRawSockets);
        for warning in &checked.warnings {
            tracing::warn!("{warning}");
        }
        let looks = checked
            .results
            .iter()
            .map(|r| (self.flow_id(&r.key), r.drift));
        let confirmed = if whole {
            lock(&self.tracker).update(looks)
        } else {
            lock(&self.tracker).recheck(looks)
        };
        let mut flows = checked.results;
        let mut before = Vec::with_capacity(flows.len());
        for (r, (was, drift)) in flows.iter_mut().zip(confirmed) {
            r.confirmed = drift;
            before.push(was);
        }
        Ok((flows, before, raw))
    }

    /// A drift confirmed before this cycle keeps the cause it had while this cycle's looks
    /// cannot decide one (an inconclusive look, a baseline gone quiet): its series and its
    /// page keep one identity instead of flapping through `unknown`. Only while it is
    /// observed as before: a port that went from a RST to silence is another story.
    fn keep_causes(&self, flows: &mut [FlowResult], before: &[Drift]) {
        let undecided: Vec<usize> = flows
            .iter()
            .zip(before)
            .enumerate()
            .filter(|(_, (r, was))| **was == r.confirmed)
            .filter(|(_, (r, _))| matches!(r.confirmed, Drift::Exposed | Drift::Blocked))
            .filter(|(_, (r, _))| r.cause.is_none_or(|c| c == crate::cause::Cause::Unknown))
            .map(|(at, _)| at)
            .collect();
        if undecided.is_empty() {
            return;
        }
        let previous: std::collections::HashMap<FlowKey, (crate::cause::Cause, PortState)> =
            lock(&self.latest)
                .iter()
                .filter_map(|r| Some((r.key.clone(), (r.cause?, r.observed))))
                .collect();
        for at in undecided {
            if let Some((cause, observed)) = previous.get(&flows[at].key)
                && *observed == flows[at].observed
            {
                flows[at].cause = Some(*cause);
            }
        }
    }

    /// One cycle over every instance. A flow whose drift is new is probed again,
    /// `CONFIRM_GAP` apart, up to `confirm_cycles - 1` times while that fits before the next
    /// cycle: drift is confirmed within the cycle that first saw it, plus seconds, instead
    /// of `confirm_cycles` intervals.
    async fn cycle(self: &Arc<Self>) -> anyhow::Result<()> {
        // The settings only: each round takes the rules that run when it starts, and none
        // holds rules a reload has replaced.
        let (agent, instances) = {
            let config = self.config();
            (config.agent.clone(), owned(&config).count())
        };
        let started = std::time::Instant::now();
        let (mut flows, before, raw) = self.round(&Selection::default(), true).await?;
        let gap = CONFIRM_GAP.min(agent.interval);
        for _ in 1..agent.confirm_cycles {
            // Rechecks fit before the next cycle is due: with a short interval, the next
            // cycle is as quick a second look.
            if started.elapsed() + gap >= agent.interval {
                break;
            }
            let unconfirmed: std::collections::HashSet<FlowKey> = flows
                .iter()
                .filter(|r| matches!(r.drift, Drift::Exposed | Drift::Blocked))
                .filter(|r| r.confirmed != r.drift)
                .map(|r| r.key.clone())
                .collect();
            if unconfirmed.is_empty() {
                break;
            }
            tokio::time::sleep(gap).await;
            let selection = Selection {
                only: Some(unconfirmed),
                ..Selection::default()
            };
            // A recheck that fails leaves the first round's rows to publish: they are
            // recorded in the tracker already.
            let again = match self.round(&selection, false).await {
                Ok((again, _, _)) => again,
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "recheck failed; the cycle's first look stands");
                    break;
                }
            };
            let mut again: std::collections::HashMap<FlowKey, FlowResult> =
                again.into_iter().map(|r| (r.key.clone(), r)).collect();
            for flow in &mut flows {
                if let Some(newer) = again.remove(&flow.key) {
                    *flow = newer;
                }
            }
            // A recheck's causes were read without the flows that agree with the rules,
            // which hold each address's baseline: read again over the whole cycle.
            cycle::find_causes(&mut flows);
        }
        self.keep_causes(&mut flows, &before);
        for (r, was) in flows.iter().zip(before) {
            if was != r.confirmed {
                let key = &r.key;
                match r.confirmed {
                    Drift::Exposed | Drift::Blocked => {
                        tracing::warn!(instance = %key.instance, address = %key.address, protocol = key.protocol, port = key.port, drift = r.confirmed.name(), cause = r.cause.map_or("unknown", crate::cause::Cause::name), "drift confirmed")
                    }
                    _ => {
                        tracing::info!(instance = %key.instance, address = %key.address, protocol = key.protocol, port = key.port, "drift cleared")
                    }
                }
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        let planned = flows.len();
        let drifting = flows
            .iter()
            .filter(|r| matches!(r.confirmed, Drift::Exposed | Drift::Blocked))
            .count();
        // The rows and the series ceiling change together, locked in the renderer's order: a
        // render between the two would pair the new ceiling with the old rows.
        let mut latest = lock(&self.latest);
        {
            let mut metrics = lock(&self.metrics);
            metrics.record(&flows, agent.drifting_only, agent.max_flow_series);
            metrics.cycle_duration.set(elapsed);
            metrics.last_cycle.set(unix_now());
            metrics.raw_sockets.set(if raw { 1.0 } else { 0.0 });
            // Only the rows something still reads: past the series ceiling, the drifting
            // ones. 100,000 rows held until the next cycle were a third of the agent.
            flows.retain(|r| metrics.shows(r));
            flows.shrink_to_fit();
            *latest = flows;
        }
        let mut status = lock(&self.status);
        status.instances = instances;
        status.shard = agent.shard.to_string();
        status.cycles += 1;
        status.last_cycle_unix = Some(unix_now());
        status.cycle_seconds = Some(elapsed);
        status.flows = planned;
        status.drifting = drifting;
        status.raw_sockets = raw;
        tracing::debug!(flows = planned, drifting, seconds = elapsed, "cycle done");
        drop((status, latest));
        Ok(())
    }

    /// Lets go of `config`. Where a reload has replaced it meanwhile, this was the last hold
    /// on those rules: they are freed off the async workers (a large inventory is many small
    /// allocations).
    fn retire(&self, config: Arc<Config>) {
        if !Arc::ptr_eq(&config, &self.config()) {
            tokio::task::spawn_blocking(move || {
                drop(config);
                memory::release_freed();
            });
        }
    }
}

/// The instances this agent's shard owns.
fn owned(config: &Config) -> impl Iterator<Item = &crate::model::Instance> {
    let shard = config.agent.shard;
    config
        .inventory
        .instances
        .iter()
        .filter(move |i| shard.owns(i))
}

/// Runs until SIGTERM or SIGINT, which end it within a second, mid-cycle or not; SIGHUP
/// reloads.
pub async fn run(config_path: &Path) -> anyhow::Result<()> {
    // Off the async threads, as every later load: a source may run a command or an API
    // client with a runtime of its own.
    let path = config_path.to_path_buf();
    let (refresher, loaded) = tokio::task::spawn_blocking(move || {
        let mut refresher = refresh::Refresher::default();
        let loaded = refresher.load(&path, std::time::Instant::now(), unix_now(), &|_| {});
        (refresher, loaded)
    })
    .await
    .context("the loading task failed")?;
    let config = loaded.context("cannot load the config")?;
    let metrics =
        Metrics::new(config.agent.vantage.as_deref()).context("cannot register metrics")?;
    metrics.set_sources(refresher.health());
    metrics.reload_ok.set(1.0);
    metrics.reload_time.set(unix_now());
    let agent = config.agent.clone();
    let remote = config
        .inventory
        .instances
        .iter()
        .filter(|i| !i.local)
        .count();
    if remote > 0 {
        tracing::info!(
            remote,
            "remote instances get inbound checks only: the agent probes from where it runs (mark the instance it runs on with local = true)"
        );
    }
    let shared = Arc::new(Shared {
        config_path: config_path.to_path_buf(),
        tracker: Mutex::new(Tracker::new(agent.confirm_cycles)),
        flow_ids: std::hash::RandomState::new(),
        config: Mutex::new(Arc::new(config)),
        metrics: Mutex::new(metrics),
        latest: Mutex::new(Vec::new()),
        status: Mutex::new(Status {
            config: config_path.to_path_buf(),
            reload_ok: true,
            ..Status::default()
        }),
        checks: Semaphore::new(2),
        pacer: Pacer::new(agent.rate),
        activity: Arc::new(Counters::default()),
        cycle_started: Mutex::new(None),
        refresher: Mutex::new(refresher),
        reloading: Default::default(),
        reload_pending: Default::default(),
        rendered: Mutex::new(None),
        rendering: tokio::sync::Mutex::new(()),
        load_started: Mutex::new(None),
        fetch_all: Default::default(),
        stalled: Default::default(),
        stop: tokio_util::sync::CancellationToken::new(),
    });

    let listener = tokio::net::TcpListener::bind(agent.metrics_listen)
        .await
        .with_context(|| format!("cannot listen on {} for /metrics", agent.metrics_listen))?;
    let web = shared.clone();
    let ready = shared.clone();
    let healthy = shared.clone();
    let reloader = shared.clone();
    let metrics_app = Router::new()
        .route(
            "/metrics",
            get(move |headers: axum::http::HeaderMap| async move {
                use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
                // `gzip`, unless refused with q=0.
                let gzip = headers
                    .get_all(axum::http::header::ACCEPT_ENCODING)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(','))
                    .any(|e| {
                        let mut parts = e.split(';').map(str::trim);
                        parts.next() == Some("gzip")
                            && parts.all(|p| {
                                p.strip_prefix("q=")
                                    .and_then(|q| q.parse::<f32>().ok())
                                    .is_none_or(|q| q > 0.0)
                            })
                    });
                match web.metrics_text(gzip).await {
                    Some(text) => {
                        let mut reply = axum::response::IntoResponse::into_response((
                            [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                            text,
                        ));
                        reply.headers_mut().insert(
                            axum::http::header::VARY,
                            axum::http::HeaderValue::from_static("Accept-Encoding"),
                        );
                        if gzip {
                            reply.headers_mut().insert(
                                CONTENT_ENCODING,
                                axum::http::HeaderValue::from_static("gzip"),
                            );
                        }
                        reply
                    }
                    None => axum::response::IntoResponse::into_response((
                        StatusCode::INTERNAL_SERVER_ERROR,
                        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
                        "rendering the metrics failed\n",
                    )),
                }
            }),
        )
        // What this listener serves, for a person who opens it in a browser.
        .route(
            "/",
            get(|| async {
                axum::response::Html(format!(
                    "<!doctype html><html><head><title>sgprobe</title></head><body><h1>sgprobe {}</h1><p>Checks that cloud security groups do what they say.</p><ul><li><a href=\"metrics\">/metrics</a></li><li><a href=\"-/healthy\">/-/healthy</a></li><li><a href=\"-/ready\">/-/ready</a></li><li>POST /-/reload</li></ul></body></html>\n",
                    env!("CARGO_PKG_VERSION")
                ))
            }),
        )
        // As Prometheus' own, and as there only when enabled: reloads the config (coalesced
        // with any other reload).
        .route(
            "/-/reload",
            post(move || async move {
                if !reloader.config().agent.web_reload {
                    return axum::response::IntoResponse::into_response((
                        StatusCode::FORBIDDEN,
                        "POST /-/reload is off: set web_reload = true in [agent] (the control socket's POST /v1/reload is always on)\n",
                    ));
                }
                tracing::info!("reload requested on /-/reload");
                control::reload_reply(reloader.clone().reload_off_thread().await)
            }),
        )
        // Unhealthy while the watchdog finds the cycle or a load stuck: a liveness probe
        // restarts the agent, as the systemd watchdog does.
        .route(
            "/-/healthy",
            get(move || async move {
                if healthy.stalled.load(std::sync::atomic::Ordering::SeqCst) {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the cycle or a load is stuck (see sgprobe_cycle_stalled)\n",
                    )
                } else {
                    (StatusCode::OK, "OK\n")
                }
            }),
        )
        // Ready once a cycle has completed: before that the metrics say nothing of drift.
        .route(
            "/-/ready",
            get(move || async move {
                if lock(&ready.status).cycles > 0 {
                    (StatusCode::OK, "OK\n")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the first cycle has not completed\n",
                    )
                }
            }),
        );
    let (socket, socket_file) = control::bind(&agent.control_socket)?;
    let mut tasks = tasks::Tasks::new(shared.stop.clone());
    tasks.spawn(
        "the metrics listener",
        listen::serve(listener, metrics_app, "metrics"),
    );
    let control_app = control::router(shared.clone());
    tasks.spawn(
        "the control listener",
        listen::serve(socket, control_app, "control"),
    );
    tracing::info!(metrics = %agent.metrics_listen, control = %agent.control_socket.display(), "sgprobe agent started");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    tasks.spawn("the watchdog task", watch(shared.clone()));
    // The cycle runs in its own task: signals, reloads, /metrics and the socket never wait
    // for it.
    tasks.spawn("the cycle task", cycles(shared.clone()));

    let (mut hangup, mut terminate, mut interrupt) = (
        signal(SignalKind::hangup())?,
        signal(SignalKind::terminate())?,
        signal(SignalKind::interrupt())?,
    );
    let ended = loop {
        tokio::select! {
            _ = hangup.recv() => {
                // Never awaited here: a reload stuck on a source must not hold up SIGTERM.
                let shared = shared.clone();
                let stop = shared.stop.clone();
                tokio::spawn(async move {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading]);
                    tokio::select! {
                        () = stop.cancelled() => {}
                        _ = shared.reload_off_thread() => {
                            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
                        }
                    }
                });
            }
            _ = terminate.recv() => break None,
            _ = interrupt.recv() => break None,
            ended = tasks.ended() => break Some(ended),
        }
    };
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    shared.stop.cancel();
    // A command a source is running dies with its process group, children and all.
    crate::config::kill_running_commands();
    // Every task ends at its next wait; a cycle's sockets close as its state drops.
    tasks.stop(Duration::from_millis(500)).await;
    socket_file.remove();
    if let Some(tasks::Ended { task, panicked }) = ended {
        let why = if panicked { "panicked" } else { "ended" };
        tracing::error!(task, "{why}: the agent stops");
        anyhow::bail!("{task} {why}");
    }
    tracing::info!("sgprobe agent stopped");
    Ok(())
}

/// A cycle every `interval` (jittered by up to 10% so agents do not fall into step), each
/// with the config current when it starts: a reload applies from the next cycle.
async fn cycles(shared: Arc<Shared>) {
    let mut next = tokio::time::Instant::now();
    loop {
        tokio::time::sleep_until(next).await;
        // Rules as fresh as the sources allow: a changed file or a due command loads first,
        // and a failed load keeps the rules the last good one gave.
        if shared.sources_due() {
            let _ = shared.clone().reload_off_thread().await;
        }
        *lock(&shared.cycle_started) = Some(tokio::time::Instant::now());
        if crate::failpoint::planted("cycle-panic") {
            panic!("the planted fault cycle-panic");
        }
        if let Err(e) = shared.cycle().await {
            tracing::error!(error = %format!("{e:#}"), "cycle failed");
            lock(&shared.metrics).cycle_errors.inc();
        }
        *lock(&shared.cycle_started) = None;
        let interval = shared.config().agent.interval;
        let jitter = interval.mul_f64(rand::random::<f64>() * 0.1);
        next = tokio::time::Instant::now() + interval - interval / 20 + jitter;
    }
}

/// Once a second: is the running cycle alive? A stuck one is logged, shown as
/// `sgprobe_cycle_stalled`, and starves the systemd watchdog, which restarts the agent.
async fn watch(shared: Arc<Shared>) {
    let mut watchdog_usec = 0;
    let watchdog = sd_notify::watchdog_enabled(false, &mut watchdog_usec);
    let every = if watchdog {
        Duration::from_micros(watchdog_usec / 2).min(Duration::from_secs(1))
    } else {
        Duration::from_secs(1)
    };
    let now = tokio::time::Instant::now();
    let limit = progress::STALL_FLOOR.max(shared.config().agent.interval);
    let mut monitor = progress::Monitor::new(limit, now);
    let mut was_stalled = false;
    loop {
        tokio::time::sleep(every).await;
        let activity =
            Counters::get(&shared.activity.sent) + Counters::get(&shared.activity.answered);
        let started = *lock(&shared.cycle_started);
        let now = tokio::time::Instant::now();
        let load = *lock(&shared.load_started);
        let load_stuck = progress::load_overran(now, load);
        let stalled = monitor.stalled(now, started, activity) || load_stuck;
        if stalled && !was_stalled {
            if load_stuck {
                tracing::error!(
                    "loading the sources has run past every bound their fetches have; the systemd watchdog is no longer fed"
                );
            } else {
                tracing::error!(limit = ?limit, "the cycle is stuck: no probe sent or answered within the limit; the systemd watchdog is no longer fed");
            }
        }
        was_stalled = stalled;
        shared
            .stalled
            .store(stalled, std::sync::atomic::Ordering::SeqCst);
        lock(&shared.metrics).set_cycle_state(started.is_some(), stalled);
        if watchdog && !stalled {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_reload_that_never_ends_is_waited_for_only_its_bound() {
        let stuck = AtomicBool::new(true);
        let started = tokio::time::Instant::now();
        assert!(!reload_ends_within(&stuck, Duration::from_secs(30)).await);
        assert_eq!(
            started.elapsed().as_secs(),
            30,
            "waited its bound, no longer"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_that_ends_is_waited_for_until_it_ends() {
        let reloading = Arc::new(AtomicBool::new(true));
        let running = reloading.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            running.store(false, Ordering::SeqCst);
        });
        let started = tokio::time::Instant::now();
        assert!(reload_ends_within(&reloading, Duration::from_secs(30)).await);
        assert!((3..4).contains(&started.elapsed().as_secs()));
    }
}
