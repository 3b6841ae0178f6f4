//! The operator's integration tests, one binary: each module pins the rules of one area,
//! through kubectl, kube-rs, Helm's engine and the operator's own process, against the local
//! API server.

mod api_docs;
mod bad_input;
mod chart;
mod common;
mod deactivation;
mod faults;
mod generated;
mod gitops;
mod lifecycle;
mod list_views;
mod module_cycles;
mod ownership;
mod production;
mod samples;
mod tenants;
mod workflow;
mod writes;
