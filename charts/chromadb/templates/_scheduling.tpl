{{/* Scheduling: where the chart's pods may run. */}}

{{/*
The scheduling knobs every pod of the chart takes (`priorityClassName`, `nodeSelector`,
`affinity`, `tolerations`), read from the map `values` (e.g. .Values.backup). Prints pod spec
fields, each line starting with a newline; nothing when none is set.
*/}}
{{- define "chromadb.podScheduling" -}}
{{- $v := .values | default dict -}}
{{- with $v.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
