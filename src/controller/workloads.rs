//! Deactivation that frees compute: which workloads of a workspace namespace stop and what each
//! had, which keep running and why, and what reactivation gives back — decided from what was
//! found there and what the status records (pure). `observe` reads the workloads, `apply`
//! changes them, `report` keeps the record.
//!
//! The record lives in the Workspace's status: the operator already writes it, tenants cannot
//! (the status subresource is the operator's), and it asks for no right beyond the `scale`
//! subresources and `spec.suspend`. It is written before any workload is changed, so an
//! operator stopped in between never loses a count, and an entry once made is never rewritten.

use crate::controller::policy::amount;
use crate::crd::{StoppedWorkload, WorkloadKind, WorkloadsStatus};

/// A workload as found in the namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    pub kind: WorkloadKind,
    pub name: String,
    pub uid: String,
    /// Replicas (Deployments, StatefulSets, ReplicaSets) or parallelism (Jobs).
    pub replicas: Option<i32>,
    /// Jobs and CronJobs: suspended.
    pub suspended: bool,
    /// The uid of the controller that owns it, if one does.
    pub controller: Option<String>,
    /// The CPU (cores) and memory (bytes) one pod of its template requests.
    pub requests: (f64, f64),
}

impl Found {
    fn scalable(&self) -> bool {
        matches!(self.kind, WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::ReplicaSet)
    }

    fn running(&self) -> bool {
        if self.scalable() { self.replicas.unwrap_or(1) > 0 } else { !self.suspended }
    }
}

/// What else runs in the namespace: pods without an owner, and DaemonSets.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Census {
    pub bare_pods: i32,
    pub daemon_sets: i32,
}

/// One change to one workload.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Scale { kind: WorkloadKind, name: String, replicas: i32 },
    Suspend { kind: WorkloadKind, name: String, suspend: bool },
}

/// Deactivate: the record to keep (entries already made stay as they are; a workload that runs
/// and has none gets one) and the changes that stop what runs. A workload another controller
/// owns is left to it — but for a Deployment's ReplicaSets, which follow their Deployment.
pub fn pause(found: &[Found], census: Census, recorded: &[StoppedWorkload]) -> (WorkloadsStatus, Vec<Change>) {
    let mut stopped = Vec::new();
    let mut changes = Vec::new();
    let mut owned = 0;
    for f in found {
        if let Some(owner) = &f.controller {
            let follows = found.iter().any(|o| &o.uid == owner && o.kind == WorkloadKind::Deployment);
            owned += i32::from(!follows && f.running());
            continue;
        }
        let entry = recorded.iter().find(|r| r.uid == f.uid && r.kind == f.kind).cloned();
        let entry = match (entry, f.running()) {
            (Some(e), _) => e,
            (None, true) => StoppedWorkload {
                kind: f.kind,
                name: f.name.clone(),
                uid: f.uid.clone(),
                replicas: if f.scalable() { f.replicas.or(Some(1)) } else { None },
            },
            (None, false) => continue,
        };
        if f.running() {
            changes.push(stop(f));
        }
        stopped.push(entry);
    }
    let (cpu, memory) = freed(found, &stopped);
    let status = WorkloadsStatus {
        kept_running: census.bare_pods + census.daemon_sets + owned,
        bare_pods: census.bare_pods,
        daemon_sets: census.daemon_sets,
        owned,
        freed_cpu: (cpu > 0.0).then(|| quantity(cpu, "")),
        freed_memory: (memory > 0.0).then(|| quantity(memory / 1048576.0, "Mi")),
        stopped,
    };
    (status, changes)
}

fn stop(f: &Found) -> Change {
    match f.scalable() {
        true => Change::Scale { kind: f.kind, name: f.name.clone(), replicas: 0 },
        false => Change::Suspend { kind: f.kind, name: f.name.clone(), suspend: true },
    }
}

