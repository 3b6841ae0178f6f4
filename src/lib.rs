//! workspace-operator: Workspaces declared as custom resources, reconciled into namespaces,
//! access and quota, and listed through the Kubernetes API's own selectors and pagination.

pub mod controller;
pub mod crd;
#[cfg(feature = "dev")]
pub mod dev;
pub mod events;
pub mod fixtures;
pub mod labels;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod plugin;
pub mod telemetry;
pub mod yaml;
