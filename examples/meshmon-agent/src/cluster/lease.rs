//! Leader election's I/O (feature `kube`): reads and writes the `coordination.k8s.io/v1`
//! Lease (`GET`, `POST`, `PUT` on `/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}`)
//! and runs the election loop; the decisions are [`super::election`]'s.
//!
//! Every write carries the `resourceVersion` read before it (optimistic concurrency): the
//! API server answers `409 Conflict` when another replica wrote in between, and this
//! replica reads the Lease again at once. Each API call is bounded by the retry period.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use meshmon_core::Timestamp;
use tokio::sync::watch;

use super::election::{Decision, Elector, LEADER_URL_ANNOTATION, LeaseRecord};
use super::server::ClusterState;
use crate::run::stopped;

/// Where the service account's namespace is mounted in a pod.
const SA_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The Lease's namespace: `configured`, else the service account's, else `default`.
pub fn namespace(configured: &str) -> String {
    if !configured.is_empty() {
        return configured.to_owned();
    }
    std::fs::read_to_string(SA_NAMESPACE)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// The outcome of a write.
#[derive(Debug, PartialEq, Eq)]
pub enum Write {
    /// Written.
    Done,
    /// `409 Conflict`: someone else wrote first.
    Conflict,
}

/// One Lease in the API server.
pub struct LeaseLock {
    api: kube::Api<Lease>,
    name: String,
    /// `namespace/name`, for messages.
    pub what: String,
}

fn micro(t: Timestamp) -> Option<MicroTime> {
    k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(t.as_nanos()))
        .ok()
        .map(MicroTime)
}

fn from_micro(t: &MicroTime) -> Option<Timestamp> {
    i64::try_from(t.0.as_nanosecond())
        .ok()
        .map(Timestamp::from_nanos)
}

/// A Lease's record.
pub fn record(l: &Lease) -> LeaseRecord {
    let spec = l.spec.clone().unwrap_or_default();
    LeaseRecord {
        holder: spec.holder_identity.unwrap_or_default(),
        lease_duration: Duration::from_secs(
            u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
        ),
        acquire_time: spec.acquire_time.as_ref().and_then(from_micro),
        renew_time: spec.renew_time.as_ref().and_then(from_micro),
        transitions: u32::try_from(spec.lease_transitions.unwrap_or(0)).unwrap_or(0),
        leader_url: l
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(LEADER_URL_ANNOTATION).cloned())
            .unwrap_or_default(),
    }
}

impl LeaseLock {
    /// The Lease `namespace/name` through `client`.
    pub fn new(client: kube::Client, namespace: &str, name: &str) -> Self {
        LeaseLock {
            api: kube::Api::namespaced(client, namespace),
            name: name.to_owned(),
            what: format!("{namespace}/{name}"),
        }
    }

