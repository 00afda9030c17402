//! Prometheus metrics (DESIGN §5). Per-flow series exist for every planned flow (or, past the
//! ceiling or when configured, only for drifting ones) and disappear when a flow leaves the
//! plan. No label takes unbounded values.

use std::collections::{BTreeMap, BTreeSet};

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry,
    TextEncoder,
};

use super::cycle::{FlowKey, FlowResult};
use crate::drift::Drift;
use crate::engine::PortState;
use crate::policy::Predicted;

const FLOW: [&str; 5] = ["instance", "address", "direction", "protocol", "port"];

pub struct Metrics {
    registry: Registry,
    flow_drift: GaugeVec,
    flow_predicted_open: GaugeVec,
    flow_observed: GaugeVec,
    instance_flows: GaugeVec,
    probes: IntCounterVec,
    rtt: HistogramVec,
    pub cycle_duration: Gauge,
    pub last_cycle: Gauge,
    pub reload_ok: Gauge,
    pub reload_time: Gauge,
    pub raw_sockets: Gauge,
    flow_series_limited: Gauge,
    exported: BTreeSet<FlowKey>,
    observed_state: BTreeMap<FlowKey, PortState>,
    instances: BTreeSet<String>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("flows", &self.exported.len())
            .finish()
    }
}

fn labels(key: &FlowKey) -> [String; 5] {
    [
        key.instance.clone(),
        key.address.to_string(),
        key.direction.to_string(),
        key.protocol.to_string(),
        key.port.map_or(String::new(), |p| p.to_string()),
    ]
}

fn with<'a>(flow: &'a [String; 5], extra: &'a str) -> Vec<&'a str> {
    flow.iter()
        .map(String::as_str)
        .chain(std::iter::once(extra))
        .collect()
}

