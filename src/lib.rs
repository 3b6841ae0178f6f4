//! workspace-operator: Workspaces declared as custom resources, reconciled into namespaces,
//! access and quota, and listed through the Kubernetes API's own selectors and pagination.

pub mod children;
pub mod controller;
pub mod crd;
pub mod dev;
pub mod devcluster;
pub mod error;
pub mod events;
pub mod expectations;
pub mod index;
pub mod labels;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod plugin;
pub mod status;
pub mod telemetry;
pub mod yaml;
