//! workspace-operator: Workspaces declared as custom resources, reconciled into namespaces,
//! access and quota, and listed through the Kubernetes API's own selectors and pagination.

pub mod crd;
pub mod yaml;
