//! `kubectl workspaces list`: the "list workspaces" queries of cloud workspace APIs (ZenML Pro,
//! ModelArts, PAI, DataArts) on the Kubernetes API.
//!
//! Filters the API server can apply are pushed down as label and field selectors; pages are
//! fetched with limit/continue; what the server cannot do (substring match, several ids, sort,
//! offset) is done here while the pages stream in.

use std::cmp::Ordering;

use clap::{Parser, ValueEnum};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};
use serde::Serialize;

use crate::crd::{AuthType, State, Workspace};
use crate::labels;

/// List Workspaces with the filters, sorting and paging of the cloud "list workspaces" APIs.
///
/// Memory: without --sort-by only the requested page is kept while every matching Workspace is
/// counted; with --sort-by one summary (about 1 KiB) per matching Workspace is held to sort.
#[derive(Parser, Debug, Clone)]
#[command(name = "kubectl workspaces list", version)]
pub struct ListArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long)]
    pub context: Option<String>,
    /// Namespace (organization) to list; default: the context's namespace.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only these statuses (comma-separated), e.g. Available,Failed.
    #[arg(long, value_delimiter = ',', value_parser = wire::<State>)]
    pub status: Vec<State>,
    /// Only Workspaces owned by this user.
    #[arg(long)]
    pub owner: Option<String>,
    /// Only this enterprise project.
    #[arg(long)]
    pub enterprise_project: Option<String>,
    /// Only this access type.
    #[arg(long, value_parser = wire::<AuthType>)]
    pub auth_type: Option<AuthType>,
    /// Substring of the name or display name (case-insensitive).
    #[arg(long)]
    pub name: Option<String>,
    /// Workspace ids (comma-separated), as in status.workspaceId.
    #[arg(long, value_delimiter = ',')]
    pub id: Vec<String>,
    #[arg(long, value_enum)]
    pub sort_by: Option<SortBy>,
    #[arg(long, value_enum, default_value = "asc")]
    pub order: SortOrder,
    /// Skip this many matching Workspaces.
    #[arg(long, conflicts_with = "page_number")]
    pub offset: Option<usize>,
    /// Return at most this many (default: all).
    #[arg(long, conflicts_with = "page_size")]
    pub limit: Option<usize>,
    /// Page number, from 1 (with --page-size, default 20).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub page_number: Option<u64>,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10000))]
    pub page_size: Option<u64>,
    /// Items per API request.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub chunk_size: u32,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum SortBy {
    Name,
    #[value(name = "create_time", alias = "create-time")]
    CreateTime,
    #[value(name = "update_time", alias = "update-time")]
    UpdateTime,
    Status,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum SortOrder {
    Asc,
    Desc,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
    Yaml,
}

/// A value of one of the API's enums, in any case, by the name it has on the wire.
fn wire<T>(s: &str) -> Result<T, String>
where
    T: std::str::FromStr + strum::VariantArray + Copy + Into<&'static str>,
{
    s.parse().map_err(|_| {
        let names: Vec<&'static str> = T::VARIANTS.iter().map(|v| (*v).into()).collect();
        format!("unknown value {s:?}; one of {}", names.join(", "))
    })
}

/// One Workspace in the field names of cloud workspace APIs.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Summary {
    pub id: String,
    pub name: String,
    pub namespace: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub owner: String,
    pub admins: Vec<String>,
    pub enterprise_project_id: String,
    pub auth_type: String,
    pub status: Option<String>,
    pub state_reason: Option<String>,
    pub desired_state: String,
    pub create_time: Option<String>,
    pub update_time: Option<String>,
    pub status_updated: Option<String>,
    pub tags: Vec<crate::crd::Tag>,
    pub target_namespace: Option<String>,
    pub is_default: bool,
}

#[derive(Serialize, Debug)]
pub struct ListResult {
    pub total_count: usize,
    pub count: usize,
    pub workspaces: Vec<Summary>,
}

