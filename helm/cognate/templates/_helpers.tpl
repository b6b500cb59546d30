{{- define "cognate.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cognate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cognate.labels" -}}
app.kubernetes.io/name: {{ include "cognate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "cognate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cognate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cognate.secretName" -}}
{{- .Values.secret.existingSecret | default (include "cognate.fullname" .) -}}
{{- end -}}

{{- define "cognate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "cognate.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- /* The port of config.metrics.listen ("0.0.0.0:9100" -> 9100), or nothing: /metrics is then on the http port. */}}
{{- define "cognate.metricsPort" -}}
{{- with (.Values.config.metrics | default dict).listen -}}
{{- regexFind "[0-9]+$" . -}}
{{- end -}}
{{- end -}}