/// What the stopped workloads' pods requested: each template times the replicas it had (a Job
/// its parallelism; a CronJob nothing, its Jobs are its own).
fn freed(found: &[Found], stopped: &[StoppedWorkload]) -> (f64, f64) {
    let mut total = (0.0, 0.0);
    for s in stopped {
        let Some(f) = found.iter().find(|f| f.uid == s.uid) else { continue };
        let pods = match s.kind {
            WorkloadKind::CronJob => 0.0,
            WorkloadKind::Job => f64::from(f.replicas.unwrap_or(1)),
            _ => f64::from(s.replicas.unwrap_or(0)),
        };
        total.0 += f.requests.0 * pods;
        total.1 += f.requests.1 * pods;
    }
    total
}

/// A number as a quantity, rounded to what a person reads: `1.5`, `250m`, `768Mi`.
fn quantity(n: f64, unit: &str) -> String {
    match unit {
        "" if n < 1.0 => format!("{}m", (n * 1000.0).round()),
        "" => format!("{}", (n * 1000.0).round() / 1000.0),
        _ => format!("{}{unit}", n.round()),
    }
}

/// Reactivate: each recorded workload gets back what it had — unless someone changed it
/// meanwhile (scaled it up, unsuspended it, or made a new one under its name), which is theirs
/// to keep. The changes, and how many were left as someone set them.
pub fn resume(found: &[Found], recorded: &[StoppedWorkload]) -> (Vec<Change>, usize) {
    let mut changes = Vec::new();
    let mut left = 0;
    for r in recorded {
        let same = found.iter().find(|f| f.uid == r.uid && f.kind == r.kind);
        match same {
            Some(f) if f.scalable() && f.replicas == Some(0) => {
                changes.push(Change::Scale { kind: r.kind, name: r.name.clone(), replicas: r.replicas.unwrap_or(1) })
            }
            Some(f) if !f.scalable() && f.suspended => {
                changes.push(Change::Suspend { kind: r.kind, name: r.name.clone(), suspend: false })
            }
            Some(_) => left += 1,
            // Made again under its name since: someone else's; deleted: nothing to give back.
            None => left += usize::from(found.iter().any(|f| f.name == r.name && f.kind == r.kind)),
        }
    }
    (changes, left)
}

