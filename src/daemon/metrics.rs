//! Prometheus metrics (ARCHITECTURE.md §5). Per-flow series exist for every planned flow (or, past the
//! ceiling or when configured, only for drifting ones) and disappear when a flow leaves the
//! plan. No label takes unbounded values.
//!
//! Per-flow series are not kept as registered gauges: a gauge child costs hundreds of bytes
//! of label strings, times four series per flow. They are written at scrape time from the
//! agent's flow table, which it keeps anyway; the registry holds the rest.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry,
    TextEncoder,
};

use super::cycle::{FlowKey, FlowResult};
use crate::cause::Cause;
use crate::drift::Drift;
use crate::model::PortState;
use crate::policy::Predicted;

pub struct Metrics {
    registry: Registry,
    instance_flows: GaugeVec,
    probes: IntCounterVec,
    rtt: HistogramVec,
    pub cycle_duration: Gauge,
    pub last_cycle: Gauge,
    /// Cycles that failed before probing (a socket error, say): the cycle goes on next time.
    pub cycle_errors: prometheus::IntCounter,
    pub reload_ok: Gauge,
    pub reload_time: Gauge,
    pub raw_sockets: Gauge,
    flow_series_limited: Gauge,
    cycle_in_progress: Gauge,
    cycle_stalled: Gauge,
    /// Per source: up, last success, rules, fetch time, refresh.
    sources: [GaugeVec; 5],
    /// Per source, group and field: the parts of its export that could not be read.
    source_unreadable: GaugeVec,
    /// Per source that is down: why its last fetch failed.
    source_failure: GaugeVec,
    /// Per-flow series for drifting flows only (configured, or past the ceiling).
    limited: bool,
    instances: Vec<Arc<str>>,
    /// The registry labels its own series with it; the per-flow series are written here.
    vantage: Option<String>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("limited", &self.limited)
            .finish_non_exhaustive()
    }
}

/// `sgprobe_source_failure`'s help, which lists every `SourceError::reason`.
pub(crate) const SOURCE_FAILURE_HELP: &str = "1 while the source's last fetch failed, labelled with why: io, not-text, not-a-file, too-large, malformed, conflict, ambiguous-instance, command, no-credentials, unreachable, refused, throttled, timeout.";

/// Series of `sgprobe_source_unreadable` per source at most: an export broken throughout
/// says so in its first hundred parts as well as in all of them.
const MAX_UNREADABLE_SERIES: usize = 100;

/// The per-flow families: name, help, and the extra label (name, values) each flow gets.
const FLOW_DRIFT: (&str, &str) = (
    "sgprobe_flow_drift",
    "1 while drift of this kind (exposed: rules say closed, packets got through; blocked: rules say open, packets dropped or, on a port the instance serves, nothing listening) is confirmed, with its cause (unlisted-rule, answered-by-middlebox, host-rejects, not-listening, router-rejects, silent-drop, unknown), else 0; one series per flow, of the kind its prediction allows.",
);
const FLOW_PREDICTED_OPEN: (&str, &str) = (
    "sgprobe_flow_predicted_open",
    "1 if the security groups open the flow for the prober's address, else 0.",
);
const FLOW_OBSERVED_STATE: (&str, &str) = (
    "sgprobe_flow_observed_state",
    "The state the last probe of the flow showed: 0 closed, 1 open, 2 filtered, 3 open|filtered (nmap's words), 4 unknown (not probed: see the agent's log).",
);

const DRIFTS: [Drift; 4] = [
    Drift::None,
    Drift::Exposed,
    Drift::Blocked,
    Drift::Inconclusive,
];