pub fn summary(ws: &Workspace) -> Summary {
    let st = ws.status.clone().unwrap_or_default();
    let created = ws.metadata.creation_timestamp.as_ref().map(|t| t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    Summary {
        id: st.workspace_id.clone().unwrap_or_else(|| labels::workspace_id(ws.metadata.uid.as_deref().unwrap_or(""))),
        name: ws.name_any(),
        namespace: ws.namespace().unwrap_or_default(),
        display_name: ws.spec.display_name.clone(),
        description: ws.spec.description.clone(),
        owner: ws.spec.owner.clone(),
        admins: ws.spec.admins.clone().unwrap_or_default(),
        enterprise_project_id: ws.spec.enterprise_project.clone(),
        auth_type: ws.spec.auth_type.as_str().into(),
        status: st.status.map(|s| s.as_str().to_string()),
        state_reason: st.state_reason.map(|r| r.as_str().to_string()),
        desired_state: ws.spec.desired_state.as_str().into(),
        update_time: st.updated.clone().or_else(|| created.clone()),
        create_time: created,
        status_updated: st.status_updated.clone(),
        tags: ws.spec.tags.clone().unwrap_or_default(),
        target_namespace: st.namespace.clone(),
        is_default: ws.spec.is_default,
    }
}

/// The label and field selectors that push `args`' filters down to the API server.
pub fn selectors(args: &ListArgs) -> (String, String) {
    let mut l = Vec::new();
    match args.status.as_slice() {
        [] => {}
        [one] => l.push(format!("{}={}", labels::STATUS, one.as_str())),
        many => {
            l.push(format!("{} in ({})", labels::STATUS, many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")))
        }
    }
    if let Some(o) = &args.owner {
        l.push(format!("{}={}", labels::OWNER, labels::label_value(o)));
    }
    if let Some(p) = &args.enterprise_project {
        l.push(format!("{}={}", labels::ENTERPRISE_PROJECT, labels::label_value(p)));
    }
    if let Some(a) = args.auth_type {
        l.push(format!("{}={}", labels::AUTH_TYPE, a.as_str()));
    }
    let f = match args.id.as_slice() {
        [one] => format!("status.workspaceId={one}"),
        _ => String::new(),
    };
    (l.join(","), f)
}

/// Filters applied here: exact checks behind the pushed-down labels, and what the server
/// cannot do.
pub fn matches(args: &ListArgs, s: &Summary) -> bool {
    if let Some(o) = &args.owner
        && s.owner != *o
    {
        return false;
    }
    if let Some(p) = &args.enterprise_project
        && s.enterprise_project_id != *p
    {
        return false;
    }
    if !args.status.is_empty() && !args.status.iter().any(|st| s.status.as_deref() == Some(st.as_str())) {
        return false;
    }
    if !args.id.is_empty() && !args.id.contains(&s.id) {
        return false;
    }
    if let Some(n) = &args.name {
        let n = n.to_lowercase();
        let hit = s.name.to_lowercase().contains(&n)
            || s.display_name.as_deref().is_some_and(|d| d.to_lowercase().contains(&n));
        if !hit {
            return false;
        }
    }
    true
}

pub fn compare(by: SortBy, a: &Summary, b: &Summary) -> Ordering {
    let primary = match by {
        SortBy::Name => a.name.cmp(&b.name),
        SortBy::CreateTime => a.create_time.cmp(&b.create_time),
        SortBy::UpdateTime => a.update_time.cmp(&b.update_time),
        SortBy::Status => a.status.cmp(&b.status),
    };
    primary.then_with(|| a.namespace.cmp(&b.namespace)).then_with(|| a.name.cmp(&b.name))
}

/// The window of matching items to return: (offset, limit).
pub fn window(args: &ListArgs) -> (usize, Option<usize>) {
    match (args.page_number, args.page_size) {
        (None, None) => (args.offset.unwrap_or(0), args.limit),
        (n, size) => {
            let size = size.unwrap_or(20) as usize;
            (((n.unwrap_or(1) - 1) as usize) * size, Some(size))
        }
    }
}

/// Collects matching items while pages stream in, keeping only what the output needs.
pub struct Collector {
    offset: usize,
    limit: Option<usize>,
    sort: Option<(SortBy, SortOrder)>,
    total: usize,
    kept: Vec<Summary>,
}

impl Collector {
    pub fn new(args: &ListArgs) -> Self {
        let (offset, limit) = window(args);
        Collector { offset, limit, sort: args.sort_by.map(|b| (b, args.order)), total: 0, kept: Vec::new() }
    }

    pub fn push(&mut self, s: Summary) {
        let index = self.total;
        self.total += 1;
        let in_window = index >= self.offset && self.limit.is_none_or(|l| index < self.offset + l);
        // Sorting needs every match; otherwise only the requested window is kept.
        if self.sort.is_some() || in_window {
            self.kept.push(s);
        }
    }

    pub fn finish(mut self) -> ListResult {
        if let Some((by, order)) = self.sort {
            self.kept.sort_by(|a, b| {
                let o = compare(by, a, b);
                if order == SortOrder::Desc { o.reverse() } else { o }
            });
            let end = self.limit.map(|l| self.offset.saturating_add(l)).unwrap_or(usize::MAX).min(self.kept.len());
            let start = self.offset.min(end);
            self.kept = self.kept.drain(start..end).collect();
        }
        ListResult { total_count: self.total, count: self.kept.len(), workspaces: self.kept }
    }
}

/// A failure in one clear line.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot load kubeconfig: {0}")]
    Config(String),
    #[error("cannot reach the cluster: {0}")]
    Unreachable(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("the API server refused the list: {0}")]
    Api(String),
}

pub async fn client(args: &ListArgs) -> Result<(Client, String), PluginError> {
    let options = KubeConfigOptions { context: args.context.clone(), ..Default::default() };
    let config = match &args.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| PluginError::Config(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(kc, &options).await
        }
        None => kube::Config::from_kubeconfig(&options).await,
    }
    .map_err(|e| PluginError::Config(e.to_string()))?;
    let ns = config.default_namespace.clone();
    let client = Client::try_from(config).map_err(|e| PluginError::Config(e.to_string()))?;
    Ok((client, ns))
}

/// Run the list: push down selectors, page through, collect.
pub async fn list(client: Client, default_ns: &str, args: &ListArgs) -> Result<ListResult, PluginError> {
    let api: Api<Workspace> = if args.all_namespaces {
        Api::all(client)
    } else {
        Api::namespaced(client, args.namespace.as_deref().unwrap_or(default_ns))
    };
    let (label_sel, mut field_sel) = selectors(args);
    'restart: loop {
        let mut collector = Collector::new(args);
        let mut token: Option<String> = None;
        loop {
            let mut lp = ListParams::default().limit(args.chunk_size);
            if !label_sel.is_empty() {
                lp = lp.labels(&label_sel);
            }
            if !field_sel.is_empty() {
                lp = lp.fields(&field_sel);
            }
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            let page = match api.list(&lp).await {
                Ok(p) => p,
                // The snapshot behind the continue token is gone: start over, never mix snapshots.
                Err(kube::Error::Api(s)) if s.code == 410 && token.is_some() => continue 'restart,
                // A cluster without selectable fields: filter the ids here instead.
                Err(kube::Error::Api(s))
                    if s.code == 400 && !field_sel.is_empty() && s.message.contains("field label not supported") =>
                {
                    field_sel.clear();
                    continue 'restart;
                }
                Err(kube::Error::Api(s)) if s.code == 403 => return Err(PluginError::Forbidden(s.message)),
                Err(kube::Error::Api(s)) => return Err(PluginError::Api(s.message)),
                Err(e) => return Err(PluginError::Unreachable(e.to_string())),
            };
            for ws in &page.items {
                let s = summary(ws);
                if matches(args, &s) {
                    collector.push(s);
                }
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(next) => token = Some(next),
                None => return Ok(collector.finish()),
            }
        }
    }
}

