{{/* Name prefix of every object: the release name. */}}
{{- define "mswa-web.fullname" -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end }}

{{- define "mswa-web.selectorLabels" -}}
app.kubernetes.io/name: mswa-web
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mswa-web.labels" -}}
{{ include "mswa-web.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: mswa
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}
