{{/*
Names. Defaults equal the kustomize manifests in knative/ (config-restarter, config-restarter-source, ...).
*/}}
{{- define "config-restarter.name" -}}
{{- .Values.name -}}
{{- end }}

{{- define "config-restarter.sourceName" -}}
{{- printf "%s-source" .Values.name -}}
{{- end }}

{{- define "config-restarter.workloadSourceName" -}}
{{- printf "%s-workloads" .Values.name -}}
{{- end }}

{{- define "config-restarter.resyncName" -}}
{{- printf "%s-resync" .Values.name -}}
{{- end }}

{{- define "config-restarter.deadLetterName" -}}
{{- printf "%s-dead-letter" .Values.name -}}
{{- end }}

{{/*
Labels on every object: the kustomize label (part-of) plus Helm's standard ones.
*/}}
{{- define "config-restarter.labels" -}}
app.kubernetes.io/part-of: config-restarter
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Watch scope from settings.watchNamespaces: "own" (release namespace), "list" or "all" ("*").
*/}}
{{- define "config-restarter.scope" -}}
{{- $ns := .Values.settings.watchNamespaces -}}
{{- if not $ns -}}own{{- else if has "*" $ns -}}all{{- else -}}list{{- end -}}
{{- end }}

{{/*
Namespaces that get Roles and RoleBindings (scope own/list), as a YAML list.
*/}}
{{- define "config-restarter.roleNamespaces" -}}
{{- if eq (include "config-restarter.scope" .) "list" -}}
{{ toYaml (uniq .Values.settings.watchNamespaces) }}
{{- else -}}
{{ toYaml (list .Release.Namespace) }}
{{- end -}}
{{- end }}

{{/*
THE ACCESS TABLE: every permission the chart grants, and the only place that lists one.
Keys: role suffix ("" = <name>, "-source" = <name>-source, "-secrets", ...); each entry names its ServiceAccount
("function" or "source"), the option that turns it on (`when`, see config-restarter.options; none = always),
whether it is cluster-wide whatever the watch scope (`clusterWide`), and its rules (kinds -> exact verbs).
  - function: read the config object named in an event (Reference mode sends no content; list for the resync),
    keep a watch-fed index of the workloads (list + watch), patch their pod template. A Knative Service restarts
    through a new Revision (a patch of its spec.template), never through the Deployment Knative owns: nothing on
    Revisions or Deployments of Knative.
  - source: the ApiServerSource controller checks get, list and watch on every watched kind before it starts
    the adapter.
  - secrets (settings.configKinds contains Secret): the same for Secrets.
  - argoRollouts: a Rollout restarts through a patch of itself (spec.template or spec.restartAt); the Deployment
    a workloadRef names is never touched.
  - authentication: the function asks the API server about each sender's token with a TokenReview, which is
    cluster-scoped: a ClusterRole in every watch scope.
*/}}
{{- define "config-restarter.access" -}}
"":
  serviceAccount: function
  rules:
    - apiGroups: [""]
      resources: [configmaps]
      verbs: [get, list]
    - apiGroups: [apps]
      resources: [deployments, statefulsets, daemonsets]
      verbs: [get, list, watch, patch]
    - apiGroups: [batch]
      resources: [cronjobs]
      verbs: [get, list, watch, patch]
    - apiGroups: [serving.knative.dev]
      resources: [services]
      verbs: [get, list, watch, patch]
    - apiGroups: [""]
      resources: [events]
      verbs: [create]
"-source":
  serviceAccount: source
  rules:
    - apiGroups: [""]
      resources: [configmaps]
      verbs: [get, list, watch]
    - apiGroups: [apps]
      resources: [deployments, statefulsets, daemonsets]
      verbs: [get, list, watch]
    - apiGroups: [serving.knative.dev]
      resources: [services]
      verbs: [get, list, watch]
"-secrets":
  serviceAccount: function
  when: secrets
  rules:
    - apiGroups: [""]
      resources: [secrets]
      verbs: [get, list]
"-source-secrets":
  serviceAccount: source
  when: secrets
  rules:
    - apiGroups: [""]
      resources: [secrets]
      verbs: [get, list, watch]
"-rollouts":
  serviceAccount: function
  when: argoRollouts
  rules:
    - apiGroups: [argoproj.io]
      resources: [rollouts]
      verbs: [get, list, watch, patch]