impl Metrics {
    /// `vantage`, if given, labels every series (`vantage="..."`).
    pub fn new(vantage: Option<&str>) -> Result<Metrics, prometheus::Error> {
        let labels = vantage.map(|v| [("vantage".to_string(), v.to_string())].into());
        let registry = Registry::new_custom(None, labels)?;
        let gauge_vec =
            |name: &str, help: &str, labels: &[&str]| -> Result<GaugeVec, prometheus::Error> {
                let g = GaugeVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(g.clone()))?;
                Ok(g)
            };
        let gauge = |name: &str, help: &str| -> Result<Gauge, prometheus::Error> {
            let g = Gauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let probes = IntCounterVec::new(
            Opts::new(
                "sgprobe_probes_total",
                "Probes answered or given up, by protocol and state.",
            ),
            &["protocol", "state"],
        )?;
        registry.register(Box::new(probes.clone()))?;
        let cycle_errors = prometheus::IntCounter::new(
            "sgprobe_cycle_errors_total",
            "Cycles that failed (the agent's log says why); the next cycle tries again.",
        )?;
        registry.register(Box::new(cycle_errors.clone()))?;
        // process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds...: what
        // every exporter reports of itself.
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let rtt = HistogramVec::new(
            HistogramOpts::new(
                "sgprobe_probe_rtt_seconds",
                "Round-trip time of answered probes.",
            )
            .buckets(vec![
                0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["protocol"],
        )?;
        registry.register(Box::new(rtt.clone()))?;
        let build = gauge_vec(
            "sgprobe_build_info",
            "Build information; always 1.",
            &["version"],
        )?;
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1.0);
        Ok(Metrics {
            vantage: vantage.map(str::to_string),
            cycle_errors,
            instance_flows: gauge_vec(
                "sgprobe_instance_flows",
                "Planned flows per instance, by confirmed drift.",
                &["cloud_instance", "drift"],
            )?,
            cycle_duration: gauge(
                "sgprobe_cycle_duration_seconds",
                "How long the last cycle took.",
            )?,
            last_cycle: gauge(
                "sgprobe_last_cycle_timestamp_seconds",
                "When the last cycle ended, Unix time.",
            )?,
            reload_ok: gauge(
                "sgprobe_config_last_reload_successful",
                "1 if the last config (re)load succeeded.",
            )?,
            reload_time: gauge(
                "sgprobe_config_last_reload_success_timestamp_seconds",
                "When the config last loaded successfully, Unix time.",
            )?,
            raw_sockets: gauge(
                "sgprobe_raw_sockets_available",
                "1 if TCP is probed with raw SYNs, 0 if with connect().",
            )?,
            flow_series_limited: gauge(
                "sgprobe_flow_series_limited",
                "1 when per-flow series are exported for drifting flows only (configured, or past the ceiling).",
            )?,
            cycle_in_progress: gauge("sgprobe_cycle_in_progress", "1 while a cycle runs.")?,
            cycle_stalled: gauge(
                "sgprobe_cycle_stalled",
                "1 while the running cycle has sent and heard nothing for its stall limit (the systemd watchdog is then no longer fed).",
            )?,
            sources: [
                gauge_vec(
                    "sgprobe_source_up",
                    "1 if the source's last fetch loaded; 0 if it failed (its last good rules stand).",
                    &["source"],
                )?,
                gauge_vec(
                    "sgprobe_source_last_success_timestamp_seconds",
                    "When the source last loaded, Unix time.",
                    &["source"],
                )?,
                gauge_vec(
                    "sgprobe_source_rules",
                    "Rules the source gave at its last successful load.",
                    &["source"],
                )?,
                gauge_vec(
                    "sgprobe_source_fetch_duration_seconds",
                    "How long the source's last successful fetch and import took.",
                    &["source"],
                )?,
                gauge_vec(
                    "sgprobe_source_refresh_seconds",
                    "How often a command source runs; 0 for a file, read whenever it changes.",
                    &["source"],
                )?,
            ],
            source_unreadable: gauge_vec(
                "sgprobe_source_unreadable",
                "1 for each part of the source's export that could not be read (the first 100 per source): the rest is checked, and flows that depend on this part are unknown.",
                &["source", "group", "field"],
            )?,
            source_failure: gauge_vec(
                "sgprobe_source_failure",
                SOURCE_FAILURE_HELP,
                &["source", "reason"],
            )?,
            registry,
            probes,
            rtt,
            limited: false,
            instances: Vec::new(),
        })
    }

    /// Records a cycle's flows, each with its confirmed drift: probe counters and RTTs,
    /// per-instance counts, and whether per-flow series are limited to drifting flows.
    pub fn record(&mut self, flows: &[FlowResult], drifting_only: bool, ceiling: usize) {
        for r in flows {
            self.probes
                .with_label_values(&[r.key.protocol, &r.observed.to_string()])
                .inc();
            if let Some(ms) = r.rtt_ms {
                self.rtt
                    .with_label_values(&[r.key.protocol])
                    .observe(ms / 1e3);
            }
        }
        self.limited = drifting_only || flows.len() > ceiling;
        self.flow_series_limited
            .set(if self.limited { 1.0 } else { 0.0 });

        let mut counts: BTreeMap<(&Arc<str>, Drift), u32> = BTreeMap::new();
        for r in flows {
            *counts.entry((&r.key.instance, r.confirmed)).or_default() += 1;
        }
        let mut instances: Vec<Arc<str>> = counts.keys().map(|(i, _)| Arc::clone(i)).collect();
        instances.dedup();
        // Past the ceiling, per-instance series too are for the instances with drift only:
        // 100,000 instances are 400,000 series otherwise.
        if self.limited {
            instances.retain(|i| {
                [Drift::Exposed, Drift::Blocked]
                    .iter()
                    .any(|d| counts.contains_key(&(i, *d)))
            });
        }
        for gone in self
            .instances
            .iter()
            .filter(|i| instances.binary_search(i).is_err())
        {
            for drift in DRIFTS {
                let _ = self
                    .instance_flows
                    .remove_label_values(&[gone, drift.name()]);
            }
        }
        for instance in &instances {
            for drift in DRIFTS {
                let n = counts.get(&(instance, drift)).copied().unwrap_or(0);
                self.instance_flows
                    .with_label_values(&[instance, drift.name()])
                    .set(f64::from(n));
            }
        }
        self.instances = instances;
    }

    /// The sources' health, replacing what was there: a source gone from the config has no
    /// series.
    pub fn set_sources<'a>(
        &self,
        health: impl Iterator<Item = (&'a str, &'a super::refresh::Health)> + Clone,
    ) {
        for family in &self.sources {
            family.reset();
        }
        self.source_unreadable.reset();
        self.source_failure.reset();
        for (name, h) in health.clone() {
            if let Some(reason) = h.failure.filter(|_| !h.up) {
                self.source_failure
                    .with_label_values(&[name, reason])
                    .set(1.0);
            }
            for (group, part) in h.unreadable.iter().take(MAX_UNREADABLE_SERIES) {
                self.source_unreadable
                    .with_label_values(&[name, group, &part.field])
                    .set(1.0);
            }
        }
        for (name, h) in health {
            let values = [
                f64::from(u8::from(h.up)),
                h.last_success,
                h.rules as f64,
                h.fetch_seconds,
                h.refresh_seconds,
            ];
            for (family, value) in self.sources.iter().zip(values) {
                family.with_label_values(&[name]).set(value);
            }
        }
    }

