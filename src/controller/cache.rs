//! The operator's own cache of its namespaces and their children (RoleBindings, quotas,
//! LimitRanges, NetworkPolicies). A reflector store keeps a whole object per child, under
//! kube-runtime's keys; a reconcile reads only a handful of facts of each, and always a whole
//! namespace at a time. So the watch events are boiled down to those facts here, filed by
//! namespace (a namespace under its own name, with its children): some 200 bytes a child with
//! its name and its Workspace's. Whoever creates objects bearing the operator's labels (any
//! workspace owner can, by the thousand) costs it no more than that.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Resource;
use kube::runtime::watcher::Event;
use tokio::sync::watch;

use crate::controller::child::{self, Kind};
use crate::controller::policy::amount;
use crate::labels;

/// What the applier reads of a child.
#[derive(Clone, Debug, PartialEq)]
pub struct Cached {
    pub kind: Kind,
    /// A namespace's own record shares its name with the key it is filed under.
    pub name: Arc<str>,
    pub resource_version: Option<Token>,
    pub uid: Option<Token>,
    /// The Workspace it is annotated as belonging to (`namespace/name`): one allocation for
    /// the namespace and all its children (see `Slot::upsert`).
    pub workspace: Option<Arc<str>>,
    /// A digest of the operator's own labels and annotations on it (see `child::marks`).
    pub marks: u64,
    /// Another field manager owns some of its content (labels and annotations aside).
    pub other_writers: bool,
    /// A quota's `spec.hard`: quotas are compared by amount, since their version moves with
    /// every pod the quota controller counts.
    pub hard: Option<Amounts>,
    /// A namespace's labels and annotations, which carry its ownership, access and Pod Security.
    pub namespace: Option<Box<NamespaceMeta>>,
}

/// What the plan reads of a namespace besides its name, uid and version. Its labels and
/// annotations are kept packed in one allocation (see `pack`): as maps, their first nodes alone
/// took some 1,100 bytes; as a few dozen small strings they scattered the heap so that the
/// process kept twice the memory it used; as JSON their long keys took a kilobyte.
#[derive(Clone, Debug, PartialEq)]
pub struct NamespaceMeta {
    pub deletion_timestamp: Option<Time>,
    maps: Box<[u8]>,
}

type Map = BTreeMap<String, String>;

impl Cached {
    /// Its resourceVersion as the API server wrote it.
    pub fn version(&self) -> Option<String> {
        self.resource_version.as_ref().map(Token::to_string)
    }

    pub fn of<K: Resource>(kind: Kind, obj: &K) -> Cached {
        let meta = obj.meta();
        let others = (meta.managed_fields.iter().flatten())
            .filter(|e| e.manager.as_deref() != Some(labels::FIELD_MANAGER))
            .any(|e| {
                let fields = e.fields_v1.as_ref().and_then(|f| f.0.as_object());
                fields.is_some_and(|f| f.keys().any(|k| k != "f:metadata"))
            });
        let workspace = (meta.annotations.as_ref().and_then(|a| a.get(labels::WORKSPACE_ANNOTATION)))
            .filter(|w| labels::named_workspace(w).is_some());
        Cached {
            kind,
            name: meta.name.as_deref().unwrap_or_default().into(),
            resource_version: meta.resource_version.as_deref().map(Token::new),
            uid: meta.uid.as_deref().map(Token::new),
            workspace: workspace.map(|w| w.as_str().into()),
            marks: child::marks(meta),
            other_writers: others,
            hard: None,
            namespace: None,
        }
    }

