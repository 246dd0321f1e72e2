{{/*
Names and labels shared by every template of the chart.
*/}}

{{- define "strata-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, unless it lacks the chart name (then release-chart). */}}
{{- define "strata-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "strata-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "strata-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "strata-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "strata-operator.labels" -}}
helm.sh/chart: {{ include "strata-operator.chart" . }}
{{ include "strata-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: strata
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "strata-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "strata-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "strata-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
What the operator may do in the namespaces it watches (a ClusterRole, or a Role per watched
namespace). Least privilege: no create on its own custom resources, pods only labelled (broker
id) and deleted (one broker at a time during a rolling restart), claims only deleted for storage.retainOnDelete=false,
secrets read (MirrorFlow credentials) and written, never deleted (the certificates of
secured KafkaClusters, owned by the cluster).
*/}}
{{- define "strata-operator.rules" -}}
- apiGroups: [kafka.strata.dev]
  resources: [kafkaclusters, kafkatopics, mirrorflows]
  verbs: [get, list, watch, patch, update]
- apiGroups: [kafka.strata.dev]
  resources: [kafkaclusters/status, kafkatopics/status, mirrorflows/status]
  verbs: [get, patch, update]
- apiGroups: [kafka.strata.dev]
  resources: [kafkaclusters/finalizers, kafkatopics/finalizers, mirrorflows/finalizers]
  verbs: [update]
- apiGroups: [apps]
  resources: [statefulsets]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [""]
  resources: [services, configmaps]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, patch, delete]
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, list, watch, delete]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch, update]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
{{- end }}

{{/* Refuses values that would make an unsafe or broken install. */}}
{{- define "strata-operator.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled=true: two operators acting at once would fight over the same objects" }}
{{- end }}
{{- range .Values.watchNamespaces }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" .) }}
{{- fail (printf "watchNamespaces: %q is not a namespace name" .) }}
{{- end }}
{{- end }}
{{- end }}
