//! The status a reconcile reports: state, reason, timestamps and kstatus-style conditions,
//! computed from the previous status and what the reconcile observed (pure).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{DesiredState, State, StateReason, WorkloadsStatus, WorkspaceStatus};

/// What one reconcile established.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub state: State,
    pub reason: StateReason,
    /// What the Workspace says: whoever may read it may read this.
    pub message: String,
    /// What only the operator's log says, for administrators (whose namespace it is, say).
    pub detail: Option<String>,
    /// The workloads the status records: None keeps what it has, Some replaces it.
    pub workloads: Option<Option<WorkloadsStatus>>,
}

impl Outcome {
    pub fn new(state: State, reason: StateReason, message: impl Into<String>) -> Self {
        Outcome { state, reason, message: message.into(), detail: None, workloads: None }
    }

    pub fn with_workloads(self, workloads: Option<WorkloadsStatus>) -> Self {
        Outcome { workloads: Some(workloads), ..self }
    }

    pub fn with_detail(self, detail: impl Into<String>) -> Self {
        Outcome { detail: Some(detail.into()), ..self }
    }
}

/// The state the spec asks for once reached.
pub fn goal(desired: DesiredState) -> State {
    match desired {
        DesiredState::Available => State::Available,
        DesiredState::Deactivated => State::Deactivated,
        DesiredState::Deleted => State::Deleted,
    }
}

pub struct Observed<'a> {
    pub generation: i64,
    pub desired: DesiredState,
    pub namespace: Option<String>,
    pub workspace_id: String,
    pub now: &'a jiff::Timestamp,
}

/// The next status. Timestamps move only when what they describe changes, so reconciling an
/// unchanged Workspace yields an identical status (and no write).
pub fn next(old: Option<&WorkspaceStatus>, outcome: &Outcome, o: &Observed<'_>) -> WorkspaceStatus {
    let now = o.now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let prev_state = old.and_then(|s| s.status);
    let status_updated = match old {
        Some(s) if prev_state == Some(outcome.state) => s.status_updated.clone().or_else(|| Some(now.clone())),
        _ => Some(now.clone()),
    };
    let updated = match old {
        Some(s) if s.observed_generation == Some(o.generation) => s.updated.clone().or_else(|| Some(now.clone())),
        _ => Some(now.clone()),
    };
    let truths = [outcome.state == goal(o.desired), in_progress(outcome.state), stalled(outcome.state)];
    let old_conditions = old.map(|s| s.conditions.as_slice()).unwrap_or(&[]);
    let reason = outcome.reason.as_str();
    let conditions = CONDITIONS
        .iter()
        .zip(truths)
        .map(|(type_, on)| {
            let status = if on { "True" } else { "False" };
            let since = match old_conditions.iter().find(|c| c.type_ == *type_) {
                Some(c) if c.status == status => c.last_transition_time.clone(),
                _ => Time(*o.now),
            };
            condition(type_, on, reason, &outcome.message, Some(o.generation), since)
        })
        .collect();
    WorkspaceStatus {
        status: Some(outcome.state),
        state_reason: Some(outcome.reason),
        message: Some(outcome.message.clone()),
        status_updated,
        updated,
        observed_generation: Some(o.generation),
        conditions,
        namespace: o.namespace.clone(),
        workspace_id: Some(o.workspace_id.clone()),
        workloads: match &outcome.workloads {
            Some(w) => w.clone(),
            None => old.and_then(|s| s.workloads.clone()),
        },
    }
}

/// The condition types `next` writes, in the order it writes them.
const CONDITIONS: [&str; 3] = ["Ready", "Reconciling", "Stalled"];

fn in_progress(state: State) -> bool {
    matches!(state, State::Pending | State::Provisioning | State::Deleting)
}

fn stalled(state: State) -> bool {
    matches!(state, State::Failed | State::DeleteFailed)
}

