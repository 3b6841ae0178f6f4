//! The status a reconcile reports: state, reason, timestamps and kstatus-style conditions,
//! computed from the previous status and what the reconcile observed (pure).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{DesiredState, State, StateReason, WorkspaceStatus};

/// What one reconcile established.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub state: State,
    pub reason: StateReason,
    pub message: String,
}

impl Outcome {
    pub fn new(state: State, reason: StateReason, message: impl Into<String>) -> Self {
        Outcome { state, reason, message: message.into() }
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
    let reached = outcome.state == goal(o.desired);
    let in_progress = matches!(outcome.state, State::Pending | State::Provisioning | State::Deleting);
    let stalled = matches!(outcome.state, State::Failed | State::DeleteFailed);
    let old_conditions = old.map(|s| s.conditions.as_slice()).unwrap_or(&[]);
    let reason = outcome.reason.as_str();
    let conditions = vec![
        condition(old_conditions, "Ready", reached, reason, &outcome.message, o, o.now),
        condition(old_conditions, "Reconciling", in_progress, reason, &outcome.message, o, o.now),
        condition(old_conditions, "Stalled", stalled, reason, &outcome.message, o, o.now),
    ];
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
    }
}

fn condition(
    old: &[Condition],
    type_: &str,
    on: bool,
    reason: &str,
    message: &str,
    o: &Observed<'_>,
    now: &jiff::Timestamp,
) -> Condition {
    let status = if on { "True" } else { "False" };
    let last = old.iter().find(|c| c.type_ == type_);
    let last_transition_time = match last {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(*now),
    };
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: Some(o.generation),
        last_transition_time,
    }
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
}
