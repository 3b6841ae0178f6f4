//! Events for Workspace state changes, as `kubectl describe workspace` shows them.
//!
//! kube-runtime's `Recorder` keeps every event of the last six minutes and scans all of them on
//! each publish, to fold repeats into a series. This operator records one event per state change
//! and never repeats one, so that cache would only cost: a scan per event under one lock
//! (quadratic over a mass creation; it showed in the benchmark's profile) and the memory of
//! every recent event.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::Api;

/// Who records: the controller's name and this replica.
pub struct Recorder {
    client: Client,
    controller: String,
    instance: String,
}

/// One state change of an object.
pub struct Note<'a> {
    pub warning: bool,
    pub reason: &'a str,
    pub action: &'a str,
    pub message: String,
}

impl Recorder {
    pub fn new(client: Client, controller: &str, instance: Option<String>) -> Recorder {
        let instance = instance.unwrap_or_else(|| controller.to_string());
        Recorder { client, controller: controller.into(), instance }
    }

    pub async fn publish(&self, note: &Note<'_>, regarding: &ObjectReference) -> Result<(), kube::Error> {
        let event = event(note, regarding, &self.controller, &self.instance, jiff::Timestamp::now());
        let ns = regarding.namespace.as_deref().unwrap_or("default");
        Api::<Event>::namespaced(self.client.clone(), ns)
            .create(&crate::labels::post_params(), &event)
            .await
            .map(|_| ())
    }
}

/// The events.k8s.io/v1 Event for `note`, named as client-go names them (object name and the
/// time in hex nanoseconds), in the object's namespace.
pub fn event(
    note: &Note<'_>,
    regarding: &ObjectReference,
    controller: &str,
    instance: &str,
    now: jiff::Timestamp,
) -> Event {
    let name = regarding.name.as_deref().unwrap_or(controller);
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: regarding.namespace.clone(),
            ..Default::default()
        },
        event_time: Some(MicroTime(now)),
        type_: Some(if note.warning { "Warning" } else { "Normal" }.into()),
        reason: Some(note.reason.into()),
        action: Some(note.action.into()),
        note: Some(note.message.clone()),
        regarding: Some(regarding.clone()),
        reporting_controller: Some(controller.into()),
        reporting_instance: Some(instance.into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_names_its_object_and_reporter() {
        let regarding = ObjectReference {
            kind: Some("Workspace".into()),
            name: Some("team-a".into()),
            namespace: Some("platform".into()),
            ..Default::default()
        };
        let note = Note { warning: true, reason: "NamespaceConflict", action: "Failed", message: "taken".into() };
        let now: jiff::Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        let e = event(&note, &regarding, "workspace-operator", "pod-1", now);
        assert_eq!(e.metadata.namespace.as_deref(), Some("platform"));
        assert_eq!(e.metadata.name, Some(format!("team-a.{:x}", now.as_nanosecond())));
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(e.reason.as_deref(), Some("NamespaceConflict"));
        assert_eq!(e.regarding, Some(regarding));
        assert_eq!(e.reporting_instance.as_deref(), Some("pod-1"));
        assert_eq!(e.event_time, Some(MicroTime(now)));
    }
}
