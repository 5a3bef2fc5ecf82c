{{/* The labels of every object of the chart. */}}
{{- define "dwo.labels" -}}
app.kubernetes.io/name: dataworkspace-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/* The operator pods' selector. */}}
{{- define "dwo.selector" -}}
app.kubernetes.io/name: dataworkspace-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The operator's username, as the API server sees its ServiceAccount. */}}
{{- define "dwo.username" -}}
system:serviceaccount:{{ .Release.Namespace }}:{{ .Values.serviceAccount.name }}
{{- end }}

{{/* The image reference. */}}
{{- define "dwo.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
{{- end }}
