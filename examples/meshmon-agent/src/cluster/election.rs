//! Leader election between cluster-agent replicas: the pure decision logic (no I/O, no
//! clock; every call takes `now`). The Lease I/O is in `super::lease` (feature `kube`).
//!
//! The rules are client-go's `tools/leaderelection` (which the Datadog Cluster Agent's
//! `pkg/util/kubernetes/apiserver/leaderelection` drives) over a `coordination.k8s.io/v1`
//! Lease (<https://kubernetes.io/docs/concepts/architecture/leases/>):
//!
//! - The lease is **free** when it does not exist, has no `holderIdentity`, or has expired:
//!   `renewTime + leaseDurationSeconds` has passed by this replica's clock, or (client-go's
//!   rule, which guards against a holder whose clock runs ahead) the record has not changed
//!   for a whole `leaseDurationSeconds` since this replica first saw it.
//! - A free lease is taken: `holderIdentity` = this replica, `acquireTime` = `renewTime` =
//!   now, `leaseTransitions` + 1 when the holder changes. A lease this replica holds is
//!   renewed (`renewTime` = now) every [`Elector::retry_period`] (a third of the lease
//!   duration). Writes carry the `resourceVersion` read: a `409 Conflict` means another
//!   replica wrote first, and the lease is read again.
//! - A leader whose renewals keep failing steps down once [`Elector::renew_deadline`] (two
//!   thirds of the lease duration, client-go's 10 s of 15 s) has passed since its last
//!   successful write, so it stops dispatching before anyone else may take the lease.
//!
//! Clocks of the replicas are assumed to agree to within a renew period (NTP), as
//! client-go assumes.

use std::time::Duration;

use meshmon_core::Timestamp;

use crate::config::ClusterAgentConfig;

/// The Lease annotation in which the leader advertises the URL followers forward to.
pub const LEADER_URL_ANNOTATION: &str = "meshmon.io/leader-url";

/// What the Lease says (its `spec` and the leader-URL annotation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseRecord {
    /// `holderIdentity` (empty: released).
    pub holder: String,
    /// `leaseDurationSeconds`.
    pub lease_duration: Duration,
    /// `acquireTime`.
    pub acquire_time: Option<Timestamp>,
    /// `renewTime`.
    pub renew_time: Option<Timestamp>,
    /// `leaseTransitions`.
    pub transitions: u32,
    /// The `meshmon.io/leader-url` annotation.
    pub leader_url: String,
}

/// What to do with the Lease after reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No Lease: create it holding it (`POST`).
    Create(LeaseRecord),
    /// The lease is free: take it over (`PUT` with the read `resourceVersion`).
    Acquire(LeaseRecord),
    /// This replica holds it: renew it (`PUT` with the read `resourceVersion`).
    Renew(LeaseRecord),
    /// Another replica holds a valid lease: follow it.
    Follow {
        /// The leader's identity.
        holder: String,
        /// The URL it advertises (empty: none).
        leader_url: String,
        /// When the lease expires unless renewed (by this replica's clock).
        expires: Timestamp,
    },
}

/// The role of this replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Dispatches; since when.
    Leader {
        /// When this replica became leader.
        since: Timestamp,
    },
    /// Forwards to `leader` (`None`: no leader known).
    Follower {
        /// The leader's identity and URL.
        leader: Option<(String, String)>,
    },
}

impl Role {
    /// Whether this replica leads.
    pub fn is_leader(&self) -> bool {
        matches!(self, Role::Leader { .. })
    }
}

/// What identifies one write of the Lease: (holder, `renewTime`, `leaseTransitions`).
type Observed = (String, Option<Timestamp>, u32);

/// One replica's view of the election.
#[derive(Clone, Debug)]
pub struct Elector {
    identity: String,
    url: String,
    lease_duration: Duration,
    /// (holder, renewTime, transitions) last read, and when it was first read so.
    observed: Option<(Observed, Timestamp)>,
    /// Last successful write of the Lease by this replica while leading.
    last_renew: Option<Timestamp>,
    role: Role,
    transitions: u32,
}