    pub fn of_namespace<K: Resource>(ns: &K) -> Cached {
        let meta = ns.meta();
        let mut annotations = meta.annotations.clone();
        // A `kubectl apply`'d namespace's whole manifest, which nothing here reads.
        if let Some(a) = annotations.as_mut() {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
        let kept = NamespaceMeta {
            deletion_timestamp: meta.deletion_timestamp.clone(),
            maps: pack(meta.labels.as_ref(), annotations.as_ref()),
        };
        Cached { namespace: Some(Box::new(kept)), ..Cached::of(Kind::Namespace, ns) }
    }

    /// The namespace this record was made from, as far as the plan reads it.
    pub fn to_namespace(&self) -> Option<Namespace> {
        let kept = self.namespace.as_deref()?;
        let (labels, annotations) = unpack(&kept.maps)?;
        let metadata = ObjectMeta {
            name: Some(self.name.to_string()),
            uid: self.uid.as_ref().map(Token::to_string),
            resource_version: self.version(),
            deletion_timestamp: kept.deletion_timestamp.clone(),
            labels,
            annotations,
            ..Default::default()
        };
        Some(Namespace { metadata, ..Default::default() })
    }

    pub fn of_quota(q: &ResourceQuota) -> Cached {
        let hard = q.spec.as_ref().and_then(|s| s.hard.as_ref());
        Cached { hard: Some(Amounts::of(hard)), ..Cached::of(Kind::ResourceQuota, q) }
    }
}

/// A uid or resourceVersion, kept without an allocation of its own when it is what the API
/// server makes of them, a UUID or a decimal number, and as its text otherwise (both are
/// opaque to clients): some 60 bytes less for each cached object.
#[derive(Clone, Debug, PartialEq)]
pub enum Token {
    Number(u64),
    Uuid([u8; 16]),
    Text(Box<str>),
}

impl Token {
    pub fn new(s: &str) -> Token {
        let canonical_number =
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
        if let Some(n) = canonical_number.then(|| s.parse().ok()).flatten() {
            return Token::Number(n);
        }
        match uuid::Uuid::try_parse(s) {
            Ok(u) if u.hyphenated().encode_lower(&mut [0; 36]) == s => Token::Uuid(u.into_bytes()),
            _ => Token::Text(s.into()),
        }
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Token::Number(n) => write!(f, "{n}"),
            Token::Uuid(u) => write!(f, "{}", uuid::Uuid::from_bytes(*u).hyphenated()),
            Token::Text(s) => f.write_str(s),
        }
    }
}

/// Keys a workspace namespace usually carries, packed as their index.
const KNOWN_KEYS: [&str; 15] = [
    labels::MANAGED_BY,
    labels::WORKSPACE_NAMESPACE,
    labels::WORKSPACE_NAME,
    labels::MANAGEMENT,
    labels::WORKSPACE_ANNOTATION,
    labels::UID_ANNOTATION,
    labels::CREATED_ANNOTATION,
    labels::OWNER_ANNOTATION,
    labels::ACCESS_ANNOTATION,
    labels::BEFORE_ANNOTATION,
    crate::controller::policy::ENROLL_FROM,
    "pod-security.kubernetes.io/enforce",
    "pod-security.kubernetes.io/warn",
    "pod-security.kubernetes.io/audit",
    "kubernetes.io/metadata.name",
];
/// The tag of a key spelled out; the top bit of a tag marks an annotation.
const LITERAL: u8 = 0x7f;
const ANNOTATION: u8 = 0x80;
const _: () = assert!(KNOWN_KEYS.len() < LITERAL as usize, "a known key's index must not read as LITERAL");

