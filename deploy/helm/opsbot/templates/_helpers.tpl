{{/* The chart's name, at most 63 characters. */}}
{{- define "opsbot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's resource name: the release name, with the chart's name
unless the release name already holds it. */}}
{{- define "opsbot.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "opsbot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "opsbot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "opsbot.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "opsbot.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "opsbot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "opsbot.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret the chat tokens and the database URL come from. */}}
{{- define "opsbot.secretName" -}}
{{- .Values.existingSecret | default (include "opsbot.fullname" .) }}
{{- end }}

{{/* The ConfigMap with policy.yaml (and known_hosts). */}}
{{- define "opsbot.configMapName" -}}
{{- .Values.policy.existingConfigMap | default (include "opsbot.fullname" .) }}
{{- end }}

{{/* The policy file's text, when the chart makes the ConfigMap. */}}
{{- define "opsbot.policy" -}}
{{- if .Values.policy.content }}
{{- .Values.policy.content }}
{{- else if .Values.policy.config }}
{{- toYaml .Values.policy.config }}
{{- else -}}
# No policy values: the built-in policy (see values.yaml, policy.config).
{}
{{- end }}
{{- end }}

{{/* OPSBOT_SHUTDOWN_GRACE in seconds: the pod's grace period less the
preStop sleep, the bot's 10 s to cancel and deliver, and 5 s of margin. */}}
{{- define "opsbot.shutdownGrace" -}}
{{- sub (sub (int .Values.terminationGracePeriodSeconds) (int .Values.preStopSleepSeconds)) 15 }}
{{- end }}

{{/* Settings that cannot work together fail the render with the reason. */}}
{{- define "opsbot.validate" -}}
{{- if not (has .Values.database.type (list "postgres" "sqlite")) }}
{{- fail (printf "database.type must be postgres or sqlite, not %q" .Values.database.type) }}
{{- end }}
{{- if and (eq .Values.database.type "sqlite") (gt (int .Values.replicaCount) 1) }}
{{- fail "database.type=sqlite keeps the store in one pod's file: set replicaCount=1, or use database.type=postgres for several replicas" }}
{{- end }}
{{- if lt (include "opsbot.shutdownGrace" . | int) 1 }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be at least preStopSleepSeconds (%d) + 16: the bot needs 10 s after its shutdown grace to cancel and post, and 5 s of margin" (int .Values.terminationGracePeriodSeconds) (int .Values.preStopSleepSeconds)) }}
{{- end }}
{{- if not .Values.image.repository }}
{{- fail "image.repository is empty: name the image built from deploy/container/Dockerfile" }}
{{- end }}
{{- end }}
