//! Plan: what a reconcile may do, decided from the spec and the observation alone (pure). A
//! Workspace proceeds, or it is blocked with the outcome to report: an invalid spec, no class,
//! a breach of its class's policy, a second default, or a namespace that is not its own.

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;

use crate::controller::build::Settings;
use crate::controller::observe::{Observation, Seen};
use crate::controller::policy;
use crate::controller::status::Outcome;
use crate::crd::{DeletionPolicy, DesiredState, Management, State, StateReason, Workspace};
use crate::labels;

#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Nothing is written to children: the outcome is known.
    Blocked(Outcome),
    /// Bring the children to the desired state, creating the namespace when `None`.
    Provision(Option<Box<Namespace>>),
}

/// Blocked by the spec, its class or another Workspace, before any namespace is looked at.
pub fn precheck(ws: &Workspace, obs: &Observation, settings: &Settings) -> Option<Outcome> {
    let invalid = invalid_quantities(ws);
    if !invalid.is_empty() {
        return Some(Outcome::new(State::Failed, StateReason::InvalidSpec, invalid.join("; ")));
    }
    let Some(class) = obs.class.as_deref() else {
        let msg = match &ws.spec.class_name {
            Some(name) => format!("WorkspaceClass {name} does not exist: name an existing class in spec.className"),
            None => {
                "no WorkspaceClass is the default: name one in spec.className, or ask the platform team for a default"
                    .into()
            }
        };
        return Some(Outcome::new(State::Failed, StateReason::ClassNotFound, msg));
    };
    let site = policy::Site {
        target: &obs.target,
        protected: settings.operator_namespace.as_deref(),
        organization_labels: obs.organization_labels.as_ref(),
        organizations: &obs.organizations,
    };
    if let Some(why) = policy::violation(ws, class, site) {
        return Some(Outcome::new(State::Failed, StateReason::PolicyViolation, why));
    }
    obs.older_default.as_ref().map(|other| {
        let msg = format!("Workspace {other} is already the default in this namespace");
        Outcome::new(State::Failed, StateReason::DefaultConflict, msg)
    })
}

/// A Workspace its class no longer allows (the platform tightened the policy, or removed the
/// class) keeps its namespace, data, quota and owners, but not the access the policy may have
/// stopped allowing: its public and grant bindings are withdrawn until it complies.
pub fn withdraws_access(blocked: &Outcome) -> bool {
    matches!(blocked.reason, StateReason::PolicyViolation | StateReason::ClassNotFound)
}

/// A Workspace seen for the first time most likely has a new namespace too: create it without
/// reading first, and look whose it is only if the create answers 409 (the cache holds only
/// namespaces labelled as ours). Later reconciles read first, so a namespace found to be
/// someone else's is not hit with a create on every retry.
pub fn creates_blindly(ws: &Workspace) -> bool {
    ws.status.is_none() && ws.spec.management == Management::Managed && ws.spec.desired_state != DesiredState::Deleted
}

/// Whether the observation may leave the namespace unread (see `observe::children`): a
/// blocked Workspace writes nothing, and a new one creates its namespace blindly.
pub fn skips_lookup(ws: &Workspace, obs: &Observation, settings: &Settings) -> bool {
    precheck(ws, obs, settings).is_some() || creates_blindly(ws)
}