/// The CPU (cores) and memory (bytes) one pod of a template requests: its containers' requests
/// (limits where a container sets no request, as the API server defaults them).
pub fn requests(template: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>) -> (f64, f64) {
    let containers = template.and_then(|t| t.spec.as_ref()).map(|s| s.containers.as_slice()).unwrap_or(&[]);
    let mut total = (0.0, 0.0);
    for c in containers {
        let r = c.resources.as_ref();
        let of = |name: &str| {
            let requested = r.and_then(|r| r.requests.as_ref()).and_then(|q| q.get(name));
            let limited = r.and_then(|r| r.limits.as_ref()).and_then(|q| q.get(name));
            requested.or(limited).and_then(|q| amount(&q.0)).unwrap_or(0.0)
        };
        total.0 += of("cpu");
        total.1 += of("memory");
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use WorkloadKind::*;

    fn found(kind: WorkloadKind, name: &str, replicas: Option<i32>, suspended: bool) -> Found {
        Found {
            kind,
            name: name.into(),
            uid: format!("uid-{name}"),
            replicas,
            suspended,
            controller: None,
            requests: (0.5, 256.0 * 1048576.0),
        }
    }

    fn owned_by(mut f: Found, owner: &str) -> Found {
        f.controller = Some(format!("uid-{owner}"));
        f
    }

    fn entry(kind: WorkloadKind, name: &str, replicas: Option<i32>) -> StoppedWorkload {
        StoppedWorkload { kind, name: name.into(), uid: format!("uid-{name}"), replicas }
    }

    #[test]
    fn deactivation_stops_what_runs_and_records_it_first() {
        let found = vec![
            found(Deployment, "web", Some(3), false),
            owned_by(found(ReplicaSet, "web-1", Some(3), false), "web"),
            found(StatefulSet, "db", Some(1), false),
            found(ReplicaSet, "bare-rs", Some(2), false),
            found(Deployment, "idle", Some(0), false),
            found(Job, "train", Some(2), false),
            found(CronJob, "nightly", None, false),
            found(CronJob, "paused", None, true),
            owned_by(found(Job, "nightly-1", Some(1), false), "nightly"),
            owned_by(found(Deployment, "rollout", Some(4), false), "someone-elses"),
        ];
        let (status, changes) = pause(&found, Census { bare_pods: 2, daemon_sets: 1 }, &[]);
        let names: Vec<(&str, Option<i32>)> = status.stopped.iter().map(|s| (s.name.as_str(), s.replicas)).collect();
        assert_eq!(
            names,
            [("web", Some(3)), ("db", Some(1)), ("bare-rs", Some(2)), ("train", None), ("nightly", None)],
            "running and unowned: recorded with what each had; idle and suspended ones are left out"
        );
        assert_eq!(changes.len(), 5);
        assert!(changes.contains(&Change::Scale { kind: Deployment, name: "web".into(), replicas: 0 }));
        assert!(changes.contains(&Change::Suspend { kind: CronJob, name: "nightly".into(), suspend: true }));
        // A Deployment's ReplicaSet follows it; a CronJob's running Job and another controller's
        // Deployment are left to their owners, and said to keep running.
        assert_eq!((status.owned, status.bare_pods, status.daemon_sets, status.kept_running), (2, 2, 1, 5));
        // 3 + 1 + 2 pods and a Job of 2: 8 pods of 500m and 256Mi.
        assert_eq!((status.freed_cpu.as_deref(), status.freed_memory.as_deref()), (Some("4"), Some("2048Mi")));
    }

    #[test]
    fn a_later_deactivation_never_overwrites_a_record() {
        let recorded = [entry(Deployment, "web", Some(3))];
        // Stopped at 0 (the record says 3); or scaled up by hand while deactivated, to 5.
        for replicas in [0, 5] {
            let found = [found(Deployment, "web", Some(replicas), false)];
            let (status, changes) = pause(&found, Census::default(), &recorded);
            assert_eq!(status.stopped, recorded, "replicas {replicas}: the first record stays");
            assert_eq!(changes.is_empty(), replicas == 0, "replicas {replicas}: stopped again only if running");
        }
        // An entry of an object gone since is dropped with it.
        let (status, _) = pause(&[], Census::default(), &recorded);
        assert!(status.stopped.is_empty());
    }

    #[test]
    fn reactivation_gives_back_exactly_what_was_recorded_unless_someone_changed_it() {
        let recorded = [
            entry(Deployment, "web", Some(3)),
            entry(StatefulSet, "db", Some(1)),
            entry(Job, "train", None),
            entry(CronJob, "nightly", None),
            entry(Deployment, "scaled-by-hand", Some(2)),
            entry(CronJob, "resumed-by-hand", None),
            entry(Deployment, "gone", Some(1)),
            entry(Deployment, "remade", Some(2)),
        ];
        let mut remade = found(Deployment, "remade", Some(0), false);
        remade.uid = "a-new-uid".into();
        let found = vec![
            found(Deployment, "web", Some(0), false),
            found(StatefulSet, "db", Some(0), false),
            found(Job, "train", Some(2), true),
            found(CronJob, "nightly", None, true),
            found(Deployment, "scaled-by-hand", Some(1), false),
            found(CronJob, "resumed-by-hand", None, false),
            remade,
        ];
        let (changes, left) = resume(&found, &recorded);
        assert_eq!(
            changes,
            [
                Change::Scale { kind: Deployment, name: "web".into(), replicas: 3 },
                Change::Scale { kind: StatefulSet, name: "db".into(), replicas: 1 },
                Change::Suspend { kind: Job, name: "train".into(), suspend: false },
                Change::Suspend { kind: CronJob, name: "nightly".into(), suspend: false },
            ]
        );
        assert_eq!(left, 3, "a person's later decision is theirs: scaled, resumed, made again");
    }
}
