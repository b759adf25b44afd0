{{/* Name prefix of every object: the release name. */}}
{{- define "mswa-api.fullname" -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end }}

{{- define "mswa-api.selectorLabels" -}}
app.kubernetes.io/name: mswa-api
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mswa-api.labels" -}}
{{ include "mswa-api.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: mswa
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}