    pub fn set_cycle_state(&self, running: bool, stalled: bool) {
        self.cycle_in_progress.set(f64::from(u8::from(running)));
        self.cycle_stalled.set(f64::from(u8::from(stalled)));
    }

    /// Whether a flow has series of its own: every flow, or past the ceiling (or with
    /// `drifting_only`) only a drifting one.
    pub fn shows(&self, flow: &FlowResult) -> bool {
        !self.limited || matches!(flow.confirmed, Drift::Exposed | Drift::Blocked)
    }

    /// The text exposition format: the registry, then the per-flow series of `flows`.
    pub fn render(&self, flows: &[FlowResult]) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        let mut out = String::from_utf8(buf).unwrap_or_default();
        let shown: Vec<&FlowResult> = flows.iter().filter(|r| self.shows(r)).collect();
        if shown.is_empty() {
            return out;
        }
        let vantage = self.vantage.as_deref().map_or(NO_LABEL, |v| ("vantage", v));
        family(&mut out, FLOW_DRIFT, &shown, |out, r| {
            if let Some(kind) = drift_kind(r.predicted, r.observed, r.confirmed) {
                let on = u8::from(r.confirmed == kind);
                // Only a confirmed drift has a cause: a 0 series keeps one identity.
                let cause = match (on, r.cause) {
                    (1, cause) => ("cause", cause.unwrap_or(Cause::Unknown).name()),
                    _ => NO_LABEL,
                };
                sample(
                    out,
                    FLOW_DRIFT.0,
                    &r.key,
                    [("kind", kind.name()), cause, vantage],
                    on,
                );
            }
        });
        family(&mut out, FLOW_PREDICTED_OPEN, &shown, |out, r| {
            let open = u8::from(r.predicted == Predicted::Open);
            sample(
                out,
                FLOW_PREDICTED_OPEN.0,
                &r.key,
                [vantage, NO_LABEL, NO_LABEL],
                open,
            );
        });
        family(&mut out, FLOW_OBSERVED_STATE, &shown, |out, r| {
            sample(
                out,
                FLOW_OBSERVED_STATE.0,
                &r.key,
                [vantage, NO_LABEL, NO_LABEL],
                state_code(r.observed),
            );
        });
        out
    }
}

