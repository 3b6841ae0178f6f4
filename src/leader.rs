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
    renewed: Arc<Mutex<Option<BootTime>>>,
    /// Another holder's lease record as last seen, and when by this replica's clock.
    observed: Mutex<Option<Observed>>,
}

/// A lease record as a standby sees it: it expires a lease duration after it last changed, by
/// the standby's own clock (as client-go judges it), so that clocks that disagree between
/// replicas never make a live leader look expired.
#[derive(Clone, Debug, PartialEq)]
struct Observed {
    record: (Option<String>, Option<String>, Option<String>),
    at: Instant,
}

/// Has the lease `record`, unchanged since it was last seen, been left alone for longer than
/// `duration`? Remembers it when it changed.
fn expired(
    last: &mut Option<Observed>,
    record: (Option<String>, Option<String>, Option<String>),
    now: Instant,
    duration: Duration,
) -> bool {
    match last {
        Some(o) if o.record == record => now.saturating_duration_since(o.at) > duration,
        _ => {
            *last = Some(Observed { record, at: now });
            false
        }
    }
}

/// Whether this replica may still write: it renewed the lease within `renew_deadline`.
/// Checked by every reconcile, so a leader that was paused (SIGSTOP, a long GC, a frozen VM)
/// past its lease does not act on stale leadership when it resumes, before `hold` notices.
#[derive(Clone, Debug)]
pub struct Fence {
    renewed: Arc<Mutex<Option<BootTime>>>,
    deadline: Duration,
}

impl Fence {
    pub fn holds(&self) -> bool {
        let renewed = *self.renewed.lock().unwrap_or_else(|p| p.into_inner());
        renewed.is_some_and(|t| t.elapsed() < self.deadline)
    }
}

/// A moment by the clock that keeps counting while the machine is suspended (`CLOCK_BOOTTIME`
/// on Linux). The monotonic clock behind `Instant` stops with a suspended VM: a leader that
/// resumes would find its last renewal only moments ago, and write while a standby already
/// leads. By this clock the suspension counts, and the fence is shut.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct BootTime(Duration);

impl BootTime {
    #[cfg(target_os = "linux")]
    pub fn now() -> BootTime {
        let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes the timespec it is given, and nothing else.
        let read = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut t) };
        match read {
            0 => BootTime(Duration::new(t.tv_sec as u64, t.tv_nsec as u32)),
            // Never on a kernel since 2.6.39; the monotonic clock is the next best.
            _ => BootTime::monotonic(),
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn now() -> BootTime {
        BootTime::monotonic()
    }

    #[cfg_attr(target_os = "linux", allow(dead_code))]
    fn monotonic() -> BootTime {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        BootTime(START.get_or_init(Instant::now).elapsed())
    }

    pub fn elapsed(&self) -> Duration {
        BootTime::now().0.saturating_sub(self.0)
    }

    pub fn checked_sub(&self, d: Duration) -> Option<BootTime> {
        self.0.checked_sub(d).map(BootTime)
    }
}

/// Every write the operator sends passes the fence, in one place: kube's client stack. A
/// replica no longer sure to lead sends nothing but reads, whatever reconcile was in flight
/// when its leadership lapsed. (The Elector's own client, which renews, goes around it.)
#[derive(Clone, Debug)]
pub struct FenceLayer(pub Fence);

impl<S> tower::Layer<S> for FenceLayer {
    type Service = Fenced<S>;

    fn layer(&self, inner: S) -> Fenced<S> {
        Fenced { inner, fence: self.0.clone() }
    }
}

#[derive(Clone, Debug)]
pub struct Fenced<S> {
    inner: S,
    fence: Fence,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> tower::Service<hyper::Request<B>> for Fenced<S>
where
    S: tower::Service<hyper::Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: hyper::Request<B>) -> Self::Future {
        let reads = matches!(*req.method(), hyper::Method::GET | hyper::Method::HEAD);
        if !reads && !self.fence.holds() {
            let refused: BoxError = "not sending a write: this replica's lease was not renewed in time".into();
            return Box::pin(std::future::ready(Err(refused)));
        }
        let answer = self.inner.call(req);
        Box::pin(async move { answer.await.map_err(Into::into) })
    }
}

