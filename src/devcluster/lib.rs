//! A Kubernetes-API-compatible server for tests, benchmarks and local try-out.
//!
//! A real kube-apiserver takes a Kubernetes build, etcd and several seconds to start; this crate
//! is one that starts in milliseconds, in process, and that real, unmodified clients (kubectl,
//! Helm's engine, kube-rs) talk to on loopback. It follows the Kubernetes API conventions and
//! answers as kube-apiserver does; where the two disagree, kube-apiserver is right. Everything
//! is kept in memory. It knows nothing of any operator: callers install their own CRDs, as on a
//! fresh cluster. Its fault injection and request counting also work in front of a real API
//! server, through `FaultProxy`.
//!
//! A request goes through the layers of kube-apiserver, one module each: `server` (TLS and
//! HTTP/1.1), `auth` (who is asking: client certificates, ServiceAccount tokens, anonymous,
//! impersonation), `rbac` (may they: RBAC over the bootstrap policy, aggregation, escalation
//! checks), `http` (routing to a resource and verb), then `list`, `watch`,
//! `reviews` or the `registry` (store and catalogue, and the create / update and patch / delete
//! pipelines), which call `shape` (bodies checked before use), `admission`, `managed` (field
//! ownership, server-side apply), `patch`, `quota` and `builtin`.
//!
//! Known approximations (each is what a test-server can reasonably do):
//! - Authentication knows client certificates of its own CA, ServiceAccount tokens and
//!   anonymous requests: no OIDC, webhook or static-token authenticators; credentials are
//!   checked on every request (no cache). RBAC is the only authorizer: no Node authorizer, no
//!   webhook; the aggregation of ClusterRoles happens inside the write, not in a controller.
//! - Server-side apply tracks field ownership per manager at the granularity of fields and of
//!   `x-kubernetes-list-type: map` entries; atomic lists are owned whole.
//! - Built-in kinds are stored without schemas: they are not pruned or type-checked beyond
//!   metadata, and strategic merge patch knows the merge keys of the kinds listed in `patch.rs`.
//! - No garbage collector for ownerReferences; pods never run. Of the controllers, only what
//!   clients notice at once is simulated, synchronously: workload status, each namespace's
//!   `default` ServiceAccount, and ResourceQuota usage (`quota.rs` says what it counts).
//! - Built-in kinds are printed with kube-apiserver's columns for the kinds in `table.rs`;
//!   others get the default Name and Created At.

mod admission;
mod auth;
mod builtin;
mod clock;
mod counters;
mod discovery;
mod errors;
mod faults;
mod http;
mod kit;
mod list;
mod managed;
mod patch;
mod pki;
mod protobuf;
mod proxy;
mod quota;
mod rbac;
mod registry;
mod request;
mod resources;
mod reviews;
mod selection;
mod selectors;
mod server;
mod shape;
mod store;
mod table;
pub mod testkit;
mod tokens;
mod validation;
mod watch;
mod yaml;

pub use counters::{Captured, Counters, RequestRecord, WRITE_VERBS};
pub use faults::{FaultKind, FaultRule, Faults};
pub use kit::{Background, DevCluster, Handle, kubeconfig_for};
pub use proxy::{BackgroundProxy, FaultProxy};