/// The one drift series a flow has: the confirmed drift, else the kind its prediction
/// allows (only a flow the rules close can be exposed, only one they open blocked); none
/// where the rules cannot say (partial, unknown, ambiguous) or the flow was not probed,
/// which never drift: a 0 there would read as checked and clean.
fn drift_kind(predicted: Predicted, observed: PortState, confirmed: Drift) -> Option<Drift> {
    match (confirmed, predicted) {
        (Drift::Exposed | Drift::Blocked, _) => Some(confirmed),
        _ if observed == PortState::Unknown => None,
        (_, Predicted::Open) => Some(Drift::Blocked),
        (_, Predicted::Closed) => Some(Drift::Exposed),
        _ => None,
    }
}

/// The observed state as a value, so that a changed state changes a value, not a series.
fn state_code(state: PortState) -> u8 {
    match state {
        PortState::Closed => 0,
        PortState::Open => 1,
        PortState::Filtered => 2,
        PortState::OpenFiltered => 3,
        PortState::Unknown => 4,
    }
}

/// No label: `sample` leaves it out.
const NO_LABEL: (&str, &str) = ("", "");

fn family(
    out: &mut String,
    (name, help): (&str, &str),
    flows: &[&FlowResult],
    mut each: impl FnMut(&mut String, &FlowResult),
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for flow in flows {
        each(out, flow);
    }
}

/// One series, labels in name order; `extra` `NO_LABEL` for none.
/// The cloud instance is `cloud_instance`: `instance` and `job` belong to Prometheus, which
/// would rename ours `exported_instance` under an ordinary scrape job.
fn sample(out: &mut String, name: &str, key: &FlowKey, extra: [(&str, &str); 3], value: u8) {
    let address = key.address.to_string();
    let direction = key.direction.to_string();
    let port = key.port.map(|p| p.to_string()).unwrap_or_default();
    let mut labels = [
        ("address", address.as_str()),
        ("cloud_instance", &key.instance),
        ("direction", direction.as_str()),
        extra[0],
        extra[1],
        extra[2],
        ("port", port.as_str()),
        ("protocol", key.protocol),
    ];
    labels.sort_unstable();
    let _ = write!(out, "{name}{{");
    let mut first = true;
    for (label, value) in labels.iter().filter(|(l, _)| !l.is_empty()) {
        if !std::mem::take(&mut first) {
            out.push(',');
        }
        let _ = write!(out, "{label}=\"");
        escape(out, value);
        out.push('"');
    }
    let _ = writeln!(out, "}} {value}");
}

