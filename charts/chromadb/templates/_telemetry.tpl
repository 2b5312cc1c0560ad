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
