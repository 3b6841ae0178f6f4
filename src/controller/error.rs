//! What can go wrong in a reconcile, one enum per step. Each error keeps the `kube::Error` it
//! came from as its source, and has a category: the stable PascalCase name used as the metric
//! label and as the reason of the Event that reports it.

use crate::controller::child::ChildRef;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// Reading what the caches cannot answer.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("reading namespace {name}: {}", brief(.source))]
    Namespace { name: String, source: kube::Error },
    #[error("reading the Workspace CRD: {}", brief(.source))]
    Crd { source: kube::Error },
    #[error("reading Workspace {name}: {}", brief(.source))]
    Workspace { name: String, source: kube::Error },
    #[error("reading the workloads of namespace {namespace}: {}", brief(.source))]
    Workloads { namespace: String, source: kube::Error },
}

/// Writing the Workspace's children.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("creating {child}: {}", brief(.source))]
    Create { child: ChildRef, source: kube::Error },
    #[error("writing {child}: {}", brief(.source))]
    Write { child: ChildRef, source: kube::Error },
    #[error("deleting {child}: {}", brief(.source))]
    Delete { child: ChildRef, source: kube::Error },
    #[error("reading {child}: {}", brief(.source))]
    Read { child: ChildRef, source: kube::Error },
    #[error("stopping or restarting {kind} {namespace}/{name}: {}", brief(.source))]
    Workload { kind: &'static str, namespace: String, name: String, source: kube::Error },
}

/// Writing the Workspace itself.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("writing the Workspace's labels and finalizer: {}", brief(.0))]
    Metadata(#[source] kube::Error),
    #[error("writing the Workspace's status: {}", brief(.0))]
    Status(#[source] kube::Error),
    #[error("removing the Workspace's finalizer: {}", brief(.0))]
    Finalizer(#[source] kube::Error),
}

/// A `kube::Error` in one line for people (a status message, an Event): the API server's own
/// message and reason, not the Debug dump of its Status.
fn brief(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}

impl Error {
    pub fn category(&self) -> &'static str {
        match self {
            Error::Observe(
                ObserveError::Namespace { .. }
                | ObserveError::Crd { .. }
                | ObserveError::Workspace { .. }
                | ObserveError::Workloads { .. },
            ) => "ReadFailed",
            Error::Apply(ApplyError::Create { .. }) => "CreateFailed",
            Error::Apply(ApplyError::Write { .. }) => "WriteFailed",
            Error::Apply(ApplyError::Delete { .. }) => "DeleteFailed",
            Error::Apply(ApplyError::Read { .. }) => "ReadFailed",
            Error::Apply(ApplyError::Workload { .. }) => "WorkloadChangeFailed",
            Error::Report(ReportError::Metadata(_)) => "MetadataUpdateFailed",
            Error::Report(ReportError::Status(_)) => "StatusUpdateFailed",
            Error::Report(ReportError::Finalizer(_)) => "FinalizerFailed",
        }
    }
}

impl Error {
    /// A write refused because what it was judged on changed meanwhile (409): not a failure to
    /// report, only a reason to look again.
    pub fn is_conflict(&self) -> bool {
        let source = match self {
            Error::Apply(ApplyError::Create { source, .. } | ApplyError::Write { source, .. }) => source,
            _ => return false,
        };
        is_status(source, 409)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Did the API server answer with this HTTP status?
pub fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::controller::child::Kind;

    fn api_error() -> kube::Error {
        kube::Error::Api(kube::core::Status::failure("rolebindings is forbidden", "Forbidden").with_code(403).boxed())
    }

    #[test]
    fn errors_keep_their_source_and_name_the_object() {
        let child = ChildRef::new(Kind::RoleBinding, Some("ws-1"), "workspace-admins");
        let e = Error::from(ApplyError::Write { child, source: api_error() });
        assert_eq!(e.category(), "WriteFailed");
        assert_eq!(
            e.to_string(),
            "writing rolebinding ws-1/workspace-admins: rolebindings is forbidden (403 Forbidden)"
        );
        let source = e.source().expect("the kube error is kept as the source");
        assert!(source.to_string().contains("forbidden"), "{source}");
    }
}