/// Checks the `cluster_agent.leader_*` keys: `Err((key, message))`.
pub fn validate(c: &ClusterAgentConfig) -> Result<(), (&'static str, String)> {
    let d = c.leader_lease_duration.0;
    if d < Duration::from_secs(1) || d.subsec_nanos() != 0 || d.as_secs() > i32::MAX as u64 {
        return Err((
            "cluster_agent.leader_lease_duration",
            format!("must be whole seconds, at least 1s (leaseDurationSeconds), got {d:?}"),
        ));
    }
    let name = &c.leader_lease_name;
    let dns = |s: &str| {
        !s.is_empty()
            && s.len() <= 253
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    if !dns(name) {
        return Err((
            "cluster_agent.leader_lease_name",
            format!("{name:?} is not a Kubernetes object name (lower case, digits, '-', '.')"),
        ));
    }
    let ns = &c.leader_lease_namespace;
    if !ns.is_empty() && !dns(ns) {
        return Err((
            "cluster_agent.leader_lease_namespace",
            format!("{ns:?} is not a Kubernetes namespace name"),
        ));
    }
    let u = &c.advertise_url;
    if !(u.is_empty() || u.starts_with("http://") || u.starts_with("https://")) {
        return Err((
            "cluster_agent.advertise_url",
            format!("{:?} is not an http(s) URL", c.advertise_url),
        ));
    }
    Ok(())
}

impl Elector {
    /// An elector for `identity`, advertising `url`, with `lease_duration`.
    pub fn new(identity: &str, url: &str, lease_duration: Duration) -> Self {
        Elector {
            identity: identity.to_owned(),
            url: url.to_owned(),
            lease_duration,
            observed: None,
            last_renew: None,
            role: Role::Follower { leader: None },
            transitions: 0,
        }
    }

    /// This replica's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// How often to read and renew the lease: a third of its duration.
    pub fn retry_period(&self) -> Duration {
        (self.lease_duration / 3).max(Duration::from_millis(100))
    }

    /// How long a leader keeps leading without a successful renewal: two thirds of the
    /// lease duration.
    pub fn renew_deadline(&self) -> Duration {
        self.lease_duration * 2 / 3
    }

    /// The current role.
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// `leaseTransitions` last read or written.
    pub fn transitions(&self) -> u32 {
        self.transitions
    }

    /// Decides what to do with the Lease read at `now` (`None`: it does not exist).
    pub fn decide(&mut self, lease: Option<&LeaseRecord>, now: Timestamp) -> Decision {
        let mine = |acquire: Option<Timestamp>, transitions: u32| LeaseRecord {
            holder: self.identity.clone(),
            lease_duration: self.lease_duration,
            acquire_time: acquire.or(Some(now)),
            renew_time: Some(now),
            transitions,
            leader_url: self.url.clone(),
        };
        let Some(l) = lease else {
            self.observed = None;
            return Decision::Create(mine(Some(now), 0));
        };
        self.transitions = l.transitions;
        let key = (l.holder.clone(), l.renew_time, l.transitions);
        let first_seen = match &self.observed {
            Some((k, at)) if *k == key => *at,
            _ => {
                self.observed = Some((key, now));
                now
            }
        };
        if l.holder == self.identity {
            return Decision::Renew(mine(l.acquire_time, l.transitions));
        }
        let duration = if l.lease_duration.is_zero() {
            self.lease_duration
        } else {
            l.lease_duration
        };
        let by_renew = l.renew_time.map(|r| r.saturating_add(duration));
        let by_observation = first_seen.saturating_add(duration);
        let expires = match by_renew {
            Some(r) => r.min(by_observation),
            None => now,
        };
        if l.holder.is_empty() || now >= expires {
            return Decision::Acquire(mine(Some(now), l.transitions.saturating_add(1)));
        }
        // Someone else leads: a leader that is not us must not think it still is.
        self.role = Role::Follower {
            leader: Some((l.holder.clone(), l.leader_url.clone())),
        };
        self.last_renew = None;
        Decision::Follow {
            holder: l.holder.clone(),
            leader_url: l.leader_url.clone(),
            expires,
        }
    }

    /// The write of a `Create`, `Acquire` or `Renew` decision succeeded at `now`.
    pub fn written(&mut self, record: &LeaseRecord, now: Timestamp) {
        self.last_renew = Some(now);
        self.transitions = record.transitions;
        self.observed = Some((
            (record.holder.clone(), record.renew_time, record.transitions),
            now,
        ));
        if !self.role.is_leader() {
            self.role = Role::Leader { since: now };
        }
    }

    /// A read or write failed at `now` (an API error, or a `409 Conflict`): a leader past
    /// its renew deadline steps down. Returns whether it did.
    pub fn failed(&mut self, now: Timestamp) -> bool {
        if !self.role.is_leader() {
            return false;
        }
        let last = self.last_renew.unwrap_or(now);
        if now.saturating_since(last) >= self.renew_deadline() {
            self.role = Role::Follower { leader: None };
            self.last_renew = None;
            return true;
        }
        false
    }

    /// Gives the lease up (graceful stop): the record to write, holder cleared and the
    /// duration kept, so a follower takes over on its next read; `None` when not leading.
    pub fn release(&mut self, now: Timestamp) -> Option<LeaseRecord> {
        if !self.role.is_leader() {
            return None;
        }
        self.role = Role::Follower { leader: None };
        self.last_renew = None;
        Some(LeaseRecord {
            holder: String::new(),
            lease_duration: self.lease_duration,
            acquire_time: None,
            renew_time: Some(now),
            transitions: self.transitions,
            leader_url: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: f64) -> Timestamp {
        Timestamp::from_nanos((s * 1e9) as i64)
    }

    fn held(holder: &str, renew: f64, transitions: u32) -> LeaseRecord {
        LeaseRecord {
            holder: holder.into(),
            lease_duration: Duration::from_secs(60),
            acquire_time: Some(t(renew)),
            renew_time: Some(t(renew)),
            transitions,
            leader_url: format!("http://{holder}:5005"),
        }
    }

    fn elector(id: &str) -> Elector {
        Elector::new(id, &format!("http://{id}:5005"), Duration::from_secs(60))
    }

    #[test]
    fn creates_a_missing_lease_and_leads_once_written() {
        let mut e = elector("a");
        let d = e.decide(None, t(100.0));
        let Decision::Create(r) = d else {
            panic!("{d:?}")
        };
        assert_eq!(r.holder, "a");
        assert_eq!(r.transitions, 0);
        assert_eq!(r.renew_time, Some(t(100.0)));
        assert_eq!(r.leader_url, "http://a:5005");
        assert!(!e.role().is_leader(), "not before the write succeeded");
        e.written(&r, t(100.0));
        assert_eq!(e.role(), &Role::Leader { since: t(100.0) });
        assert_eq!(e.retry_period(), Duration::from_secs(20));
        assert_eq!(e.renew_deadline(), Duration::from_secs(40));
    }

    #[test]
    fn follows_a_valid_lease_and_takes_it_when_renew_time_plus_duration_passed() {
        let mut e = elector("b");
        let l = held("a", 100.0, 3);
        match e.decide(Some(&l), t(159.9)) {
            Decision::Follow {
                holder,
                leader_url,
                expires,
            } => {
                assert_eq!(holder, "a");
                assert_eq!(leader_url, "http://a:5005");
                assert_eq!(expires, t(160.0));
            }
            d => panic!("{d:?}"),
        }
        assert_eq!(
            e.role(),
            &Role::Follower {
                leader: Some(("a".into(), "http://a:5005".into()))
            }
        );
        // At renewTime + leaseDurationSeconds exactly it is free.
        let Decision::Acquire(r) = e.decide(Some(&l), t(160.0)) else {
            panic!()
        };
        assert_eq!(r.holder, "b");
        assert_eq!(r.transitions, 4, "leaseTransitions + 1 on takeover");
        assert_eq!(r.acquire_time, Some(t(160.0)));
        assert_eq!(r.lease_duration, Duration::from_secs(60));
    }

    #[test]
    fn a_lease_dated_in_the_future_expires_a_duration_after_it_was_first_seen() {
        // The holder's clock runs 1 h ahead and it died: renewTime + duration is far off,
        // but the record has not changed for a whole duration as observed here.
        let mut e = elector("b");
        let l = held("a", 3700.0, 0);
        assert!(matches!(
            e.decide(Some(&l), t(100.0)),
            Decision::Follow { .. }
        ));
        assert!(matches!(
            e.decide(Some(&l), t(159.0)),
            Decision::Follow { .. }
        ));
        assert!(matches!(e.decide(Some(&l), t(160.0)), Decision::Acquire(_)));
        // A renewal (renewTime moved) restarts the observation.
        let mut e = elector("b");
        assert!(matches!(
            e.decide(Some(&l), t(100.0)),
            Decision::Follow { .. }
        ));
        let renewed = held("a", 3720.0, 0);
        assert!(matches!(
            e.decide(Some(&renewed), t(150.0)),
            Decision::Follow { .. }
        ));
        assert!(matches!(
            e.decide(Some(&renewed), t(200.0)),
            Decision::Follow { .. }
        ));
        assert!(matches!(
            e.decide(Some(&renewed), t(210.0)),
            Decision::Acquire(_)
        ));
    }

    #[test]
    fn released_or_holderless_leases_are_free() {
        let mut e = elector("b");
        let mut l = held("", 100.0, 7);
        l.leader_url.clear();
        let Decision::Acquire(r) = e.decide(Some(&l), t(101.0)) else {
            panic!()
        };
        assert_eq!(r.transitions, 8);
        // No renewTime at all: free.
        let l = LeaseRecord {
            holder: "a".into(),
            ..LeaseRecord::default()
        };
        assert!(matches!(e.decide(Some(&l), t(1.0)), Decision::Acquire(_)));
    }

    #[test]
    fn renews_its_own_lease_keeping_acquire_time_and_transitions() {
        let mut e = elector("a");
        let l = held("a", 100.0, 2);
        let Decision::Renew(r) = e.decide(Some(&l), t(120.0)) else {
            panic!()
        };
        assert_eq!(r.acquire_time, Some(t(100.0)));
        assert_eq!(r.renew_time, Some(t(120.0)));
        assert_eq!(r.transitions, 2);
        // Even past expiry (a restart of the same pod name): renew, no transition.
        let Decision::Renew(r) = e.decide(Some(&l), t(500.0)) else {
            panic!()
        };
        assert_eq!(r.transitions, 2);
    }

    #[test]
    fn the_loser_of_a_409_race_follows_the_winner_on_its_next_read() {
        // Both read "no Lease" and try to create it; the API server takes one POST.
        let (mut a, mut b) = (elector("a"), elector("b"));
        let Decision::Create(ra) = a.decide(None, t(0.0)) else {
            panic!()
        };
        assert!(matches!(b.decide(None, t(0.0)), Decision::Create(_)));
        a.written(&ra, t(0.0));
        // b's POST is answered 409 Conflict: it is no leader, and nothing to step down from.
        assert!(!b.failed(t(0.0)));
        assert!(!b.role().is_leader());
        match b.decide(Some(&ra), t(0.02)) {
            Decision::Follow { holder, .. } => assert_eq!(holder, "a"),
            d => panic!("{d:?}"),
        }
        // Two followers both see the lease expire and both PUT with the same
        // resourceVersion: the loser's 409 leaves it a follower, and it follows the winner.
        let (mut c, mut d) = (elector("c"), elector("d"));
        let Decision::Acquire(rc) = c.decide(Some(&ra), t(61.0)) else {
            panic!()
        };
        assert!(matches!(d.decide(Some(&ra), t(61.0)), Decision::Acquire(_)));
        c.written(&rc, t(61.0));
        assert!(!d.failed(t(61.0)));
        assert!(!d.role().is_leader());
        assert!(matches!(
            d.decide(Some(&rc), t(61.1)),
            Decision::Follow { .. }
        ));
        // A leader whose renewal meets a 409 (someone wrote in between) stays leader until
        // its renew deadline, and follows whoever holds the lease when it reads it again.
        assert!(!c.failed(t(81.0)));
        assert!(c.role().is_leader());
        let taken = held("d", 81.0, 2);
        assert!(matches!(
            c.decide(Some(&taken), t(81.1)),
            Decision::Follow { .. }
        ));
        assert!(!c.role().is_leader());
    }

    #[test]
    fn a_leader_steps_down_when_renewals_fail_past_the_deadline() {
        let mut e = elector("a");
        let Decision::Create(r) = e.decide(None, t(0.0)) else {
            panic!()
        };
        e.written(&r, t(0.0));
        assert!(!e.failed(t(20.0)), "one failed renewal is tolerated");
        assert!(!e.failed(t(39.9)));
        assert!(e.failed(t(40.0)), "renew deadline (2/3 of 60 s) passed");
        assert_eq!(e.role(), &Role::Follower { leader: None });
        assert!(!e.failed(t(41.0)), "a follower has nothing to lose");
        // The deadline is before anyone else may take the lease (renewTime + 60 s).
        assert!(e.renew_deadline() < Duration::from_secs(60));
    }

    #[test]
    fn a_leader_seeing_another_holder_becomes_a_follower() {
        let mut e = elector("a");
        let Decision::Create(r) = e.decide(None, t(0.0)) else {
            panic!()
        };
        e.written(&r, t(0.0));
        assert!(e.role().is_leader());
        let stolen = held("b", 61.0, 1);
        assert!(matches!(
            e.decide(Some(&stolen), t(62.0)),
            Decision::Follow { .. }
        ));
        assert!(!e.role().is_leader());
        assert_eq!(e.transitions(), 1);
    }

    #[test]
    fn release_clears_the_holder() {
        let mut e = elector("a");
        assert_eq!(e.release(t(1.0)), None);
        let Decision::Create(r) = e.decide(None, t(0.0)) else {
            panic!()
        };
        e.written(&r, t(0.0));
        let r = e.release(t(5.0)).unwrap();
        assert_eq!(r.holder, "");
        assert!(!e.role().is_leader());
        // Another replica takes the released lease at once.
        let mut b = elector("b");
        assert!(matches!(b.decide(Some(&r), t(5.1)), Decision::Acquire(_)));
    }

    #[test]
    fn validation_names_the_key() {
        let mut c = ClusterAgentConfig::default();
        assert!(validate(&c).is_ok());
        c.leader_lease_duration = crate::config::Dur(Duration::from_millis(1500));
        assert_eq!(
            validate(&c).unwrap_err().0,
            "cluster_agent.leader_lease_duration"
        );
        c.leader_lease_duration = crate::config::Dur::secs(2);
        c.leader_lease_name = "Bad_Name".into();
        assert_eq!(
            validate(&c).unwrap_err().0,
            "cluster_agent.leader_lease_name"
        );
        c.leader_lease_name = "x".into();
        c.advertise_url = "10.0.0.1:5005".into();
        assert_eq!(validate(&c).unwrap_err().0, "cluster_agent.advertise_url");
    }
}
