//! Leader election on a coordination.k8s.io Lease, so that of several replicas exactly one
//! reconciles. The holder renews well inside the lease duration and gives up leadership (stops
//! writing) once it has failed to renew for `renew_deadline`, which is shorter than the lease
//! duration: a standby can only take over after the lease expired, by which time the old leader
//! has stopped.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta};
use kube::{Client, ResourceExt};
use tracing::{info, warn};

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaseConfig {
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        LeaseConfig {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

pub struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    renewed: Arc<Mutex<Option<Instant>>>,
}

/// Whether this replica may still write: it renewed the lease within `renew_deadline`.
/// Checked by every reconcile, so a leader that was paused (SIGSTOP, a long GC, a frozen VM)
/// past its lease does not act on stale leadership when it resumes, before `hold` notices.
#[derive(Clone, Debug)]
pub struct Fence {
    renewed: Arc<Mutex<Option<Instant>>>,
    deadline: Duration,
}

impl Fence {
    pub fn holds(&self) -> bool {
        let renewed = *self.renewed.lock().unwrap_or_else(|p| p.into_inner());
        renewed.is_some_and(|t| t.elapsed() < self.deadline)
    }
}

impl Elector {
    pub fn new(client: Client, cfg: LeaseConfig) -> Self {
        Elector { api: Api::namespaced(client, &cfg.namespace), cfg, renewed: Arc::default() }
    }

    pub fn fence(&self) -> Fence {
        Fence { renewed: self.renewed.clone(), deadline: self.cfg.renew_deadline }
    }

    fn mark(&self, renewed: Option<Instant>) {
        *self.renewed.lock().unwrap_or_else(|p| p.into_inner()) = renewed;
    }

    /// Wait until this replica holds the lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    self.mark(Some(Instant::now()));
                    info!(lease = %self.cfg.name, identity = %self.cfg.identity, "became leader");
                    return;
                }
                Ok(false) => {}
                Err(e) => warn!(error = %e, "lease"),
            }
            tokio::time::sleep(self.cfg.retry_period).await;
        }
    }

    /// Keep renewing; returns once leadership is lost (renewals failed for `renew_deadline`).
    pub async fn hold(&self) {
        loop {
            tokio::time::sleep(self.cfg.retry_period).await;
            // Taken before the request: the lease counts from when we asked, not when we heard back.
            let asked = Instant::now();
            match self.try_acquire_or_renew().await {
                Ok(true) => self.mark(Some(asked)),
                Ok(false) => {
                    self.mark(None);
                    warn!("lease taken by another replica");
                    return;
                }
                Err(e) => warn!(error = %e, "renewing lease"),
            }
            if !self.fence().holds() {
                self.mark(None);
                warn!("could not renew the lease in time; stepping down");
                return;
            }
        }
    }

    /// Give the lease up at shutdown so a standby takes over at once.
    pub async fn release(&self) {
        self.mark(None);
        if let Ok(mut lease) = self.api.get(&self.cfg.name).await
            && lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(self.cfg.identity.as_str())
        {
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
                spec.lease_duration_seconds = Some(1);
            }
            let _ = self.api.replace(&self.cfg.name, &crate::labels::post_params(), &lease).await;
        }
    }

    /// One round: take a free or expired lease, renew our own; Ok(false) if another holds it.
    async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = jiff::Timestamp::now();
        let secs = self.cfg.duration.as_secs() as i32;
        match self.api.get_opt(&self.cfg.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(self.cfg.name.clone()), ..Default::default() },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.cfg.identity.clone()),
                        lease_duration_seconds: Some(secs),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                match self.api.create(&crate::labels::post_params(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(mut lease) => {
                let spec = lease.spec.clone().unwrap_or_default();
                let ours = spec.holder_identity.as_deref() == Some(self.cfg.identity.as_str());
                let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
                    (Some(t), Some(d)) => now.as_second() > t.0.as_second() + i64::from(d),
                    _ => true,
                };
                let free = spec.holder_identity.is_none();
                if !ours && !expired && !free {
                    return Ok(false);
                }
                let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
                lease.spec = Some(LeaseSpec {
                    holder_identity: Some(self.cfg.identity.clone()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: if ours { spec.acquire_time } else { Some(MicroTime(now)) },
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(transitions),
                    ..spec
                });
                // Optimistic concurrency: of two replicas racing, one gets a 409.
                match self.api.replace(&lease.name_any(), &crate::labels::post_params(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fence_holds_only_within_the_renew_deadline() {
        let renewed = Arc::new(Mutex::new(None));
        let fence = Fence { renewed: renewed.clone(), deadline: Duration::from_secs(10) };
        assert!(!fence.holds(), "never renewed");
        *renewed.lock().unwrap() = Some(Instant::now());
        assert!(fence.holds());
        *renewed.lock().unwrap() = Instant::now().checked_sub(Duration::from_secs(11));
        assert!(!fence.holds(), "renewed too long ago");
    }
}
