{{/* Telemetry: whether Chroma exports OpenTelemetry, and where it sends it. */}}

{{/* "true" when telemetry is enabled and the version reads OpenTelemetry settings
(CHROMA_OTEL_* from 0.4.15 on the Python server; open_telemetry on 1.x). */}}
{{- define "chromadb.otelExported" -}}
{{- $c := .Values.chromadb -}}
{{- if and (or (include "chromadb.metricsEnabled" .) (eq (include "chromadb.bool" (dict "key" "chromadb.telemetry.enabled" "value" $c.telemetry.enabled)) "true")) (include "chromadb.atLeast" (dict "ctx" . "floor" "0.4.15")) -}}true{{- end -}}
{{- end -}}

{{/* Where Chroma sends OTLP: the chart's collector when metrics are on, else chromadb.telemetry.endpoint. */}}
{{- define "chromadb.otelEndpoint" -}}
{{- if include "chromadb.metricsEnabled" . -}}
{{- printf "http://%s:4317" (include "chromadb.collectorName" .) -}}
{{- else -}}
{{- .Values.chromadb.telemetry.endpoint -}}
{{- end -}}
{{- end -}}

{{/*
The Python server's OpenTelemetry settings (0.4.15+), env entries each starting with a
newline: its OTLP/gRPC span exporter, whose own granularity default (none) would send
nothing. Filters are a 1.x setting (the config file's open_telemetry).
*/}}
{{- define "chromadb.otelEnv" -}}
{{- $t := .Values.chromadb.telemetry -}}
{{- if include "chromadb.otelExported" . }}
- name: CHROMA_OTEL_COLLECTION_ENDPOINT
  value: {{ include "chromadb.otelEndpoint" . | quote }}
- name: CHROMA_OTEL_SERVICE_NAME
  value: {{ $t.serviceName | default "chroma" | quote }}
- name: CHROMA_OTEL_GRANULARITY
  value: {{ $t.granularity | default "operation" | quote }}
{{- end }}
{{- end -}}
