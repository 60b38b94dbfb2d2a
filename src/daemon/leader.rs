//! Leader election on a `coordination.k8s.io/v1` Lease (docs/daemon.md high availability): with two replicas,
//! only the leader polls and writes; followers serve health, metrics and status. The algorithm is
//! client-go's: the holder renews the Lease every `retryPeriod`; a replica takes over only a Lease whose
//! `renewTime + leaseDurationSeconds` has passed; every write carries the Lease's `resourceVersion`, so two
//! replicas racing for it cannot both win; a leader that cannot renew within `renewDeadline` steps down.
//! Even an overlap of two leaders (a paused process waking up) is safe: git's compare-and-swap on push
//! refuses the stale one.
//!
//! [`decide`] is pure; [`run`] talks to the API server through the `kube` crate.
//!
//! Must not: touch the daemon's work (it only publishes "am I the leader" on a watch channel).

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::LeaderElection;
use crate::environment::Environment;

/// Where a pod's service account names its namespace.
const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The election's settings, resolved (`daemon.leaderElection` plus the pod's identity and namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The Lease's name.
    pub name: String,
    pub namespace: String,
    /// This replica (the pod's name).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error(
        "daemon.leaderElection: no namespace (set `namespace`, or POD_NAMESPACE, or run in a pod with a service account)"
    )]
    NoNamespace,
    #[error(
        "daemon.leaderElection: no identity (set `identity`, or POD_NAME, or give the host a name)"
    )]
    NoIdentity,
    #[error("daemon.leaderElection: no Kubernetes client (in-cluster settings or KUBECONFIG)")]
    Client(#[source] kube::Error),
}

impl LeaderError {
    pub fn class(&self) -> crate::error::ErrorClass {
        crate::error::ErrorClass::Permanent
    }
}

impl Settings {
    /// The configured election with the namespace and identity filled in from the pod: `POD_NAMESPACE`
    /// or the service account's namespace file, `POD_NAME` or the host name.
    pub fn resolve(
        election: &LeaderElection,
        environment: &Environment,
    ) -> Result<Settings, LeaderError> {
        let present = |value: Option<&str>| {
            value
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_string)
        };
        let namespace = present(election.namespace.as_deref())
            .or_else(|| present(environment.get("POD_NAMESPACE")))
            .or_else(|| present(std::fs::read_to_string(NAMESPACE_FILE).ok().as_deref()))
            .ok_or(LeaderError::NoNamespace)?;
        let identity = present(election.identity.as_deref())
            .or_else(|| present(environment.get("POD_NAME")))
            .or_else(|| present(environment.get("HOSTNAME")))
            .or_else(|| {
                present(
                    std::fs::read_to_string("/proc/sys/kernel/hostname")
                        .ok()
                        .as_deref(),
                )
            })
            .ok_or(LeaderError::NoIdentity)?;
        Ok(Settings {
            name: election.name.clone(),
            namespace,
            identity,
            lease_duration: election.lease_duration,
            renew_deadline: election.renew_deadline,
            retry_period: election.retry_period,
        })
    }
}

/// What the Lease says, as [`decide`] needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub identity: Option<String>,
    pub renewed: Option<DateTime<Utc>>,
    pub duration: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// No Lease yet: create it, holding it.
    Create,
    /// Ours: renew it.
    Renew,
    /// Someone else's, expired: take it over.
    TakeOver,
    /// Someone else's, still valid: follow.
    Follow,
}

/// What to do with the Lease at `now`, as replica `me`.
pub fn decide(lease: Option<&Holder>, me: &str, now: DateTime<Utc>) -> Action {
    let Some(lease) = lease else {
        return Action::Create;
    };
    match &lease.identity {
        Some(identity) if identity == me => Action::Renew,
        None => Action::TakeOver,
        Some(_) => {
            let expired = lease.renewed.is_none_or(|renewed| {
                renewed
                    + chrono::Duration::from_std(lease.duration).unwrap_or(chrono::Duration::MAX)
                    <= now
            });
            if expired {
                Action::TakeOver
            } else {
                Action::Follow
            }
        }
    }
}

fn holder(lease: &Lease) -> Holder {
    let spec = lease.spec.clone().unwrap_or_default();
    Holder {
        identity: spec.holder_identity.filter(|identity| !identity.is_empty()),
        renewed: spec.renew_time.and_then(|time| {
            DateTime::from_timestamp(time.0.as_second(), time.0.subsec_nanosecond() as u32)
        }),
        duration: Duration::from_secs(
            u64::try_from(spec.lease_duration_seconds.unwrap_or(15)).unwrap_or(15),
        ),
    }
}

fn micro_time(time: DateTime<Utc>) -> MicroTime {
    MicroTime(
        k8s_openapi::jiff::Timestamp::new(time.timestamp(), time.timestamp_subsec_nanos() as i32)
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    )
}

