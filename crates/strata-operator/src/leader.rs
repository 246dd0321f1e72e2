//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several operator replicas
//! exactly one runs the controllers. Optimistic concurrency does the locking: every write
//! carries the `resourceVersion` that was read, so two candidates cannot both win a round.
//! Expiry is judged on this process's own clock from when it last *saw the record change*
//! (as client-go does), never by comparing another host's timestamps with ours, so clock skew
//! between nodes cannot hand the Lease to two holders.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Timing of the election. Defaults follow client-go: 15 s lease, renew every 2 s and give up
/// leadership when a renewal has not succeeded for 10 s.
#[derive(Debug, Clone)]
pub struct LeaseTiming {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    #[error("leadership lost: the Lease could not be renewed within {0:?}")]
    Lost(Duration),
}

/// A candidate for the Lease `name` in the namespace of `api`.
pub struct LeaderElection {
    api: Api<Lease>,
    name: String,
    holder: String,
    timing: LeaseTiming,
    /// The record last read and the local instant it was first seen, for skew-free expiry.
    observed: Option<(LeaseSpec, Instant)>,
}

/// Outcome of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Leading,
    Following,
}

impl LeaderElection {
    pub fn new(api: Api<Lease>, name: &str, holder: &str, timing: LeaseTiming) -> Self {
        Self {
            api,
            name: name.to_owned(),
            holder: holder.to_owned(),
            timing,
            observed: None,
        }
    }

    /// Runs the election until `shutdown`. `leading` turns `true` once the Lease is held. Once
    /// held, failing to renew it within the renew deadline returns [`ElectionError::Lost`]: the
    /// caller must stop acting (the process exits and restarts as a candidate). On shutdown
    /// while leading, the Lease is released so a standby takes over at once.
    pub async fn run(
        mut self,
        leading: watch::Sender<bool>,
        shutdown: CancellationToken,
    ) -> Result<(), ElectionError> {
        let mut last_renewal: Option<Instant> = None;
        loop {
            // Stamped before the request: a slow call must not extend our own deadline.
            let attempted_at = Instant::now();
            // Bounded: a hung API call must never keep a leader acting past its renew deadline
            // while a standby, seeing no renewals, takes the Lease.
            let budget = match (last_renewal, *leading.borrow()) {
                (Some(at), true) => self.timing.renew_deadline.saturating_sub(at.elapsed()),
                _ => self.timing.renew_deadline,
            };
            let attempt = match tokio::time::timeout(budget, self.try_acquire_or_renew()).await {
                Ok(result) => Some(result),
                Err(_) => {
                    if *leading.borrow() {
                        return Err(ElectionError::Lost(self.timing.renew_deadline));
                    }
                    tracing::warn!(lease = %self.name, "lease request timed out");
                    None
                }
            };
            match attempt {
                None => {}
                Some(Ok(Attempt::Leading)) => {
                    last_renewal = Some(attempted_at);
                    if !*leading.borrow() {
                        tracing::info!(lease = %self.name, holder = %self.holder, "acquired leadership");
                        leading.send_replace(true);
                    }
                }
                Some(Ok(Attempt::Following)) if *leading.borrow() => {
                    return Err(ElectionError::Lost(self.timing.renew_deadline));
                }
                Some(Ok(Attempt::Following)) => {}
                Some(Err(e)) => {
                    tracing::warn!(lease = %self.name, error = %e, "lease update failed");
                }
            }
            if *leading.borrow() {
                if let Some(at) = last_renewal {
                    if at.elapsed() > self.timing.renew_deadline {
                        return Err(ElectionError::Lost(self.timing.renew_deadline));
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => {
                    if *leading.borrow() {
                        self.release().await;
                    }
                    return Ok(());
                }
                _ = tokio::time::sleep(self.timing.retry_period) => {}
            }
        }
    }

    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let duration_secs = i32::try_from(self.timing.lease_duration.as_secs()).unwrap_or(15);
        let current = match self.api.get_opt(&self.name).await? {
            Some(lease) => lease,
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.holder.clone()),
                        lease_duration_seconds: Some(duration_secs),
                        acquire_time: Some(now.clone()),
                        renew_time: Some(now),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                return match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(Attempt::Leading),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Following),
                    Err(e) => Err(e),
                };
            }
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let ours = holder == self.holder;
        if !ours && !holder.is_empty() && !self.expired(&spec) {
            return Ok(Attempt::Following);
        }
        let mut next = current;
        let mut new_spec = spec.clone();
        new_spec.holder_identity = Some(self.holder.clone());
        new_spec.lease_duration_seconds = Some(duration_secs);
        new_spec.renew_time = Some(now.clone());
        if !ours {
            new_spec.acquire_time = Some(now);
            new_spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        next.spec = Some(new_spec);
        // `replace` sends the resourceVersion we read: a concurrent writer makes this a 409.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &next)
            .await
        {
            Ok(_) => Ok(Attempt::Leading),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Following),
            Err(e) => Err(e),
        }
    }

    /// Whether the other holder's record has stayed unchanged for a whole lease duration of
    /// our own clock.
    fn expired(&mut self, spec: &LeaseSpec) -> bool {
        let lease_duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
            .unwrap_or(self.timing.lease_duration);
        match &self.observed {
            Some((seen, since)) if seen == spec => since.elapsed() > lease_duration,
            _ => {
                self.observed = Some((spec.clone(), Instant::now()));
                false
            }
        }
    }

    /// Gives the Lease up (clears the holder) so that a standby need not wait for expiry.
    async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.holder.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.name, "released leadership"),
            Err(e) => tracing::warn!(lease = %self.name, error = %e, "could not release the lease"),
        }
    }
}