/// Label-value escaping of the text format: backslash, double quote and line feed.
fn escape(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Method;
    use crate::model::{Direction, FlowPeer};

    fn result(port: u16, predicted: Predicted, observed: PortState, drift: Drift) -> FlowResult {
        FlowResult {
            key: FlowKey {
                id: "web".into(),
                instance: "web".into(),
                address: "10.0.0.1".parse().expect("address"),
                direction: Direction::Inbound,
                protocol: "tcp",
                port: Some(port),
            },
            peer: FlowPeer::All,
            predicted,
            observed,
            state: observed,
            reachable: observed.reachable(),
            rtt_ms: Some(0.5),
            evidence: crate::engine::Evidence::NoReply,
            ttl: None,
            attempts: 1,
            method: Method::Syn,
            drift,
            cause: matches!(drift, Drift::Exposed | Drift::Blocked).then_some(Cause::Unknown),
            serves: false,
            confirmed: drift,
            rule: None,
        }
    }

    fn series(text: &str, port: u16) -> usize {
        text.lines()
            .filter(|l| l.starts_with("sgprobe_flow_") && l.contains(&format!("port=\"{port}\"")))
            .count()
    }

    #[test]
    fn a_vantage_labels_every_series_the_agent_exports() {
        let mut metrics = Metrics::new(Some("internet-eu")).expect("registers");
        let flows = [
            result(22, Predicted::Open, PortState::Open, Drift::None),
            result(8080, Predicted::Closed, PortState::Open, Drift::Exposed),
        ];
        metrics.record(&flows, false, 10_000);
        metrics.set_cycle_state(true, false);
        let text = metrics.render(&flows);
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(samples.len() > 10, "{text}");
        for line in samples {
            assert!(line.contains("vantage=\"internet-eu\""), "{line}");
        }
    }

    #[test]
    fn a_source_that_is_down_says_why_and_one_that_is_up_says_nothing() {
        use super::super::refresh::Health;
        let metrics = Metrics::new(None).expect("registers");
        let down = Health {
            failure: Some("throttled"),
            ..Health::default()
        };
        let up = Health {
            up: true,
            ..Health::default()
        };
        metrics.set_sources([("ec2", &down), ("files", &up)].into_iter());
        let text = metrics.render(&[]);
        assert!(
            text.contains("sgprobe_source_failure{reason=\"throttled\",source=\"ec2\"} 1"),
            "{text}"
        );
        assert!(!text.contains("sgprobe_source_failure{reason=\"throttled\",source=\"files\""));
        // Mended: its reason goes with it.
        let mended = Health {
            up: true,
            ..Health::default()
        };
        metrics.set_sources([("ec2", &mended), ("files", &up)].into_iter());
        assert!(!metrics.render(&[]).contains("sgprobe_source_failure{"));
    }

    #[test]
    fn flow_series_follow_the_plan_and_the_drifting_only_switch() {
        let mut metrics = Metrics::new(None).expect("registers");
        let a = result(22, Predicted::Open, PortState::Open, Drift::None);
        let b = result(8080, Predicted::Closed, PortState::Open, Drift::Exposed);
        let both = [a.clone(), b.clone()];
        metrics.record(&both, false, 100);
        let text = metrics.render(&both);
        // Drift (of the kind the prediction allows), predicted, observed: three series per
        // planned flow, none of them `instance` (Prometheus' own label).
        assert_eq!((series(&text, 22), series(&text, 8080)), (3, 3), "{text}");
        assert!(text.contains("sgprobe_flow_drift{address=\"10.0.0.1\",cause=\"unknown\",cloud_instance=\"web\",direction=\"inbound\",kind=\"exposed\",port=\"8080\",protocol=\"tcp\"} 1"), "{text}");
        assert!(text.contains("sgprobe_flow_drift{address=\"10.0.0.1\",cloud_instance=\"web\",direction=\"inbound\",kind=\"blocked\",port=\"22\",protocol=\"tcp\"} 0"), "{text}");
        assert!(text.contains("sgprobe_flow_observed_state{address=\"10.0.0.1\",cloud_instance=\"web\",direction=\"inbound\",port=\"22\",protocol=\"tcp\"} 1"));
        assert!(text.contains("sgprobe_flow_predicted_open{address=\"10.0.0.1\",cloud_instance=\"web\",direction=\"inbound\",port=\"8080\",protocol=\"tcp\"} 0"));
        assert!(
            !text.contains("{instance=") && !text.contains(",instance="),
            "{text}"
        );

        // Port 22 leaves the plan: its series go, 8080's stay.
        let only_b = std::slice::from_ref(&b);
        metrics.record(only_b, false, 100);
        let text = metrics.render(only_b);
        assert_eq!((series(&text, 22), series(&text, 8080)), (0, 3), "{text}");

        // The observed state changes: a value changes, the series stays.
        let c = result(8080, Predicted::Closed, PortState::Filtered, Drift::None);
        let only_c = std::slice::from_ref(&c);
        metrics.record(only_c, false, 100);
        let text = metrics.render(only_c);
        let observed: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("sgprobe_flow_observed_state"))
            .collect();
        assert_eq!(observed.len(), 1, "{text}");
        assert!(observed[0].ends_with(" 2"), "filtered: {text}");

        // Drifting only (or past the ceiling): quiet flows export nothing, drifting ones do.
        metrics.record(&both, true, 100);
        let text = metrics.render(&both);
        assert_eq!((series(&text, 22), series(&text, 8080)), (0, 3), "{text}");
        assert!(text.contains("sgprobe_flow_series_limited 1"));
        metrics.record(&both, false, 1);
        assert_eq!(
            series(&metrics.render(&both), 22),
            0,
            "two flows exceed a ceiling of one"
        );
    }

    #[test]
    fn past_the_ceiling_a_hundred_thousand_instances_export_counts_only_where_they_drift() {
        let mut metrics = Metrics::new(None).expect("registers");
        let flows: Vec<FlowResult> = (0..100_000)
            .map(|i| {
                let drift = if i == 77 { Drift::Exposed } else { Drift::None };
                let mut flow = result(22, Predicted::Closed, PortState::Closed, drift);
                flow.key.instance = format!("vm-{i}").into();
                flow
            })
            .collect();
        metrics.record(&flows, false, 10_000);
        let text = metrics.render(&flows);
        let series = |prefix: &str| text.lines().filter(|l| l.starts_with(prefix)).count();
        assert_eq!(
            series("sgprobe_instance_flows{"),
            DRIFTS.len(),
            "one instance's"
        );
        assert!(
            text.contains("sgprobe_instance_flows{cloud_instance=\"vm-77\",drift=\"exposed\"} 1")
        );
        let flows = text
            .lines()
            .filter(|l| l.starts_with("sgprobe_flow_") && l.contains("cloud_instance="))
            .count();
        assert_eq!(flows, 3, "one flow's");
        assert!(text.len() < 100_000, "{} bytes", text.len());
    }

    #[test]
    fn label_values_are_escaped_and_an_instance_that_leaves_takes_its_counts() {
        let mut metrics = Metrics::new(None).expect("registers");
        let mut odd = result(22, Predicted::Open, PortState::Open, Drift::None);
        odd.key.instance = "a \"b\" \\c\nd".into();
        let flows = [odd];
        metrics.record(&flows, false, 100);
        let text = metrics.render(&flows);
        assert!(
            text.contains(r#"cloud_instance="a \"b\" \\c\nd""#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"sgprobe_instance_flows{cloud_instance="a \"b\" \\c\nd",drift="none"} 1"#
            ),
            "{text}"
        );
        metrics.record(&[], false, 100);
        assert!(!metrics.render(&[]).contains("sgprobe_instance_flows{"));
    }
}