fn condition(type_: &str, on: bool, reason: &str, message: &str, generation: Option<i64>, since: Time) -> Condition {
    Condition {
        type_: type_.into(),
        status: if on { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// Cached Workspaces keep their status without what `restore` can put back: of the conditions,
/// the type (from the order `next` writes them in), the status, reason and message (from the
/// state, reason and message beside them); and the workspace id, which is the uid's (`id`).
/// That is a dozen small strings, some 500 bytes a Workspace. A status that is not as `next`
/// writes it is left whole. The bare form is never a real one: conditions are a list keyed by
/// type, so the API server cannot hold two with the same (empty) type.
pub fn shrink(status: &mut WorkspaceStatus, id: &str) {
    let bare: Vec<Condition> = (status.conditions.iter())
        .map(|c| Condition {
            type_: String::new(),
            status: String::new(),
            reason: String::new(),
            message: String::new(),
            observed_generation: c.observed_generation,
            last_transition_time: c.last_transition_time.clone(),
        })
        .collect();
    if status.workspace_id.as_deref() == Some(id) && restored(status, &bare).as_ref() == Some(&status.conditions) {
        status.conditions = bare;
        status.workspace_id = None;
    }
}

/// The status `shrink` left bare, whole again.
pub fn restore(status: &mut WorkspaceStatus, id: &str) {
    // Both marks of the bare form: an API server that took three conditions of one empty type
    // (a CRD relaxed by hand) still has the status it was given read as it is.
    let bare = status.workspace_id.is_none()
        && status.conditions.len() == CONDITIONS.len()
        && status.conditions.iter().all(|c| c.type_.is_empty());
    if let Some(whole) = bare.then(|| restored(status, &status.conditions)).flatten() {
        status.conditions = whole;
        status.workspace_id = Some(id.into());
    }
}

/// `bare`'s times and generations with what `next` writes beside them in `status`. `Ready` is
/// taken to hold in the states a Workspace can ask for, which is what `next` writes unless the
/// state and the spec disagree (then `shrink` finds the conditions differ and keeps them whole).
fn restored(status: &WorkspaceStatus, bare: &[Condition]) -> Option<Vec<Condition>> {
    let state = status.status?;
    let reason = status.state_reason?.as_str();
    let message = status.message.as_deref()?;
    if bare.len() != CONDITIONS.len() {
        return None;
    }
    let reached = matches!(state, State::Available | State::Deactivated | State::Deleted);
    let truths = [reached, in_progress(state), stalled(state)];
    let whole = (bare.iter().zip(CONDITIONS).zip(truths))
        .map(|((c, type_), on)| {
            condition(type_, on, reason, message, c.observed_generation, c.last_transition_time.clone())
        })
        .collect();
    Some(whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(now: &jiff::Timestamp, generation: i64) -> Observed<'_> {
        Observed {
            generation,
            desired: DesiredState::Available,
            namespace: Some("ns".into()),
            workspace_id: "id".into(),
            now,
        }
    }

    #[test]
    fn unchanged_outcome_gives_an_identical_status() {
        let t0: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: jiff::Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let out = Outcome::new(State::Available, StateReason::Provisioned, "ready");
        let s0 = next(None, &out, &observed(&t0, 1));
        let s1 = next(Some(&s0), &out, &observed(&t1, 1));
        assert_eq!(s0, s1);
    }

    #[test]
    fn status_updated_moves_only_with_the_state() {
        let t0: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: jiff::Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let s0 = next(None, &Outcome::new(State::Available, StateReason::Provisioned, ""), &observed(&t0, 1));
        let s1 = next(
            Some(&s0),
            &Outcome::new(State::Available, StateReason::Provisioned, "other message"),
            &observed(&t1, 2),
        );
        assert_eq!(s1.status_updated, s0.status_updated);
        assert_ne!(s1.updated, s0.updated, "a new generation is seen");
        let s2 = next(Some(&s1), &Outcome::new(State::Failed, StateReason::InvalidSpec, "bad"), &observed(&t1, 2));
        assert_eq!(s2.status_updated.as_deref(), Some("2026-01-01T01:00:00Z"));
        let ready = s2.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "False");
        let stalled = s2.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
        assert_eq!((stalled.status.as_str(), stalled.reason.as_str()), ("True", "InvalidSpec"));
    }

    #[test]
    fn cached_conditions_lose_their_strings_and_come_back_as_they_were() {
        use strum::VariantArray;
        let t0: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: jiff::Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let mut bare = 0;
        for &desired in DesiredState::VARIANTS {
            for &state in State::VARIANTS {
                let first = Outcome::new(State::Provisioning, StateReason::Created, "working on it");
                let o = Observed { desired, ..observed(&t0, 1) };
                let before = next(None, &first, &o);
                let o = Observed { desired, ..observed(&t1, 2) };
                let status = next(Some(&before), &Outcome::new(state, StateReason::Provisioned, "done"), &o);
                let mut cached = status.clone();
                shrink(&mut cached, "id");
                let shrunk = cached.conditions.iter().all(|c| c.type_.is_empty() && c.message.is_empty())
                    && cached.workspace_id.is_none();
                bare += usize::from(shrunk);
                // The spec asks for one state and the status holds another that is also a goal:
                // `Ready` is False, which the cache cannot tell from the state alone.
                let disagree =
                    state != goal(desired) && matches!(state, State::Available | State::Deactivated | State::Deleted);
                assert_eq!(shrunk, !disagree, "{desired:?} {state:?}");
                restore(&mut cached, "id");
                assert_eq!(cached, status, "{desired:?} {state:?}");
            }
        }
        assert!(bare >= State::VARIANTS.len(), "most statuses are cached bare");
    }

    #[test]
    fn a_status_with_an_id_is_never_taken_for_a_bare_one() {
        let t0: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let written = next(None, &Outcome::new(State::Available, StateReason::Provisioned, "ready"), &observed(&t0, 1));
        let mut odd = written.clone();
        shrink(&mut odd, "id");
        odd.workspace_id = Some("id".into());
        let before = odd.clone();
        restore(&mut odd, "id");
        assert_eq!(odd, before);
    }

    #[test]
    fn conditions_not_as_next_writes_them_are_cached_whole() {
        let t0: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let written = next(None, &Outcome::new(State::Available, StateReason::Provisioned, "ready"), &observed(&t0, 1));
        type Edit = fn(&mut WorkspaceStatus);
        let edits: [(&str, Edit); 7] = [
            ("a workspace id of its own", |s| s.workspace_id = Some("other".into())),
            ("no workspace id", |s| s.workspace_id = None),
            ("a message of its own", |s| s.conditions[0].message = "mine".into()),
            ("a condition more", |s| s.conditions.push(s.conditions[0].clone())),
            ("one missing", |s| drop(s.conditions.pop())),
            ("another order", |s| s.conditions.swap(0, 1)),
            ("no state beside them", |s| s.status = None),
        ];
        for (what, edit) in edits {
            let mut status = written.clone();
            edit(&mut status);
            let mut cached = status.clone();
            shrink(&mut cached, "id");
            assert_eq!(cached, status, "{what}");
            restore(&mut cached, "id");
            assert_eq!(cached, status, "{what}");
        }
    }
}
