//! The local API server, driven by real clients: kubectl (the real binary) and kube-rs.
//! One test binary for the crate, one module per client.

mod auth;
mod builtins;
mod hostile;
mod kube_clients;
mod kubectl;
mod widgets;