/// Keeps trying to lead until `stop`; publishes leadership on `leading`. Errors of the API server are
/// logged and retried every `retryPeriod`; a leader that has not renewed for `renewDeadline` publishes
/// `false` before anything else happens.
pub async fn run(
    api: Api<Lease>,
    settings: Settings,
    leading: watch::Sender<bool>,
    stop: CancellationToken,
) {
    let me = settings.identity.clone();
    let mut last_renewal: Option<tokio::time::Instant> = None;
    let mut first = true;
    loop {
        let now = Utc::now();
        let outcome = attempt(&api, &settings, &me, now).await;
        let leader = match outcome {
            Ok(true) => {
                last_renewal = Some(tokio::time::Instant::now());
                true
            }
            Ok(false) => {
                last_renewal = None;
                false
            }
            Err(error) => {
                tracing::warn!(error = %crate::reconcile::chain(&error), "leader election: the API server did not answer");
                // Keep leading only while the last renewal is recent enough.
                last_renewal.is_some_and(|at| at.elapsed() < settings.renew_deadline)
            }
        };
        if first || *leading.borrow() != leader {
            first = false;
            if leader {
                tracing::info!(identity = %me, lease = %settings.name, "leader election: leading");
            } else {
                tracing::warn!(identity = %me, lease = %settings.name, "leader election: not leading");
            }
            let _ = leading.send(leader);
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(settings.retry_period) => {}
        }
    }
    // Hand the Lease back so another replica takes over at once.
    if *leading.borrow() {
        let _ = release(&api, &settings, &me).await;
        let _ = leading.send(false);
    }
}

/// One round: whether this replica holds the Lease afterwards.
async fn attempt(
    api: &Api<Lease>,
    settings: &Settings,
    me: &str,
    now: DateTime<Utc>,
) -> Result<bool, kube::Error> {
    let current = api.get_opt(&settings.name).await?;
    let action = decide(current.as_ref().map(holder).as_ref(), me, now);
    let duration_seconds = i32::try_from(settings.lease_duration.as_secs()).unwrap_or(i32::MAX);
    match (action, current) {
        (Action::Create, _) => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(settings.name.clone()),
                    namespace: Some(settings.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me.to_string()),
                    lease_duration_seconds: Some(duration_seconds),
                    acquire_time: Some(micro_time(now)),
                    renew_time: Some(micro_time(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            won(api.create(&PostParams::default(), &lease).await)
        }
        (Action::Follow, _) => Ok(false),
        (Action::Renew | Action::TakeOver, Some(mut lease)) => {
            let mut spec = lease.spec.take().unwrap_or_default();
            if action == Action::TakeOver {
                spec.holder_identity = Some(me.to_string());
                spec.acquire_time = Some(micro_time(now));
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.renew_time = Some(micro_time(now));
            spec.lease_duration_seconds = Some(duration_seconds);
            lease.spec = Some(spec);
            // `replace` sends the resourceVersion read above: a concurrent write makes it a conflict.
            won(api
                .replace(&settings.name, &PostParams::default(), &lease)
                .await)
        }
        (Action::Renew | Action::TakeOver, None) => Ok(false),
    }
}

/// A conflict (someone else wrote first) is a lost round, not an error.
fn won<T>(result: Result<T, kube::Error>) -> Result<bool, kube::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(error) => Err(error),
    }
}

/// Clears the holder so a follower does not wait for the Lease to expire.
async fn release(api: &Api<Lease>, settings: &Settings, me: &str) -> Result<(), kube::Error> {
    let Some(mut lease) = api.get_opt(&settings.name).await? else {
        return Ok(());
    };
    let mut spec = lease.spec.take().unwrap_or_default();
    if spec.holder_identity.as_deref() != Some(me) {
        return Ok(());
    }
    spec.holder_identity = None;
    lease.spec = Some(spec);
    api.replace(&settings.name, &PostParams::default(), &lease)
        .await
        .map(|_| ())
}

/// A client for the namespace's Leases: in-cluster settings, else `KUBECONFIG` / `~/.kube/config`.
pub async fn leases(namespace: &str) -> Result<Api<Lease>, LeaderError> {
    let client = kube::Client::try_default()
        .await
        .map_err(LeaderError::Client)?;
    Ok(Api::namespaced(client, namespace))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, second).unwrap()
    }

    fn held_by(identity: &str, renewed: u32) -> Holder {
        Holder {
            identity: Some(identity.into()),
            renewed: Some(at(renewed)),
            duration: Duration::from_secs(15),
        }
    }

    #[test]
    fn no_lease_is_created_and_ours_is_renewed() {
        assert_eq!(decide(None, "a", at(0)), Action::Create);
        assert_eq!(decide(Some(&held_by("a", 0)), "a", at(50)), Action::Renew);
    }

    #[test]
    fn another_holder_is_followed_until_its_lease_expires() {
        assert_eq!(decide(Some(&held_by("b", 0)), "a", at(14)), Action::Follow);
        assert_eq!(
            decide(Some(&held_by("b", 0)), "a", at(15)),
            Action::TakeOver
        );
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let released = Holder {
            identity: None,
            renewed: Some(at(0)),
            duration: Duration::from_secs(15),
        };
        assert_eq!(decide(Some(&released), "a", at(1)), Action::TakeOver);
    }

    #[test]
    fn time_round_trips_through_micro_time() {
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
            + chrono::Duration::microseconds(5);
        let lease = Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some("a".into()),
                renew_time: Some(micro_time(now)),
                lease_duration_seconds: Some(10),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        };
        let read = holder(&lease);
        assert_eq!(read.renewed, Some(now));
        assert_eq!(read.duration, Duration::from_secs(10));
    }
}
