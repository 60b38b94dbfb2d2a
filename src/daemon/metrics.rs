//! The daemon's metrics (docs/daemon.md), in the Prometheus text exposition through `prometheus-client`:
//! `tagwatch_` prefix, `_total` only on counters, `_seconds` histograms, label names only from the
//! contract's list — and never a tag or digest as a label value (bounded cardinality: the values are
//! names from the config, endpoint names and fixed outcome words).
//!
//! Must not: decide anything, or be a global (the daemon owns one [`Metrics`] and hands it out).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegistryLabels {
    pub registry: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ImageLabels {
    pub image: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RepositoryLabels {
    pub repository: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RepositoryOutcome {
    pub repository: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RepositoryKind {
    pub repository: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BumpLabels {
    pub repository: String,
    pub policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    pub endpoint: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub repository: String,
    pub class: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric of the daemon. Cheap to clone (each family is shared).
#[derive(Clone)]
pub struct Metrics {
    pub registry_requests: Family<RegistryLabels, Counter>,
    pub tag_listings: Family<ImageLabels, Counter>,
    pub bumps: Family<BumpLabels, Counter>,
    pub commits: Family<RepositoryLabels, Counter>,
    /// `outcome`: `pushed` or `rejected`.
    pub pushes: Family<RepositoryOutcome, Counter>,
    /// `kind`: `opened`, `updated`, `closed`, `merged`.
    pub pull_requests: Family<RepositoryKind, Counter>,
    pub webhook_events: Family<WebhookLabels, Counter>,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub reconcile_duration: Family<RepositoryLabels, Histogram>,
    /// From a webhook's arrival to the push that carried its image's bump.
    pub push_to_commit: Histogram,
    /// `kind`: `held`, `rollback`, `waiting`, `soaking`.
    pub targets: Family<RepositoryKind, Gauge>,
    pub last_success: Family<RepositoryLabels, FloatGauge>,
    pub ready: Gauge,
    /// 1 while this replica leads (always without leader election).
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let seconds = || Histogram::new(exponential_buckets(0.005, 2.0, 14));
        Metrics {
            registry_requests: Family::default(),
            tag_listings: Family::default(),
            bumps: Family::default(),
            commits: Family::default(),
            pushes: Family::default(),
            pull_requests: Family::default(),
            webhook_events: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 14))
            }),
            push_to_commit: seconds(),
            targets: Family::default(),
            last_success: Family::default(),
            ready: Gauge::default(),
            leader: Gauge::default(),
        }
    }
}

impl Metrics {
    /// A registry with every metric under the `tagwatch_` prefix.
    pub fn registry(&self) -> Registry {
        let mut registry = Registry::with_prefix("tagwatch");
        registry.register(
            "registry_requests",
            "Registry requests by registry and outcome",
            self.registry_requests.clone(),
        );
        registry.register(
            "tag_listings",
            "Tag listings by image and outcome (changed, unchanged, failed)",
            self.tag_listings.clone(),
        );
        registry.register("bumps", "Bumps written", self.bumps.clone());
        registry.register(
            "commits",
            "Commits created and pushed",
            self.commits.clone(),
        );
        registry.register(
            "pushes",
            "Pushes by outcome (pushed, rejected)",
            self.pushes.clone(),
        );
        registry.register(
            "pull_requests",
            "Pull requests by kind (opened, updated, closed, merged)",
            self.pull_requests.clone(),
        );
        registry.register(
            "webhook_events",
            "Webhook requests by endpoint and outcome",
            self.webhook_events.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles by repository and error class",
            self.reconcile_errors.clone(),
        );
        registry.register_with_unit(
            "reconcile_duration",
            "Time to reconcile one repository",
            Unit::Seconds,
            self.reconcile_duration.clone(),
        );
        registry.register_with_unit(
            "push_to_commit",
            "From a registry webhook to the pushed commit that carries its bump",
            Unit::Seconds,
            self.push_to_commit.clone(),
        );
        registry.register(
            "targets",
            "Targets left alone by kind (held, rollback, waiting, soaking)",
            self.targets.clone(),
        );
        registry.register_with_unit(
            "last_success",
            "Unix time of the last successful reconcile of each repository",
            Unit::Seconds,
            self.last_success.clone(),
        );
        registry.register(
            "ready",
            "1 once every repository completed a cycle",
            self.ready.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the Lease and does the work (always 1 without leader election)",
            self.leader.clone(),
        );
        registry
    }

    /// The text exposition of `registry`.
    pub fn encode(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        let metrics = Metrics::default();
        metrics
            .pushes
            .get_or_create(&RepositoryOutcome {
                repository: "prod".into(),
                outcome: "pushed".into(),
            })
            .inc();
        metrics.push_to_commit.observe(0.1);
        metrics
            .last_success
            .get_or_create(&RepositoryLabels {
                repository: "prod".into(),
            })
            .set(1.0);
        let text = Metrics::encode(&metrics.registry());
        assert!(
            text.contains("tagwatch_pushes_total{repository=\"prod\",outcome=\"pushed\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("tagwatch_push_to_commit_seconds_bucket"),
            "{text}"
        );
        assert!(
            text.contains("tagwatch_last_success_seconds{repository=\"prod\"} 1"),
            "{text}"
        );
        // `_total` only on counters; every family carries the prefix; labels only from the contract.
        let allowed = [
            "policy",
            "image",
            "repository",
            "registry",
            "endpoint",
            "outcome",
            "kind",
            "class",
            "leader",
            "le",
        ];
        for line in text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
        {
            assert!(line.starts_with("tagwatch_"), "{line}");
            if let Some((_, labels)) = line.split_once('{') {
                for pair in labels
                    .trim_end_matches(|c| c != '}')
                    .trim_end_matches('}')
                    .split(',')
                {
                    let name = pair.split('=').next().unwrap();
                    assert!(allowed.contains(&name), "label {name} in {line}");
                }
            }
        }
        let counters: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("# TYPE") && line.ends_with(" counter"))
            .map(|line| line.split_whitespace().nth(2).unwrap())
            .collect();
        for line in text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
        {
            let name = line.split(['{', ' ']).next().unwrap();
            let counter = counters.iter().any(|family| name.starts_with(family));
            assert_eq!(name.ends_with("_total"), counter, "{line}");
        }
    }
}