    fn object(
        &self,
        r: &LeaseRecord,
        resource_version: Option<&str>,
        base: Option<&Lease>,
    ) -> Lease {
        let mut metadata = base.map(|b| b.metadata.clone()).unwrap_or(ObjectMeta {
            name: Some(self.name.clone()),
            ..ObjectMeta::default()
        });
        metadata.resource_version = resource_version.map(str::to_owned);
        let ann = metadata.annotations.get_or_insert_with(BTreeMap::new);
        if r.leader_url.is_empty() {
            ann.remove(LEADER_URL_ANNOTATION);
        } else {
            ann.insert(LEADER_URL_ANNOTATION.into(), r.leader_url.clone());
        }
        let mut spec = base.and_then(|b| b.spec.clone()).unwrap_or_default();
        spec = LeaseSpec {
            holder_identity: Some(r.holder.clone()),
            lease_duration_seconds: Some(
                i32::try_from(r.lease_duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: r.acquire_time.and_then(micro),
            renew_time: r.renew_time.and_then(micro),
            lease_transitions: Some(i32::try_from(r.transitions).unwrap_or(i32::MAX)),
            ..spec
        };
        Lease {
            metadata,
            spec: Some(spec),
        }
    }

    /// Reads the Lease (`None`: it does not exist).
    pub async fn get(&self) -> Result<Option<Lease>, kube::Error> {
        self.api.get_opt(&self.name).await
    }

    /// Creates the Lease holding `r` (`POST`); an existing one is a conflict.
    pub async fn create(&self, r: &LeaseRecord) -> Result<Write, kube::Error> {
        match self
            .api
            .create(&PostParams::default(), &self.object(r, None, None))
            .await
        {
            Ok(_) => Ok(Write::Done),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Write::Conflict),
            Err(e) => Err(e),
        }
    }

    /// Replaces `current` by `r` (`PUT` with `current`'s `resourceVersion`).
    pub async fn replace(&self, current: &Lease, r: &LeaseRecord) -> Result<Write, kube::Error> {
        let rv = current.metadata.resource_version.as_deref();
        match self
            .api
            .replace(
                &self.name,
                &PostParams::default(),
                &self.object(r, rv, Some(current)),
            )
            .await
        {
            Ok(_) => Ok(Write::Done),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Write::Conflict),
            Err(e) => Err(e),
        }
    }
}

async fn bounded<T>(
    limit: Duration,
    f: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

/// One read-decide-write round at `now`; `Ok(true)`: a conflict, read again at once.
async fn round(
    lock: &LeaseLock,
    e: &mut Elector,
    now: Timestamp,
    limit: Duration,
) -> Result<bool, String> {
    let current = bounded(limit, lock.get()).await?;
    let rec = current.as_ref().map(record);
    let decision = e.decide(rec.as_ref(), now);
    let (outcome, written) = match &decision {
        Decision::Create(r) => (bounded(limit, lock.create(r)).await?, r),
        Decision::Acquire(r) | Decision::Renew(r) => {
            let Some(cur) = current.as_ref() else {
                return Err("lease vanished".into());
            };
            (bounded(limit, lock.replace(cur, r)).await?, r)
        }
        Decision::Follow { .. } => return Ok(false),
    };
    match outcome {
        Write::Done => {
            e.written(written, now);
            Ok(false)
        }
        Write::Conflict => Ok(true),
    }
}

/// Runs the election until `shutdown`; then releases the lease if held.
pub async fn run(
    lock: LeaseLock,
    mut e: Elector,
    st: Arc<ClusterState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = e.retry_period();
    let mut last_error: Option<String> = None;
    loop {
        let now = st.clock.now();
        let mut again = false;
        match round(&lock, &mut e, now, limit).await {
            Ok(conflict) => {
                if conflict {
                    st.lease_event("conflict");
                    e.failed(now);
                    again = true;
                }
                last_error = None;
            }
            Err(m) => {
                st.lease_event("error");
                if last_error.as_deref() != Some(m.as_str()) {
                    st.log("WARN", &format!("lease {}: {m}", lock.what));
                }
                last_error = Some(m);
                e.failed(now);
            }
        }
        st.set_role(e.role().clone(), e.transitions(), now);
        let pause = if again {
            Duration::from_millis(20)
        } else {
            e.retry_period()
        };
        tokio::select! {
            _ = stopped(&mut shutdown) => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
    // Graceful stop: give the lease up so a follower takes over on its next read
    // (client-go's ReleaseOnCancel).
    let now = st.clock.now();
    if let Some(r) = e.release(now) {
        let released = async {
            let cur = lock.get().await?;
            match cur {
                Some(cur) if record(&cur).holder == e.identity() => {
                    lock.replace(&cur, &r).await.map(|_| ())
                }
                _ => Ok(()),
            }
        };
        if let Err(m) = bounded(limit, released).await {
            st.log("WARN", &format!("releasing lease {}: {m}", lock.what));
        }
        st.set_role(e.role().clone(), e.transitions(), now);
    }
}