fn plain(flow: &[String; 5]) -> Vec<&str> {
    flow.iter().map(String::as_str).collect()
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
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
        let flow_kind = [&FLOW[..], &["kind"]].concat();
        let flow_state = [&FLOW[..], &["state"]].concat();
        let probes = IntCounterVec::new(
            Opts::new(
                "sgprobe_probes_total",
                "Probes answered or given up, by protocol and state.",
            ),
            &["protocol", "state"],
        )?;
        registry.register(Box::new(probes.clone()))?;
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
            flow_drift: gauge_vec(
                "sgprobe_flow_drift",
                "1 while drift of this kind (exposed: rules say closed, packets got through; blocked: rules say open, packets dropped) is confirmed, else 0.",
                &flow_kind,
            )?,
            flow_predicted_open: gauge_vec(
                "sgprobe_flow_predicted_open",
                "1 if the security groups open the flow for the prober's address, else 0.",
                &FLOW,
            )?,
            flow_observed: gauge_vec(
                "sgprobe_flow_observed_state",
                "1 for the state the last probe of the flow showed.",
                &flow_state,
            )?,
            instance_flows: gauge_vec(
                "sgprobe_instance_flows",
                "Planned flows per instance, by confirmed drift.",
                &["instance", "drift"],
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
            registry,
            probes,
            rtt,
            exported: BTreeSet::new(),
            observed_state: BTreeMap::new(),
            instances: BTreeSet::new(),
        })
    }

    /// Records a cycle: per-flow series for the flows planned now (and only them), instance
    /// counts, probe counters and RTTs.
    pub fn record(
        &mut self,
        results: &[FlowResult],
        confirmed: &BTreeMap<FlowKey, Drift>,
        drifting_only: bool,
        ceiling: usize,
    ) {
        for r in results {
            self.probes
                .with_label_values(&[r.key.protocol, &r.observed.to_string()])
                .inc();
            if let Some(ms) = r.rtt_ms {
                self.rtt
                    .with_label_values(&[r.key.protocol])
                    .observe(ms / 1e3);
            }
        }
        let limited = drifting_only || results.len() > ceiling;
        self.flow_series_limited
            .set(if limited { 1.0 } else { 0.0 });
        let wanted: Vec<&FlowResult> = results
            .iter()
            .filter(|r| {
                !limited
                    || confirmed
                        .get(&r.key)
                        .is_some_and(|d| matches!(d, Drift::Exposed | Drift::Blocked))
            })
            .collect();
        let now: BTreeSet<FlowKey> = wanted.iter().map(|r| r.key.clone()).collect();
        let gone: Vec<FlowKey> = self.exported.difference(&now).cloned().collect();
        for key in &gone {
            self.remove(key);
        }
        for r in wanted {
            let flow = labels(&r.key);
            let drift = confirmed.get(&r.key).copied().unwrap_or(Drift::None);
            for kind in [Drift::Exposed, Drift::Blocked] {
                self.flow_drift
                    .with_label_values(&with(&flow, kind.name()))
                    .set(if drift == kind { 1.0 } else { 0.0 });
            }
            self.flow_predicted_open
                .with_label_values(&plain(&flow))
                .set(if r.predicted == Predicted::Open {
                    1.0
                } else {
                    0.0
                });
            if let Some(old) = self.observed_state.insert(r.key.clone(), r.observed)
                && old != r.observed
            {
                let _ = self
                    .flow_observed
                    .remove_label_values(&with(&flow, &old.to_string()));
            }
            self.flow_observed
                .with_label_values(&with(&flow, &r.observed.to_string()))
                .set(1.0);
        }
        self.exported = now;

        let mut counts: BTreeMap<(String, Drift), u32> = BTreeMap::new();
        let instances: BTreeSet<String> = results.iter().map(|r| r.key.instance.clone()).collect();
        for r in results {
            *counts
                .entry((
                    r.key.instance.clone(),
                    confirmed.get(&r.key).copied().unwrap_or(Drift::None),
                ))
                .or_default() += 1;
        }
        for instance in self.instances.difference(&instances) {
            for drift in [
                Drift::None,
                Drift::Exposed,
                Drift::Blocked,
                Drift::Inconclusive,
            ] {
                let _ = self
                    .instance_flows
                    .remove_label_values(&[instance, drift.name()]);
            }
        }
        for instance in &instances {
            for drift in [
                Drift::None,
                Drift::Exposed,
                Drift::Blocked,
                Drift::Inconclusive,
            ] {
                let n = counts.get(&(instance.clone(), drift)).copied().unwrap_or(0);
                self.instance_flows
                    .with_label_values(&[instance, drift.name()])
                    .set(f64::from(n));
            }
        }
        self.instances = instances;
    }

    fn remove(&mut self, key: &FlowKey) {
        let flow = labels(key);
        for kind in [Drift::Exposed, Drift::Blocked] {
            let _ = self
                .flow_drift
                .remove_label_values(&with(&flow, kind.name()));
        }
        let _ = self.flow_predicted_open.remove_label_values(&plain(&flow));
        if let Some(state) = self.observed_state.remove(key) {
            let _ = self
                .flow_observed
                .remove_label_values(&with(&flow, &state.to_string()));
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
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
            attempts: 1,
            method: Method::Syn,
            drift,
            rule: None,
        }
    }

    fn series(text: &str, port: u16) -> usize {
        text.lines()
            .filter(|l| l.starts_with("sgprobe_flow_") && l.contains(&format!("port=\"{port}\"")))
            .count()
    }

    #[test]
    fn flow_series_follow_the_plan_and_the_drifting_only_switch() {
        let mut metrics = Metrics::new().expect("registers");
        let a = result(22, Predicted::Open, PortState::Open, Drift::None);
        let b = result(8080, Predicted::Closed, PortState::Open, Drift::Exposed);
        let confirmed: BTreeMap<FlowKey, Drift> = [
            (a.key.clone(), Drift::None),
            (b.key.clone(), Drift::Exposed),
        ]
        .into();
        metrics.record(&[a.clone(), b.clone()], &confirmed, false, 100);
        let text = metrics.render();
        // drift x2, predicted, observed: four series per planned flow.
        assert_eq!((series(&text, 22), series(&text, 8080)), (4, 4), "{text}");
        assert!(text.contains("kind=\"exposed\",port=\"8080\",protocol=\"tcp\"} 1"));

        // Port 22 leaves the plan: its series go, 8080's stay.
        metrics.record(std::slice::from_ref(&b), &confirmed, false, 100);
        let text = metrics.render();
        assert_eq!((series(&text, 22), series(&text, 8080)), (0, 4), "{text}");

        // The observed state changes: the old state's series goes, one remains.
        let c = result(8080, Predicted::Closed, PortState::Filtered, Drift::None);
        metrics.record(
            std::slice::from_ref(&c),
            &[(c.key.clone(), Drift::None)].into(),
            false,
            100,
        );
        let text = metrics.render();
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("sgprobe_flow_observed_state"))
                .count(),
            1,
            "{text}"
        );

        // Drifting only (or past the ceiling): quiet flows export nothing, drifting ones do.
        metrics.record(&[a.clone(), b.clone()], &confirmed, true, 100);
        let text = metrics.render();
        assert_eq!((series(&text, 22), series(&text, 8080)), (0, 4), "{text}");
        assert!(text.contains("sgprobe_flow_series_limited 1"));
        metrics.record(&[a, b], &confirmed, false, 1);
        assert_eq!(
            series(&metrics.render(), 22),
            0,
            "two flows exceed a ceiling of one"
        );
    }
}
