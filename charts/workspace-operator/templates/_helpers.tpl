{{- define "wo.name" -}}workspace-operator{{- end -}}

{{- define "wo.fullname" -}}
{{- if contains "workspace-operator" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-workspace-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "wo.labels" -}}
app.kubernetes.io/name: {{ include "wo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "wo.selector" -}}
app.kubernetes.io/name: {{ include "wo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
