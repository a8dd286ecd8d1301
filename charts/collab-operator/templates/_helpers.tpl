{{/* Chart name, overridable. */}}
{{- define "collab-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "collab-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "collab-operator.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "collab-operator.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Labels of the pod selector. */}}
{{- define "collab-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "collab-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "collab-operator.labels" -}}
{{ include "collab-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "collab-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "collab-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Images. */}}
{{- define "collab-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- define "collab-operator.serverImage" -}}
{{- printf "%s:%s" .Values.serverImage.repository (default .Chart.AppVersion .Values.serverImage.tag) }}
{{- end }}

{{/* Replicas the Deployment runs: replicaCount with leader election, otherwise always 1. */}}
{{- define "collab-operator.replicas" -}}
{{- if .Values.leaderElection.enabled }}{{ int .Values.replicaCount }}{{ else }}1{{ end }}
{{- end }}

{{/* The leader-election Lease's name (in the release namespace): default the release's full name. */}}
{{- define "collab-operator.leaseName" -}}
{{- default (include "collab-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* The CRD the operator applies with crds.applyOnStart (the only one the chart ships). */}}
{{- define "collab-operator.crdName" -}}
collabservers.collab.zedi.dev
{{- end }}

{{/*
Exactly what collab-operator calls (operator/src/controller) in the namespaces it watches:
nothing more. One list for both modes: the ClusterRole (watchNamespaces empty) and the Role in
each watched namespace, so they cannot drift. Server-side apply creates with create and
updates with patch; pruning lists and deletes.
*/}}
{{- define "collab-operator.namespacedRules" -}}
# Watch CollabServers; write their status.
- apiGroups: ["collab.zedi.dev"]
  resources: ["collabservers"]
  verbs: ["list", "watch"]
- apiGroups: ["collab.zedi.dev"]
  resources: ["collabservers/status"]
  verbs: ["patch"]
# Children's owner references block the CollabServer's deletion (blockOwnerDeletion), which
# the OwnerReferencesPermissionEnforcement admission plugin allows only with this.
- apiGroups: ["collab.zedi.dev"]
  resources: ["collabservers/finalizers"]
  verbs: ["update"]
# Read referenced Secrets (get), watch their metadata, and own the managed Redis Secret.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# The operator no longer creates ConfigMaps: it watches and deletes the one it made before.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["list", "watch", "delete"]
# The managed Redis's own ServiceAccount; stale ones are pruned.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["list", "create", "patch", "delete"]
# The managed Redis's volume claim: read, created once, never deleted.
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "create", "patch"]
# get: the status reads the workloads back after a failed reconcile.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies", "ingresses"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["monitoring.coreos.com"]
  resources: ["servicemonitors"]
  verbs: ["list", "create", "patch", "delete"]
# Events about CollabServers (a repeated event is patched into a series).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* The pod and container securityContext of the operator, shared by the `helm test` pods. */}}
{{- define "collab-operator.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}
{{- define "collab-operator.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end }}