impl Elector {
    pub fn new(client: Client, cfg: LeaseConfig) -> Self {
        Elector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            renewed: Arc::default(),
            observed: Mutex::default(),
        }
    }

    pub fn fence(&self) -> Fence {
        Fence { renewed: self.renewed.clone(), deadline: self.cfg.renew_deadline }
    }

    fn mark(&self, renewed: Option<BootTime>) {
        *self.renewed.lock().unwrap_or_else(|p| p.into_inner()) = renewed;
    }

    /// Wait until this replica holds the lease.
    pub async fn acquire(&self) {
        loop {
            // As for a renewal: the lease counts from when we asked, not when we heard back.
            let asked = BootTime::now();
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    self.mark(Some(asked));
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
            let asked = BootTime::now();
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
                let record = (
                    spec.holder_identity.clone(),
                    spec.renew_time.as_ref().map(|t| t.0.to_string()),
                    lease.resource_version(),
                );
                let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(secs).max(1) as u64);
                let expired = !ours && {
                    let mut last = self.observed.lock().unwrap_or_else(|p| p.into_inner());
                    expired(&mut last, record, Instant::now(), duration)
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
                // Optimistic concurrency: of two replicas racing, one gets a 409. For our own
                // renewal a 409 says only that the record changed (a retried write that had
                // landed, say): the next round reads it again and decides.
                match self.api.replace(&lease.name_any(), &crate::labels::post_params(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 && !ours => Ok(false),
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
    fn a_lease_expires_a_duration_after_it_last_changed_by_the_standbys_own_clock() {
        let d = Duration::from_secs(15);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // renewTime an hour behind this replica's clock: another clock, not a dead leader.
        let rec = |renewed: &str| (Some("a".to_string()), Some(renewed.to_string()), Some("7".to_string()));
        let mut last = None;
        assert!(!expired(&mut last, rec("2026-01-01T00:00:00Z"), at(0), d), "first seen: never expired");
        assert!(!expired(&mut last, rec("2026-01-01T00:00:00Z"), at(15), d), "unchanged, within the duration");
        assert!(!expired(&mut last, rec("2026-01-01T00:00:02Z"), at(16), d), "renewed: the count starts again");
        assert!(!expired(&mut last, rec("2026-01-01T00:00:02Z"), at(31), d));
        assert!(expired(&mut last, rec("2026-01-01T00:00:02Z"), at(32), d), "unchanged for longer than the duration");
    }

    #[test]
    fn fence_holds_only_within_the_renew_deadline() {
        let renewed = Arc::new(Mutex::new(None));
        let fence = Fence { renewed: renewed.clone(), deadline: Duration::from_secs(10) };
        assert!(!fence.holds(), "never renewed");
        *renewed.lock().unwrap() = Some(BootTime::now());
        assert!(fence.holds());
        *renewed.lock().unwrap() = BootTime::now().checked_sub(Duration::from_secs(11));
        assert!(!fence.holds(), "renewed too long ago");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_fence_clock_is_the_one_that_counts_a_suspension() {
        let read = |clock| {
            let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            assert_eq!(unsafe { libc::clock_gettime(clock, &mut t) }, 0);
            Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
        };
        let (before, ours, after) = (read(libc::CLOCK_BOOTTIME), BootTime::now().0, read(libc::CLOCK_BOOTTIME));
        assert!(before <= ours && ours <= after, "BootTime reads CLOCK_BOOTTIME");
        // The boot clock is never behind the monotonic one: it adds the time spent suspended.
        assert!(read(libc::CLOCK_MONOTONIC) <= read(libc::CLOCK_BOOTTIME));
    }
}