"-tokenreview":
  serviceAccount: function
  when: authentication
  clusterWide: true
  rules:
    - apiGroups: [authentication.k8s.io]
      resources: [tokenreviews]
      verbs: [create]
{{- end }}

{{/*
The options that turn rows of the access table on, as a YAML map of booleans.
*/}}
{{- define "config-restarter.options" -}}
secrets: {{ has "Secret" .Values.settings.configKinds }}
argoRollouts: {{ .Values.argoRollouts.enabled }}
authentication: {{ .Values.settings.authentication.enabled }}
{{- end }}

{{/*
AUTH_ALLOWED_SUBJECTS: the listed subjects, or "" for the function's defaults (the senders named
config-restarter-source, config-restarter-workloads, config-restarter-resync and config-restarter in its own namespace). Those defaults
only fit when the chart keeps that name; otherwise the senders' OIDC identities must be listed.
*/}}
{{- define "config-restarter.allowedSubjects" -}}
{{- $auth := .Values.settings.authentication -}}
{{- if $auth.allowedSubjects -}}
{{- join "," (uniq $auth.allowedSubjects) -}}
{{- else if ne (include "config-restarter.name" .) "config-restarter" -}}
{{- fail (printf "settings.authentication.allowedSubjects is required when name is not config-restarter (the function's default senders are config-restarter-source, config-restarter-workloads, config-restarter-resync and the Trigger config-restarter): list system:serviceaccount:%s:<account> for the status.auth.serviceAccountName of %s-source, %s-workloads, %s-resync and, with the Broker, the Trigger %s" .Release.Namespace .Values.name .Values.name .Values.name .Values.name) -}}
{{- end -}}
{{- end }}

{{/*
Image reference by digest: <repository>@<digest>, or the bare repository when no digest is given (only
allowed for the dead-letter image; the schema and the Service template require one for the function).
*/}}
{{- define "config-restarter.image" -}}
{{- if .digest -}}{{ printf "%s@%s" .repository .digest }}{{- else -}}{{ .repository }}{{- end -}}
{{- end }}

{{/*
The label that opts a ConfigMap or Secret in and that the ApiServerSource selects on: <annotationPrefix>/watch.
*/}}
{{- define "config-restarter.watchLabel" -}}
{{- printf "%s/watch" .Values.settings.annotationPrefix -}}
{{- end }}

{{/*
The ApiServerSource's label selector, as YAML ({} = none): source.selector, with the watch label "true" added to
its matchLabels while source.requireWatchLabel is on (the API server then sends only opted-in objects).
*/}}
{{- define "config-restarter.sourceSelector" -}}
{{- $selector := deepCopy (.Values.source.selector | default dict) -}}
{{- if .Values.source.requireWatchLabel -}}
{{- $key := include "config-restarter.watchLabel" . -}}
{{- $labels := $selector.matchLabels | default dict -}}
{{- if and (hasKey $labels $key) (ne (get $labels $key) "true") -}}
{{- fail (printf "source.selector.matchLabels sets %s to %q while source.requireWatchLabel selects %s=\"true\": drop it from the selector or turn requireWatchLabel off" $key (get $labels $key) $key) -}}
{{- end -}}
{{- $_ := set $selector "matchLabels" (merge (dict $key "true") $labels) -}}
{{- end -}}
{{- toYaml $selector -}}
{{- end }}

{{/*
Where both sources deliver: the function's Knative Service, or the Broker.
*/}}
{{- define "config-restarter.sink" -}}
sink:
  ref:
{{- if .Values.broker.enabled }}
    apiVersion: eventing.knative.dev/v1
    kind: Broker
    name: {{ .Values.broker.name }}
{{- else }}
    apiVersion: serving.knative.dev/v1
    kind: Service
    name: {{ include "config-restarter.name" . }}
  audience: {{ include "config-restarter.audience" . }}
{{- end }}
{{- end }}

{{/*
The function's OIDC audience: with Knative Eventing's `authentication-oidc` feature on, senders send a token for
it (a Knative Service announces none of its own). Ignored while the feature is off.
*/}}
{{- define "config-restarter.audience" -}}
serving.knative.dev/service/{{ .Release.Namespace }}/{{ include "config-restarter.name" . }}
{{- end }}

{{/*
The same hardened container securityContext as the kustomize manifests (container level only: no Knative
feature flag needed).
*/}}
{{- define "config-restarter.securityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}
