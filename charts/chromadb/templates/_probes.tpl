{{/* Probes: how the kubelet decides the server has started, is ready and is alive. */}}

{{/* startup/readiness/liveness probes on the heartbeat, HTTPS when TLS is on (the kubelet does not verify the certificate). */}}
{{- define "chromadb.probes" -}}
{{- $heartbeat := printf "%s/heartbeat" (include "chromadb.apiPrefix" .) -}}
{{- $portName := include "chromadb.portName" . -}}
{{- $tls := include "chromadb.tls" . -}}
{{- range $kind := list "startupProbe" "readinessProbe" "livenessProbe" }}
{{- $p := index $.Values $kind | default dict }}
{{- if eq (include "chromadb.bool" (dict "key" (printf "%s.enabled" $kind) "value" $p.enabled)) "true" }}
{{ $kind }}:
  httpGet:
    path: {{ $heartbeat }}
    port: {{ $portName }}
    {{- if $tls }}
    scheme: HTTPS
    {{- end }}
  {{- range $field := list "initialDelaySeconds" "periodSeconds" "timeoutSeconds" "failureThreshold" }}
  {{- if not (kindIs "invalid" (index $p $field)) }}
  {{ $field }}: {{ include "chromadb.int" (dict "key" (printf "%s.%s" $kind $field) "value" (index $p $field)) }}
  {{- end }}
  {{- end }}
{{- end }}
{{- end }}
{{- end -}}
