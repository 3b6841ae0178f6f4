//! A CRD of the tests' own (not any operator's), exercising every admission feature.

pub const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wg], listKind: WidgetList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Color, type: string, jsonPath: .spec.color}
    - {name: Phase, type: string, jsonPath: .status.phase}
    - {name: Mode, type: string, jsonPath: .spec.mode, priority: 1}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    selectableFields:
    - jsonPath: .spec.color
    - jsonPath: .spec.size
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            x-kubernetes-validations:
            - rule: "self.size <= 10 || self.mode == 'big'"
              message: size too big
            properties:
              size: {type: integer, minimum: 1, maximum: 100}
              color: {type: string, enum: [red, green, blue], default: red}
              mode: {type: string, default: small}
              name: {type: string, pattern: '^[a-z]+$', maxLength: 8}
              tags: {type: array, maxItems: 3, items: {type: string}}
              serial:
                type: string
                x-kubernetes-validations:
                - {rule: "self == oldSelf", message: serial is immutable}
          status:
            type: object
            properties:
              phase: {type: string}
"#;

pub fn widget(name: &str, ns: &str, size: i64, color: &str, labels: &[(&str, &str)]) -> String {
    let labels: String = labels.iter().map(|(k, v)| format!("    {k}: \"{v}\"\n")).collect();
    let labels = if labels.is_empty() { String::new() } else { format!("  labels:\n{labels}") };
    format!(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {name}\n  namespace: {ns}\n{labels}spec:\n  size: {size}\n  color: {color}\n"
    )
}
