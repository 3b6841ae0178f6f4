//! The one error type of the operator. Each variant says what failed; `reason()` gives the
//! stable PascalCase name used as Event reason and metric label.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {what}: {source}")]
    Read { what: String, source: kube::Error },
    #[error("writing {what}: {source}")]
    Write { what: String, source: kube::Error },
    #[error("deleting {what}: {source}")]
    Delete { what: String, source: kube::Error },
    #[error("updating the Workspace status: {0}")]
    Status(kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(String),
    #[error("the Workspace has no {0}")]
    MissingField(&'static str),
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Read { .. } => "ReadFailed",
            Error::Write { .. } => "WriteFailed",
            Error::Delete { .. } => "DeleteFailed",
            Error::Status(_) => "StatusUpdateFailed",
            Error::Finalizer(_) => "FinalizerFailed",
            Error::MissingField(_) => "MissingField",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
