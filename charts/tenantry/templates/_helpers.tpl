{{- define "tenantry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- /* Helm's convention: fullnameOverride wins; otherwise the release
name, suffixed with the (overridable) chart name unless it holds it. */ -}}
{{- define "tenantry.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- /* The ServiceAccount the pods run as: the chart's, or one the user
manages when serviceAccount.create is false. */ -}}
{{- define "tenantry.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tenantry.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- /* The image reference: a digest pins it and replaces the tag
(cert-manager's rule); the tag defaults to the chart's appVersion, which
make image also tags the image with. */ -}}
{{- define "tenantry.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{- /* The namespaces Tenantry serves, as JSON (read with fromJsonArray):
watchNamespaces when listed; otherwise the release namespace alone, unless
rbac.clusterWide opts in to every namespace, which renders []. */ -}}
{{- define "tenantry.watchNamespaces" -}}
{{- if .Values.watchNamespaces -}}
{{- toJson .Values.watchNamespaces -}}
{{- else if .Values.rbac.clusterWide -}}
[]
{{- else -}}
{{- toJson (list .Release.Namespace) -}}
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
