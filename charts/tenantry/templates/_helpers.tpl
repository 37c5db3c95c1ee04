{{- define "tenantry.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tenantry.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tenantry.labels" -}}
app.kubernetes.io/name: {{ include "tenantry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "tenantry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tenantry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The rules Tenantry needs on its own resources and tenant Secrets. */}}
{{- define "tenantry.tenantRules" -}}
- apiGroups: [connect.tenantry.dev]
  resources: [connectapps]
  verbs: [get, list, watch, update, patch]
- apiGroups: [connect.tenantry.dev]
  resources: [connecttenants]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [connect.tenantry.dev]
  resources: [connectapps/status, connecttenants/status]
  verbs: [get, update, patch]
- apiGroups: [connect.tenantry.dev]
  resources: [connectapps/finalizers, connecttenants/finalizers]
  verbs: [update]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, update, delete]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end -}}