/// Labels and annotations in one byte string: the number of entries, then per entry a tag (the
/// key's index in `KNOWN_KEYS`, or `LITERAL` and the key) and the value, each text behind its
/// length. Lengths and the count are LEB128: seven bits a byte, the top bit says more follow.
fn pack(labels: Option<&Map>, annotations: Option<&Map>) -> Box<[u8]> {
    fn number(out: &mut Vec<u8>, mut n: usize) {
        while n >= 0x80 {
            out.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    fn text(out: &mut Vec<u8>, s: &str) {
        number(out, s.len());
        out.extend_from_slice(s.as_bytes());
    }
    let mut out = Vec::new();
    number(&mut out, labels.map_or(0, Map::len) + annotations.map_or(0, Map::len));
    for (map, kind) in [(labels, 0), (annotations, ANNOTATION)] {
        for (k, v) in map.into_iter().flatten() {
            match KNOWN_KEYS.iter().position(|known| known == k) {
                Some(i) => out.push(kind | i as u8),
                None => {
                    out.push(kind | LITERAL);
                    text(&mut out, k);
                }
            }
            text(&mut out, v);
        }
    }
    out.into_boxed_slice()
}

/// The labels and annotations `pack` packed (`None` for a map without entries), or nothing at
/// all from bytes it did not make whole.
fn unpack(mut bytes: &[u8]) -> Option<(Option<Map>, Option<Map>)> {
    fn number(bytes: &mut &[u8]) -> Option<usize> {
        let (mut n, mut shift) = (0usize, 0u32);
        loop {
            let (&b, rest) = bytes.split_first()?;
            *bytes = rest;
            n |= usize::from(b & 0x7f).checked_shl(shift)?;
            shift += 7;
            if b < 0x80 {
                return Some(n);
            }
        }
    }
    fn text(bytes: &mut &[u8]) -> Option<String> {
        let n = number(bytes)?;
        let (s, rest) = (bytes.get(..n)?, bytes.get(n..)?);
        *bytes = rest;
        String::from_utf8(s.to_vec()).ok()
    }
    let (mut labels, mut annotations) = (Map::new(), Map::new());
    for _ in 0..number(&mut bytes)? {
        let (&tag, rest) = bytes.split_first()?;
        bytes = rest;
        let key = match tag & !ANNOTATION {
            LITERAL => text(&mut bytes)?,
            i => KNOWN_KEYS.get(usize::from(i))?.to_string(),
        };
        let value = text(&mut bytes)?;
        let map = if tag & ANNOTATION == 0 { &mut labels } else { &mut annotations };
        map.insert(key, value);
    }
    let some = |m: Map| (!m.is_empty()).then_some(m);
    bytes.is_empty().then(|| (some(labels), some(annotations)))
}

/// A quota's hard amounts as the applier compares them: per resource, in order, a digest of
/// its name and its amount as a number (the API server stores `1024Mi` as `1Gi`), or a digest
/// of its text where it does not parse. A map of them took a kilobyte a quota.
#[derive(Clone, Debug, PartialEq)]
pub struct Amounts(Box<[(u64, Amount)]>);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Amount {
    Number(f64),
    Text(u64),
}

impl Amounts {
    pub fn of(hard: Option<&BTreeMap<String, Quantity>>) -> Amounts {
        use std::hash::BuildHasher;
        // Fixed keys: only the platform and the operator write quotas, and a collision could
        // only spare a write.
        let digest = |s: &str| std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default().hash_one(s);
        let amount = |q: &Quantity| amount(&q.0).map_or(Amount::Text(digest(&q.0)), Amount::Number);
        Amounts(hard.iter().flat_map(|h| h.iter()).map(|(k, q)| (digest(k), amount(q))).collect())
    }

    /// The same resources with the same amounts, but for floating-point rounding (`0.7` and
    /// `700m` are not exactly equal as f64).
    pub fn same(&self, other: &Amounts) -> bool {
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(y.abs());
        self.0.len() == other.0.len()
            && self.0.iter().zip(other.0.iter()).all(|((k, a), (l, b))| {
                k == l
                    && match (a, b) {
                        (Amount::Number(x), Amount::Number(y)) => close(*x, *y),
                        (Amount::Text(x), Amount::Text(y)) => x == y,
                        _ => false,
                    }
            })
    }
}

/// The kinds this cache holds: it is ready once each has been listed.
pub const KINDS: [Kind; 5] =
    [Kind::Namespace, Kind::RoleBinding, Kind::ResourceQuota, Kind::LimitRange, Kind::NetworkPolicy];

type ByNamespace = HashMap<Arc<str>, Slot>;

/// The children of one namespace. A handful, as a rule, kept in a vector grown one by one (room
/// for twice as many would be most of the cache); past `MANY`, someone is flooding the
/// namespace, and a map keeps each event from scanning all the others.
#[derive(Debug)]
enum Slot {
    Few(Vec<Cached>),
    Many(HashMap<(Kind, Arc<str>), Cached>),
}

const MANY: usize = 32;

impl Default for Slot {
    fn default() -> Self {
        Slot::Few(Vec::new())
    }
}

impl Slot {
    fn upsert(&mut self, mut c: Cached) {
        match self {
            Slot::Few(all) => {
                // Children of one Workspace name it alike: keep the name once.
                let same = all.iter().filter_map(|h| h.workspace.as_ref()).find(|w| Some(*w) == c.workspace.as_ref());
                if let Some(w) = same {
                    c.workspace = Some(w.clone());
                }
                match all.iter().position(|have| have.kind == c.kind && have.name == c.name) {
                    Some(i) => all[i] = c,
                    None if all.len() < MANY => {
                        all.reserve_exact(1);
                        all.push(c);
                    }
                    None => {
                        let mut map: HashMap<_, _> = all.drain(..).map(|c| ((c.kind, c.name.clone()), c)).collect();
                        map.insert((c.kind, c.name.clone()), c);
                        *self = Slot::Many(map);
                    }
                }
            }
            Slot::Many(map) => {
                map.insert((c.kind, c.name.clone()), c);
            }
        }
    }

    fn remove(&mut self, kind: Kind, name: &str) {
        match self {
            Slot::Few(all) => all.retain(|c| !(c.kind == kind && &*c.name == name)),
            Slot::Many(map) => {
                map.remove(&(kind, Arc::from(name)));
            }
        }
        self.settle();
    }

    fn remove_kind(&mut self, kind: Kind) {
        match self {
            Slot::Few(all) => all.retain(|c| c.kind != kind),
            Slot::Many(map) => map.retain(|(k, _), _| *k != kind),
        }
        self.settle();
    }

    /// A flood gone, its room goes too.
    fn settle(&mut self) {
        if let Slot::Many(map) = self
            && map.len() < MANY / 2
        {
            let mut few: Vec<Cached> = map.drain().map(|(_, c)| c).collect();
            few.shrink_to_fit();
            *self = Slot::Few(few);
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Slot::Few(all) => all.is_empty(),
            Slot::Many(map) => map.is_empty(),
        }
    }

    /// The children of `kind` that `keep` picks (only those are copied).
    fn of_kind(&self, kind: Kind, keep: impl Fn(&Cached) -> bool) -> Vec<Cached> {
        match self {
            Slot::Few(all) => all.iter().filter(|c| c.kind == kind && keep(c)).cloned().collect(),
            Slot::Many(map) => map.values().filter(|c| c.kind == kind && keep(c)).cloned().collect(),
        }
    }

    fn get(&self, kind: Kind, name: &str) -> Option<Cached> {
        match self {
            Slot::Few(all) => all.iter().find(|c| c.kind == kind && &*c.name == name).cloned(),
            Slot::Many(map) => map.get(&(kind, Arc::from(name))).cloned(),
        }
    }
}

#[derive(Clone)]
pub struct Children {
    inner: Arc<RwLock<Inner>>,
    /// The kinds listed so far.
    listed: Arc<watch::Sender<Vec<Kind>>>,
}

#[derive(Default)]
struct Inner {
    live: ByNamespace,
    /// Relists in progress, by kind: each replaces that kind's entries when it completes, as a
    /// reflector store does.
    relists: HashMap<Kind, ByNamespace>,
}

impl Default for Children {
    fn default() -> Self {
        Children { inner: Arc::default(), listed: Arc::new(watch::Sender::new(Vec::new())) }
    }
}

impl Children {
    /// Take in one watch event of `kind`, each object boiled down by `of`.
    pub fn apply<K: Resource>(&self, kind: Kind, event: &Event<K>, of: impl Fn(&K) -> Cached) {
        let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::Apply(o) => upsert(&mut g.live, o, of(o)),
            Event::Delete(o) => {
                let ns = filed_under(o).unwrap_or_default();
                let name = o.meta().name.as_deref().unwrap_or_default();
                if let Some(all) = g.live.get_mut(ns) {
                    all.remove(kind, name);
                    if all.is_empty() {
                        g.live.remove(ns);
                    }
                }
            }
            Event::Init => {
                g.relists.insert(kind, ByNamespace::new());
            }
            Event::InitApply(o) => upsert(g.relists.entry(kind).or_default(), o, of(o)),
            Event::InitDone => {
                let fresh = g.relists.remove(&kind).unwrap_or_default();
                g.live.retain(|_, all| {
                    all.remove_kind(kind);
                    !all.is_empty()
                });
                for (ns, found) in fresh {
                    let all = g.live.entry(ns).or_default();
                    for c in found.of_kind(kind, |_| true) {
                        all.upsert(c);
                    }
                }
                drop(g);
                self.listed.send_if_modified(|kinds| {
                    let new = !kinds.contains(&kind);
                    if new {
                        kinds.push(kind);
                    }
                    new
                });
            }
        }
    }

    /// The cached children of `kind` in `namespace` that `keep` picks.
    pub fn in_namespace(&self, kind: Kind, namespace: &str, keep: impl Fn(&Cached) -> bool) -> Vec<Cached> {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
        g.live.get(namespace).map(|all| all.of_kind(kind, keep)).unwrap_or_default()
    }

    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<Cached> {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
        g.live.get(namespace)?.get(kind, name)
    }

    /// Has every kind been listed once? Answers at once.
    pub fn is_synced(&self) -> bool {
        KINDS.iter().all(|k| self.listed.borrow().contains(k))
    }

    /// Resolves once every kind has been listed.
    pub async fn wait_until_ready(&self) {
        let mut rx = self.listed.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(|kinds| KINDS.iter().all(|k| kinds.contains(k))).await;
    }
}

/// Where an object is filed: under its namespace, or a namespace under its own name.
fn filed_under<K: Resource>(o: &K) -> Option<&str> {
    o.meta().namespace.as_deref().or(o.meta().name.as_deref())
}

/// File `c` under the object's namespace, in place of the same child if it is there.
fn upsert<K: Resource>(map: &mut ByNamespace, o: &K, mut c: Cached) {
    let Some(ns) = filed_under(o) else { return };
    let key = match map.get_key_value(ns) {
        Some((key, _)) => key.clone(),
        None => Arc::from(ns),
    };
    if *c.name == *key {
        c.name = key.clone();
    }
    map.entry(key).or_default().upsert(c);
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::RoleBinding;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
    use kube::api::ObjectMeta;

    fn rb(ns: &str, name: &str, rv: &str) -> RoleBinding {
        RoleBinding {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn feed(cache: &Children, kind: Kind, event: Event<RoleBinding>) {
        cache.apply(kind, &event, |o| Cached::of(kind, o));
    }

    fn names(cache: &Children, kind: Kind, ns: &str) -> Vec<String> {
        cache
            .in_namespace(kind, ns, |_| true)
            .iter()
            .map(|c| format!("{}@{}", c.name, c.resource_version.as_ref().unwrap()))
            .collect()
    }

    #[test]
    fn follows_applies_deletes_and_relists_of_each_kind_apart() {
        let cache = Children::default();
        feed(&cache, Kind::RoleBinding, Event::Apply(rb("a", "x", "1")));
        feed(&cache, Kind::RoleBinding, Event::Apply(rb("a", "y", "2")));
        feed(&cache, Kind::RoleBinding, Event::Apply(rb("a", "x", "3")));
        feed(&cache, Kind::NetworkPolicy, Event::Apply(rb("a", "x", "4")));
        feed(&cache, Kind::RoleBinding, Event::Delete(rb("a", "y", "2")));
        assert_eq!(names(&cache, Kind::RoleBinding, "a"), ["x@3"]);
        assert_eq!(names(&cache, Kind::NetworkPolicy, "a"), ["x@4"], "same name, other kind");
        assert_eq!(
            cache.get(Kind::NetworkPolicy, "a", "x").and_then(|c| c.resource_version).map(|t| t.to_string()).as_deref(),
            Some("4")
        );
        // During a relist the old view stays; when it completes, only what it listed remains of
        // that kind, and the other kinds are untouched.
        feed(&cache, Kind::RoleBinding, Event::Init);
        feed(&cache, Kind::RoleBinding, Event::InitApply(rb("c", "z", "5")));
        assert_eq!(names(&cache, Kind::RoleBinding, "a"), ["x@3"]);
        feed(&cache, Kind::RoleBinding, Event::InitDone);
        assert!(names(&cache, Kind::RoleBinding, "a").is_empty());
        assert_eq!(names(&cache, Kind::RoleBinding, "c"), ["z@5"]);
        assert_eq!(names(&cache, Kind::NetworkPolicy, "a"), ["x@4"]);
    }

    #[test]
    fn children_of_one_workspace_share_its_name_and_others_keep_their_own() {
        let cache = Children::default();
        let of = |name: &str, workspace: &str| {
            let mut b = rb("a", name, "1");
            b.metadata.annotations = Some([(labels::WORKSPACE_ANNOTATION.to_string(), workspace.to_string())].into());
            b
        };
        feed(&cache, Kind::RoleBinding, Event::Apply(of("x", "team/a")));
        feed(&cache, Kind::RoleBinding, Event::Apply(of("y", "team/a")));
        feed(&cache, Kind::NetworkPolicy, Event::Apply(of("x", "team/b")));
        // An update of a child already filed shares too.
        feed(&cache, Kind::RoleBinding, Event::Apply(of("x", "team/a")));
        let workspace = |kind, name| cache.get(kind, "a", name).and_then(|c| c.workspace).unwrap();
        let (x, y, other) =
            (workspace(Kind::RoleBinding, "x"), workspace(Kind::RoleBinding, "y"), workspace(Kind::NetworkPolicy, "x"));
        assert!(Arc::ptr_eq(&x, &y), "one allocation for team/a");
        assert_eq!((&*x, &*other), ("team/a", "team/b"));
    }

    #[test]
    fn a_flooded_namespace_is_filed_by_name_and_reads_the_same() {
        let cache = Children::default();
        for i in 0..MANY * 3 {
            feed(&cache, Kind::RoleBinding, Event::Apply(rb("a", &format!("n{i}"), "1")));
        }
        feed(&cache, Kind::NetworkPolicy, Event::Apply(rb("a", "n0", "2")));
        feed(&cache, Kind::RoleBinding, Event::Apply(rb("a", "n5", "3")));
        feed(&cache, Kind::RoleBinding, Event::Delete(rb("a", "n6", "1")));
        assert_eq!(cache.in_namespace(Kind::RoleBinding, "a", |_| true).len(), MANY * 3 - 1);
        assert_eq!(names(&cache, Kind::NetworkPolicy, "a"), ["n0@2"]);
        assert_eq!(
            cache.get(Kind::RoleBinding, "a", "n5").and_then(|c| c.resource_version).map(|t| t.to_string()).as_deref(),
            Some("3")
        );
        assert!(cache.get(Kind::RoleBinding, "a", "n6").is_none());
        feed(&cache, Kind::RoleBinding, Event::Init);
        feed(&cache, Kind::RoleBinding, Event::InitDone);
        assert_eq!(names(&cache, Kind::NetworkPolicy, "a"), ["n0@2"], "a relist of one kind keeps the others");
        assert!(cache.in_namespace(Kind::RoleBinding, "a", |_| true).is_empty());
        let g = cache.inner.read().unwrap();
        assert!(matches!(&g.live["a"], Slot::Few(v) if v.len() == 1), "back to a vector once the flood is gone");
    }

    #[test]
    fn a_namespace_is_filed_with_its_children_and_read_back_as_the_plan_sees_it() {
        let cache = Children::default();
        let metadata = ObjectMeta {
            name: Some("a".into()),
            uid: Some("u-1".into()),
            resource_version: Some("3".into()),
            labels: Some([("team".to_string(), "x".to_string()), ("a".to_string(), "b".to_string())].into()),
            annotations: Some([(labels::OWNER_ANNOTATION.to_string(), "ann".to_string())].into()),
            finalizers: Some(vec!["f".into()]),
            ..Default::default()
        };
        let ns = Namespace { metadata, ..Default::default() };
        cache.apply(Kind::Namespace, &Event::Apply(ns.clone()), Cached::of_namespace);
        feed(&cache, Kind::RoleBinding, Event::Apply(rb("a", "x", "1")));
        let back = cache.get(Kind::Namespace, "a", "a").and_then(|c| c.to_namespace()).expect("cached");
        let m = &back.metadata;
        assert_eq!(
            (m.name.as_deref(), m.uid.as_deref(), m.resource_version.as_deref()),
            (Some("a"), Some("u-1"), Some("3"))
        );
        assert_eq!((&m.labels, &m.annotations), (&ns.metadata.labels, &ns.metadata.annotations));
        assert_eq!(names(&cache, Kind::RoleBinding, "a"), ["x@1"], "its children beside it");
        cache.apply(Kind::Namespace, &Event::Delete(ns), Cached::of_namespace);
        assert!(cache.get(Kind::Namespace, "a", "a").is_none());
        assert_eq!(names(&cache, Kind::RoleBinding, "a"), ["x@1"], "a namespace's record goes alone");
    }

    fn key() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![proptest::sample::select(&KNOWN_KEYS[..]).prop_map(String::from), ".{0,140}"]
    }

    proptest::proptest! {
        #[test]
        fn packed_labels_and_annotations_read_back_as_they_were(
            labels in proptest::collection::btree_map(key(), ".{0,200}", 0..12),
            annotations in proptest::collection::btree_map(key(), ".{0,300}", 0..12),
            long in proptest::option::of(".{0,40}"),
        ) {
            // Now and then a value of 20,000 bytes and more, whose length takes three bytes.
            let mut annotations = annotations;
            if let Some(l) = long {
                annotations.insert(labels::BEFORE_ANNOTATION.into(), l.repeat(20_000 / l.len().max(1) + 1));
            }
            let some = |m: &Map| (!m.is_empty()).then(|| m.clone());
            let packed = pack(Some(&labels), Some(&annotations));
            proptest::prop_assert_eq!(unpack(&packed), Some((some(&labels), some(&annotations))));
        }

        #[test]
        fn a_token_reads_back_as_the_text_it_was_made_of(s in "([0-9]{0,21}|[0-9a-fA-F-]{36}|.{0,40})", uuid in proptest::array::uniform16(0u8..)) {
            proptest::prop_assert_eq!(Token::new(&s).to_string(), s);
            let uuid = uuid::Uuid::from_bytes(uuid).hyphenated().to_string();
            proptest::prop_assert_eq!(Token::new(&uuid), Token::Uuid(uuid::Uuid::parse_str(&uuid).unwrap().into_bytes()));
            proptest::prop_assert_eq!(Token::new(&uuid).to_string(), uuid);
        }
    }

    #[test]
    fn tokens_take_numbers_and_uuids_as_the_api_server_writes_them_and_nothing_else() {
        let cases = [
            ("12345", "number"),
            ("0", "number"),
            ("007", "text"),
            ("18446744073709551616", "text"),
            ("", "text"),
            ("3f0e6b2a-4c1d-4e8f-9a7b-0c1d2e3f4a5b", "uuid"),
            ("3F0E6B2A-4C1D-4E8F-9A7B-0C1D2E3F4A5B", "text"),
            ("3f0e6b2a4c1d4e8f9a7b0c1d2e3f4a5b", "text"),
            ("u-1", "text"),
        ];
        for (s, want) in cases {
            let got = match Token::new(s) {
                Token::Number(_) => "number",
                Token::Uuid(_) => "uuid",
                Token::Text(_) => "text",
            };
            assert_eq!((got, Token::new(s).to_string()), (want, s.to_string()), "{s:?}");
        }
    }

    #[test]
    fn a_pack_cut_anywhere_or_extended_reads_as_nothing_rather_than_as_less() {
        let pairs = [(labels::MANAGED_BY, "workspace-operator"), ("team", "a"), (labels::MANAGEMENT, "Managed")];
        let labels: Map = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let annotations: Map = [(labels::UID_ANNOTATION.to_string(), "u-1".to_string())].into();
        let packed = pack(Some(&labels), Some(&annotations));
        assert!(unpack(&packed).is_some());
        for cut in 0..packed.len() {
            assert_eq!(unpack(&packed[..cut]), None, "cut at {cut}");
        }
        assert_eq!(unpack(&[&packed[..], &[0]].concat()), None, "trailing bytes");
    }

    #[test]
    fn quota_amounts_compare_by_number_and_otherwise_by_text() {
        let hard = |pairs: &[(&str, &str)]| {
            let m: BTreeMap<String, Quantity> =
                pairs.iter().map(|(k, v)| (k.to_string(), Quantity(v.to_string()))).collect();
            Amounts::of(Some(&m))
        };
        let cases = [
            ("as stored", &[("memory", "1Gi")][..], &[("memory", "1024Mi")][..], true),
            ("rounding", &[("cpu", "0.7")], &[("cpu", "700m")], true),
            ("another amount", &[("cpu", "1")], &[("cpu", "2")], false),
            ("another resource", &[("cpu", "1")], &[("pods", "1")], false),
            ("one more", &[("cpu", "1")], &[("cpu", "1"), ("pods", "1")], false),
            ("unparsable, same text", &[("x", "lots")], &[("x", "lots")], true),
            ("unparsable, other text", &[("x", "lots")], &[("x", "many")], false),
            ("text against number", &[("x", "lots")], &[("x", "1")], false),
        ];
        for (case, a, b, same) in cases {
            assert_eq!(hard(a).same(&hard(b)), same, "{case}");
        }
        assert!(Amounts::of(None).same(&hard(&[])), "no spec is no amounts");
    }

    #[test]
    fn ready_only_once_every_kind_has_been_listed() {
        let cache = Children::default();
        for (i, kind) in KINDS.into_iter().enumerate() {
            assert!(!cache.is_synced(), "after {i} kinds");
            feed(&cache, kind, Event::Init);
            feed(&cache, kind, Event::InitDone);
        }
        assert!(cache.is_synced());
        assert!(futures::FutureExt::now_or_never(cache.wait_until_ready()).is_some());
    }

    #[test]
    fn another_writer_counts_only_when_it_owns_content() {
        let entry = |manager: &str, fields: serde_json::Value| ManagedFieldsEntry {
            manager: Some(manager.into()),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        };
        let cases = [
            (vec![entry(labels::FIELD_MANAGER, serde_json::json!({"f:subjects": {}}))], false),
            (vec![entry("kubectl-label", serde_json::json!({"f:metadata": {"f:labels": {}}}))], false),
            (vec![entry("kubectl-edit", serde_json::json!({"f:subjects": {}}))], true),
        ];
        for (managed, others) in cases {
            let mut o = rb("a", "x", "1");
            o.metadata.managed_fields = Some(managed.clone());
            assert_eq!(Cached::of(Kind::RoleBinding, &o).other_writers, others, "{managed:?}");
        }
    }
}