pub fn plan(ws: &Workspace, obs: &Observation, settings: &Settings) -> Plan {
    if let Some(blocked) = precheck(ws, obs, settings) {
        return Plan::Blocked(blocked);
    }
    let target = &obs.target;
    match &obs.namespace {
        Seen::Unread => Plan::Provision(None),
        Seen::Missing => match (ws.spec.management, ws.spec.desired_state) {
            (Management::Enrolled, _) => Plan::Blocked(refused(not_enrollable(ws, target, "it does not exist"))),
            (_, DesiredState::Deleted) => {
                let msg = format!("namespace {target} does not exist; nothing to keep");
                Plan::Blocked(Outcome::new(State::Deleted, StateReason::UserRequested, msg))
            }
            _ => Plan::Provision(None),
        },
        Seen::Found(ns) => match ownership(ws, ns) {
            Ownership::Foreign(why) => Plan::Blocked(refused(why)),
            _ => Plan::Provision(Some(ns.clone())),
        },
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Ownership {
    /// Recorded for this very Workspace.
    Ours,
    /// Kept from an earlier Workspace of the same namespace and name, or unowned and enrolled.
    Adoptable,
    Foreign(Refusal),
}

/// Why a namespace is not this Workspace's. The message is what the Workspace says, and so
/// what anyone who may read Workspaces in its organization learns: nothing of namespaces they
/// may not read. It never names another organization or Workspace, and an enrollment refused
/// reads the same whether the namespace is missing, someone else's, or not consenting, so that
/// Workspaces cannot be used to find out which namespaces exist. The detail goes to the
/// operator's log only.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub reason: StateReason,
    pub message: String,
    pub detail: String,
}

pub fn refused(r: Refusal) -> Outcome {
    Outcome::new(State::Failed, r.reason, r.message).with_detail(r.detail)
}

/// An enrollment refused, in the same words whatever the cause (`detail`).
fn not_enrollable(ws: &Workspace, target: &str, detail: &str) -> Refusal {
    let organization = ws.namespace().unwrap_or_default();
    Refusal {
        reason: StateReason::NamespaceNotFound,
        message: format!(
            "namespace {target} cannot be enrolled: it does not exist, or it has not consented to enrollment by {organization} (whoever owns it labels it {}={organization})",
            policy::ENROLL_FROM
        ),
        detail: format!("namespace {target}: {detail}"),
    }
}

pub fn ownership(ws: &Workspace, ns: &Namespace) -> Ownership {
    let name = ns.name_any();
    let ann = ns.annotations();
    let recorded_uid = ann.get(labels::UID_ANNOTATION);
    let recorded_ws = ann.get(labels::WORKSPACE_ANNOTATION);
    let key = labels::workspace_key(ws);
    if recorded_uid.is_some() && recorded_uid == ws.metadata.uid.as_ref() {
        return Ownership::Ours;
    }
    if recorded_ws == Some(&key) {
        // Kept from an earlier Workspace of this name: taken back only by the same owner, with
        // no other access than it had and as the same kind of namespace, so that whoever may
        // create (not edit) Workspaces here cannot inherit another team's data, name themselves
        // admins of it, or shed its inert state by enrolling it.
        let recorded_owner = ann.get(labels::OWNER_ANNOTATION);
        let recorded_access = ann.get(labels::ACCESS_ANNOTATION).cloned().unwrap_or_else(labels::owner_only_access);
        // `*`: an administrator handed it over to whatever access the next Workspace asks for.
        let same_access = recorded_access == "*" || recorded_access == labels::access_fingerprint(ws);
        let same_kind = ns.labels().get(labels::MANAGEMENT).map(String::as_str) == Some(ws.spec.management.as_str());
        if recorded_owner == Some(&ws.spec.owner) && same_access && same_kind {
            return Ownership::Adoptable;
        }
        // The Workspace of this very name in this organization had it: its writers may know.
        let owner = recorded_owner.map_or("someone else", String::as_str);
        let message = format!(
            "namespace {name} was kept from an earlier Workspace {key} owned by {owner}: it is taken back only with the same owner, admins, grants, authType and management; an administrator hands it over with `kubectl annotate namespace {name} {}=<new owner> '{}=*' --overwrite`",
            labels::OWNER_ANNOTATION,
            labels::ACCESS_ANNOTATION
        );
        let detail = message.clone();
        return Ownership::Foreign(Refusal { reason: StateReason::NamespaceConflict, message, detail });
    }
    let organization = ws.namespace().unwrap_or_default();
    let consents = ns.labels().get(policy::ENROLL_FROM) == Some(&organization);
    let whose = match (recorded_ws, recorded_uid) {
        (Some(other), _) => format!("it belongs to Workspace {other}"),
        (None, Some(uid)) => format!("it is recorded for the Workspace of uid {uid}"),
        (None, None) => "it is no Workspace's".to_string(),
    };
    match ws.spec.management {
        Management::Enrolled if recorded_ws.is_none() && recorded_uid.is_none() && consents => Ownership::Adoptable,
        Management::Enrolled => {
            let consent = ns.labels().get(policy::ENROLL_FROM).map_or("none".to_string(), |o| format!("{o:?}"));
            Ownership::Foreign(not_enrollable(ws, &name, &format!("{whose}; its consent: {consent}")))
        }
        // A Managed Workspace names only namespaces within its own organization's prefix.
        Management::Managed => Ownership::Foreign(Refusal {
            reason: StateReason::NamespaceConflict,
            message: format!(
                "namespace {name} already exists and was not created for this Workspace; to adopt it, label it {}={organization} and set management: Enrolled",
                policy::ENROLL_FROM
            ),
            detail: format!("namespace {name}: {whose}"),
        }),
    }
}

/// Only a namespace the operator created for this very Workspace is ever deleted.
pub fn deletable(ws: &Workspace, ns: &Namespace) -> bool {
    ws.spec.deletion_policy == DeletionPolicy::Delete
        && ws.spec.management == Management::Managed
        && ns.labels().get(labels::MANAGEMENT).map(String::as_str) == Some(Management::Managed.as_str())
        && ws.metadata.uid.is_some()
        && ns.annotations().get(labels::CREATED_ANNOTATION) == ws.metadata.uid.as_ref()
        && ns.metadata.deletion_timestamp.is_none()
}

/// Quantities the schema pattern lets through but Kubernetes would not store (overflow).
pub fn invalid_quantities(ws: &Workspace) -> Vec<String> {
    (ws.spec.resource_limits.iter().flat_map(|l| l.quantities()))
        .filter(|(_, v)| !quantity_fits(v))
        .map(|(k, v)| format!("resourceLimits.{k}: {v:?} is out of range"))
        .collect()
}

/// Kubernetes stores quantities as int64 scaled values; far larger numbers are refused.
fn quantity_fits(q: &str) -> bool {
    let digits: String = q.chars().take_while(|c| c.is_ascii_digit()).collect();
    let exp = q.find(['e', 'E']).and_then(|i| q[i + 1..].parse::<i32>().ok()).unwrap_or(0);
    digits.trim_start_matches('0').len() as i32 + exp <= 18
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use kube::api::ObjectMeta;

    use super::*;
    use crate::crd::{AuthType, WorkspaceClass};
    use crate::fixtures::ws;

    /// A namespace with these labels and annotations.
    fn ns(name: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Namespace {
        let map = |pairs: &[(&str, &str)]| -> Option<BTreeMap<String, String>> {
            Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
        };
        Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: map(labels),
                annotations: map(annotations),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    const UID: &str = "u-1";
    const OWNED: [(&str, &str); 2] = [(labels::WORKSPACE_ANNOTATION, "default/a"), (labels::UID_ANNOTATION, UID)];
    const KEPT: [(&str, &str); 3] = [
        (labels::WORKSPACE_ANNOTATION, "default/a"),
        (labels::UID_ANNOTATION, "an-earlier-uid"),
        (labels::OWNER_ANNOTATION, "alice@example.com"),
    ];
    const MANAGED: [(&str, &str); 1] = [(labels::MANAGEMENT, "Managed")];
    const KEPT_FOR_ANOTHER: [(&str, &str); 3] = [
        (labels::WORKSPACE_ANNOTATION, "default/a"),
        (labels::UID_ANNOTATION, "an-earlier-uid"),
        (labels::OWNER_ANNOTATION, "mallory"),
    ];
    const CREATED: [(&str, &str); 3] =
        [(labels::WORKSPACE_ANNOTATION, "default/a"), (labels::UID_ANNOTATION, UID), (labels::CREATED_ANNOTATION, UID)];
    const CONSENT: [(&str, &str); 1] = [(policy::ENROLL_FROM, "default")];
    const OTHERS: [(&str, &str); 2] = [(labels::WORKSPACE_ANNOTATION, "default/b"), (labels::UID_ANNOTATION, "u-2")];

    fn created(w: crate::fixtures::WorkspaceFixture) -> Workspace {
        w.stored(UID, "2026-01-01T00:00:00Z").build()
    }

    #[test]
    fn ownership_of_a_namespace() {
        let managed = created(ws("a"));
        let enrolled = created(ws("a").enrolled("x"));
        let with_admin = created(ws("a").admins(&["mallory"]));
        let access = labels::access_fingerprint(&managed);
        let mut kept_with_access = KEPT.to_vec();
        kept_with_access.push((labels::ACCESS_ANNOTATION, &access));
        let mut handed_over = KEPT.to_vec();
        handed_over.push((labels::ACCESS_ANNOTATION, "*"));
        #[rustfmt::skip]
        let table: Vec<(&str, &Workspace, Namespace, Option<Ownership>)> = vec![
            ("recorded uid is ours", &managed, ns("x", &[], &OWNED), Some(Ownership::Ours)),
            ("same name, earlier uid, same owner", &managed, ns("x", &MANAGED, &KEPT), Some(Ownership::Adoptable)),
            ("same owner, wider access", &with_admin, ns("x", &MANAGED, &kept_with_access), None),
            ("same owner, same access", &managed, ns("x", &MANAGED, &kept_with_access), Some(Ownership::Adoptable)),
            ("same owner, handed over to any access", &with_admin, ns("x", &MANAGED, &handed_over), Some(Ownership::Adoptable)),
            ("same owner, wider than an unrecorded owner-only", &with_admin, ns("x", &MANAGED, &KEPT), None),
            ("same owner, enrolled over a kept Managed one", &enrolled, ns("x", &MANAGED, &KEPT), None),
            ("same name, earlier uid, another owner", &managed, ns("x", &[], &KEPT_FOR_ANOTHER), None),
            ("another Workspace's", &managed, ns("x", &[], &OTHERS), None),
            ("unrecorded, Managed", &managed, ns("x", &[], &[]), None),
            ("unrecorded, Enrolled, consenting", &enrolled, ns("x", &CONSENT, &[]), Some(Ownership::Adoptable)),
            ("unrecorded, Enrolled, no consent", &enrolled, ns("x", &[], &[]), None),
            ("consent to another organization", &enrolled, ns("x", &[(policy::ENROLL_FROM, "team-b")], &[]), None),
            ("consenting, but Managed", &managed, ns("x", &CONSENT, &[]), None),
            ("a uid without a name, Enrolled", &enrolled, ns("x", &CONSENT, &[(labels::UID_ANNOTATION, "u-9")]), None),
            ("another's, Enrolled", &enrolled, ns("x", &[], &OTHERS), None),
        ];
        for (case, w, n, want) in table {
            let got = ownership(w, &n);
            match want {
                Some(o) => assert_eq!(got, o, "{case}"),
                None => assert!(matches!(got, Ownership::Foreign(_)), "{case}: {got:?}"),
            }
        }
    }

    #[test]
    fn a_refusal_says_what_to_do_and_nothing_of_namespaces_its_reader_cannot_see() {
        let w = created(ws("a"));
        let refusal = |w: &Workspace, n: Namespace| match ownership(w, &n) {
            Ownership::Foreign(r) => r,
            other => panic!("foreign, not {other:?}"),
        };
        let others = refusal(&w, ns("x", &[], &OTHERS));
        let unrecorded = refusal(&w, ns("x", &[], &[]));
        assert_eq!(others.message, unrecorded.message, "another Workspace's reads as any existing namespace");
        assert!(others.message.contains("label it workspaces.dev/enroll-from=default and set management: Enrolled"));
        assert!(!others.message.contains("default/b") && others.detail.contains("default/b"), "{others:?}");
        // Enrollment: missing, another Workspace's, not consenting, consenting to someone else.
        let enrolled = created(ws("a").enrolled("x"));
        let missing = plan(&enrolled, &observed(Seen::Missing, None), &Settings::default());
        let Plan::Blocked(missing) = missing else { panic!("blocked") };
        let refusals = [
            refusal(&enrolled, ns("x", &[], &OTHERS)),
            refusal(&enrolled, ns("x", &[], &[])),
            refusal(&enrolled, ns("x", &[(policy::ENROLL_FROM, "team-b")], &[])),
        ];
        for r in &refusals {
            assert_eq!((r.reason, &r.message), (missing.reason, &missing.message), "{r:?}");
            assert!(!r.message.contains("team-b") && !r.message.contains("default/b"), "{r:?}");
        }
        assert!(missing.message.contains("it does not exist, or it has not consented to enrollment by default"));
        assert!(refusals[0].detail.contains("default/b") && refusals[2].detail.contains("team-b"), "{refusals:?}");
    }

    fn observed(namespace: Seen, older_default: Option<&str>) -> Observation {
        Observation {
            target: "x".into(),
            class: Some(Arc::new(WorkspaceClass::new("standard", Default::default()))),
            namespace,
            older_default: older_default.map(String::from),
            ..Default::default()
        }
    }

    type Blocked = Option<(State, StateReason)>;

    fn blocked(p: &Plan) -> Blocked {
        match p {
            Plan::Blocked(o) => Some((o.state, o.reason)),
            Plan::Provision(_) => None,
        }
    }

    #[test]
    fn plan_for_each_case() {
        use Seen::*;
        let found = |a: &[(&str, &str)]| Found(Box::new(ns("x", &[], a)));
        let consenting = || Found(Box::new(ns("x", &CONSENT, &[])));
        let f = Some((State::Failed, StateReason::NamespaceConflict));
        let settings = Settings { operator_namespace: Some("ops".into()) };
        #[rustfmt::skip]
        let table: Vec<(&str, Workspace, Observation, Blocked)> = vec![
            ("new namespace, not read", created(ws("a")), observed(Unread, None), None),
            ("missing: create it", created(ws("a")), observed(Missing, None), None),
            ("ours: provision", created(ws("a")), observed(found(&OWNED), None), None),
            ("kept from an earlier uid", created(ws("a")), observed(Found(Box::new(ns("x", &MANAGED, &KEPT))), None), None),
            ("another's", created(ws("a")), observed(found(&OTHERS), None), f),
            ("exists, unrecorded", created(ws("a")), observed(found(&[]), None), f),
            ("enrolled, consenting", created(ws("a").enrolled("x")), observed(consenting(), None), None),
            ("enrolled, no consent", created(ws("a").enrolled("x")), observed(found(&[]), None),
                Some((State::Failed, StateReason::NamespaceNotFound))),
            ("no class", created(ws("a")), Observation { class: None, ..observed(found(&OWNED), None) },
                Some((State::Failed, StateReason::ClassNotFound))),
            ("against the class", created(ws("a").auth(AuthType::Public)), observed(found(&OWNED), None),
                Some((State::Failed, StateReason::PolicyViolation))),
            ("the operator's namespace", created(ws("a").enrolled("ops")), observed(consenting(), None),
                Some((State::Failed, StateReason::PolicyViolation))),
            ("outside the prefix", created(ws("a").namespace("monitoring")), observed(Missing, None),
                Some((State::Failed, StateReason::PolicyViolation))),
            ("enrolled, missing", created(ws("a").enrolled("x")), observed(Missing, None),
                Some((State::Failed, StateReason::NamespaceNotFound))),
            ("deleted, nothing to keep", created(ws("a").desired(DesiredState::Deleted)), observed(Missing, None),
                Some((State::Deleted, StateReason::UserRequested))),
            ("second default", created(ws("a").default_workspace()), observed(found(&OWNED), Some("b")),
                Some((State::Failed, StateReason::DefaultConflict))),
            ("overflowing limit", created(ws("a").limit("cpu", "1e30")), observed(found(&OWNED), None),
                Some((State::Failed, StateReason::InvalidSpec))),
        ];
        for (case, w, obs, want) in table {
            assert_eq!(blocked(&plan(&w, &obs, &settings)), want, "{case}");
        }
    }

    #[test]
    fn only_a_breach_of_policy_withdraws_access() {
        use StateReason::*;
        #[rustfmt::skip]
        let table = [
            (PolicyViolation, true), (ClassNotFound, true),
            (NamespaceConflict, false), (NamespaceNotFound, false), (DefaultConflict, false), (InvalidSpec, false),
        ];
        for (reason, withdraws) in table {
            assert_eq!(withdraws_access(&Outcome::new(State::Failed, reason, "")), withdraws, "{reason:?}");
        }
    }

    #[test]
    fn only_a_first_reconcile_of_a_managed_live_workspace_creates_blindly() {
        let new = ws("a").build();
        assert!(creates_blindly(&new));
        assert!(!creates_blindly(&ws("a").reported(State::Failed, StateReason::NamespaceConflict).build()));
        assert!(!creates_blindly(&ws("a").enrolled("x").build()));
        assert!(!creates_blindly(&ws("a").desired(DesiredState::Deleted).build()));
    }

    #[test]
    fn only_a_namespace_created_for_this_workspace_is_deletable() {
        let delete = created(ws("a").deletion_policy(DeletionPolicy::Delete));
        let enrolled_delete = created(ws("a").enrolled("x").deletion_policy(DeletionPolicy::Delete));
        let retain = created(ws("a"));
        let managed = [(labels::MANAGEMENT, "Managed")];
        let enrolled = [(labels::MANAGEMENT, "Enrolled")];
        #[rustfmt::skip]
        let table: Vec<(&str, &Workspace, Namespace, bool)> = vec![
            ("created for it, Delete", &delete, ns("x", &managed, &CREATED), true),
            ("created for it, Retain", &retain, ns("x", &managed, &CREATED), false),
            ("taken back, never created by it", &delete, ns("x", &managed, &OWNED), false),
            ("created for an earlier uid", &delete, ns("x", &managed, &KEPT), false),
            ("labelled enrolled", &delete, ns("x", &enrolled, &CREATED), false),
            ("unlabelled", &delete, ns("x", &[], &CREATED), false),
            ("an Enrolled Workspace, whatever the labels", &enrolled_delete, ns("x", &managed, &CREATED), false),
        ];
        for (case, w, n, want) in table {
            assert_eq!(deletable(w, &n), want, "{case}");
        }
        let mut terminating = ns("x", &managed, &CREATED);
        terminating.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH));
        assert!(!deletable(&delete, &terminating), "never one already terminating");
    }

    #[test]
    fn overflowing_quantities_are_reported() {
        let w = ws("a").limit("cpu", "99999999999999999999").limit("memory", "1e30").build();
        assert_eq!(invalid_quantities(&w).len(), 2);
        let ok = ws("a").limit("cpu", "500m").limit("memory", "64Gi").build();
        assert!(invalid_quantities(&ok).is_empty());
    }
}
