{{/* Name prefix of every object: the release name. */}}
{{- define "mastodon.fullname" -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end }}

{{- define "mastodon.tag" -}}
{{- .Values.image.tag | default .Chart.AppVersion -}}
{{- end }}

{{- define "mastodon.image" -}}
{{ .Values.image.repository }}:{{ include "mastodon.tag" . }}
{{- end }}

{{/* Selector labels of a component: (dict "ctx" $ "component" "web"). They
     never change, so a Deployment's selector stays valid across upgrades. */}}
{{- define "mastodon.selectorLabels" -}}
app.kubernetes.io/name: mastodon
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "mastodon.labels" -}}
{{ include "mastodon.selectorLabels" . }}
app.kubernetes.io/version: {{ include "mastodon.tag" .ctx | quote }}
app.kubernetes.io/part-of: mastodon
{{- end }}

{{/* Environment of every Mastodon pod: settings from values, secrets
     from the existing Secret. */}}
{{- define "mastodon.env" -}}
- {name: LOCAL_DOMAIN, value: {{ .Values.localDomain | quote }}}
- {name: RAILS_ENV, value: production}
- {name: NODE_ENV, value: production}
- {name: DB_HOST, value: {{ .Values.database.host | quote }}}
- {name: DB_PORT, value: {{ .Values.database.port | quote }}}
- {name: DB_NAME, value: {{ .Values.database.name | quote }}}
- {name: DB_USER, value: {{ .Values.database.user | quote }}}
- {name: REDIS_HOST, value: {{ .Values.redis.host | quote }}}
- {name: REDIS_PORT, value: {{ .Values.redis.port | quote }}}
- {name: MASTODON_PROMETHEUS_EXPORTER_ENABLED, value: "true"}
- {name: MASTODON_PROMETHEUS_EXPORTER_LOCAL, value: "true"}
- {name: MASTODON_PROMETHEUS_EXPORTER_HOST, value: "0.0.0.0"}
- {name: MASTODON_PROMETHEUS_EXPORTER_PORT, value: {{ .Values.metrics.port | quote }}}
{{- range $k, $v := .Values.extraEnv }}
- {name: {{ $k }}, value: {{ $v | quote }}}
{{- end }}
{{- end }}

{{- define "mastodon.envFrom" -}}
- secretRef: {name: {{ .Values.existingSecret }}}
{{- end }}

{{/* Pods run as Mastodon's unprivileged user. */}}
{{- define "mastodon.podSecurity" -}}
securityContext:
  runAsUser: 991
  runAsGroup: 991
  fsGroup: 991
  runAsNonRoot: true
{{- end }}

{{- define "mastodon.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  capabilities: {drop: [ALL]}
{{- end }}

{{/* A rolling update that never has fewer ready pods than replicas: a new
     pod must be Ready before an old one is stopped. */}}
{{- define "mastodon.zeroDowntime" -}}
strategy:
  type: RollingUpdate
  rollingUpdate: {maxSurge: 25%, maxUnavailable: 0}
{{- end }}