pub fn render(result: &ListResult, output: Output, all_namespaces: bool) -> String {
    match output {
        Output::Json => serde_json::to_string_pretty(result).unwrap_or_default() + "\n",
        Output::Yaml => crate::yaml::to_string(result),
        Output::Table => {
            let mut rows = vec![{
                let mut h =
                    vec!["NAME", "DISPLAY NAME", "OWNER", "STATUS", "REASON", "ENTERPRISE PROJECT", "ID", "CREATED"];
                if all_namespaces {
                    h.insert(0, "NAMESPACE");
                }
                h.into_iter().map(String::from).collect::<Vec<_>>()
            }];
            for w in &result.workspaces {
                let mut r = vec![
                    w.name.clone(),
                    w.display_name.clone().unwrap_or_default(),
                    w.owner.clone(),
                    w.status.clone().unwrap_or_default(),
                    w.state_reason.clone().unwrap_or_default(),
                    w.enterprise_project_id.clone(),
                    w.id.clone(),
                    w.create_time.clone().unwrap_or_default(),
                ];
                if all_namespaces {
                    r.insert(0, w.namespace.clone());
                }
                rows.push(r);
            }
            let widths: Vec<usize> =
                (0..rows[0].len()).map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0)).collect();
            let mut out = String::new();
            for r in rows {
                let line: Vec<String> = r.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
                out.push_str(line.join("   ").trim_end());
                out.push('\n');
            }
            out.push_str(&format!("{} of {} workspaces\n", result.count, result.total_count));
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> ListArgs {
        let mut v = vec!["list"];
        v.extend_from_slice(extra);
        ListArgs::try_parse_from(v).unwrap()
    }

    fn s(name: &str, created: &str) -> Summary {
        summary(&{
            let mut w = Workspace::new(name, serde_json::from_value(serde_json::json!({"owner": "o"})).unwrap());
            w.metadata.creation_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(created.parse().unwrap()));
            w
        })
    }

    #[test]
    fn pushdown_selectors() {
        let a = args(&[
            "--status",
            "Available,Failed",
            "--owner",
            "alice@example.com",
            "--auth-type",
            "public",
            "--id",
            "abc",
        ]);
        let (l, f) = selectors(&a);
        assert!(
            l.starts_with("workspaces.dev/status in (Available,Failed),workspaces.dev/owner=alice_at_example.com-"),
            "{l}"
        );
        assert!(l.ends_with(",workspaces.dev/auth-type=Public"), "{l}");
        assert_eq!(f, "status.workspaceId=abc");
        assert!(ListArgs::try_parse_from(["list", "--status", "Sleeping"]).is_err());
    }

    #[test]
    fn offset_and_pages_without_sort_keep_only_the_window() {
        let mut c = Collector::new(&args(&["--page-number", "2", "--page-size", "3"]));
        for i in 0..10 {
            c.push(s(&format!("w{i}"), "2026-01-01T00:00:00Z"));
        }
        let r = c.finish();
        assert_eq!((r.total_count, r.count), (10, 3));
        assert_eq!(r.workspaces.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), ["w3", "w4", "w5"]);
    }

    #[test]
    fn sorted_descending_with_offset() {
        let mut c =
            Collector::new(&args(&["--sort-by", "create_time", "--order", "desc", "--offset", "1", "--limit", "2"]));
        for (i, t) in ["2026-01-03T00:00:00Z", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-04T00:00:00Z"]
            .iter()
            .enumerate()
        {
            c.push(s(&format!("w{i}"), t));
        }
        let r = c.finish();
        assert_eq!(r.workspaces.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), ["w0", "w2"]);
        assert_eq!(r.total_count, 4);
    }
}
