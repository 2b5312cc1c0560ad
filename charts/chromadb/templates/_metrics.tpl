{{/*
Metrics: the chart's OpenTelemetry collector, which turns Chroma's spans and metrics into
Prometheus metrics, its ServiceMonitor and its Grafana dashboard.
*/}}

{{- define "chromadb.metricsEnabled" -}}
{{- if eq (include "chromadb.bool" (dict "key" "metrics.enabled" "value" (.Values.metrics | default dict).enabled)) "true" -}}true{{- end -}}
{{- end -}}

{{/* "true" when the chart renders a ServiceMonitor: forced, or auto and the cluster serves the CRD. */}}
{{- define "chromadb.serviceMonitor" -}}
{{- if include "chromadb.metricsEnabled" . -}}
{{- $mode := .Values.metrics.serviceMonitor.mode | default "auto" | toString -}}
{{- if or (eq $mode "force") (and (eq $mode "auto") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor")) -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/* The Grafana dashboard's uid: one per release and namespace (Grafana keeps one dashboard per
     uid, so a fixed one would let two releases overwrite each other), within Grafana's 40 characters. */}}
{{- define "chromadb.dashboardUid" -}}
{{- printf "chroma-%s" (printf "%s/%s" .Release.Namespace .Release.Name | sha256sum | trunc 16) -}}
{{- end -}}

{{/*
The collector's config: Chroma's OTLP in; spans → the spanmetrics connector (calls, errors,
latency histogram per route) → Prometheus; Chroma's own 1.x metrics → Prometheus too. When the
user also named an endpoint, traces and metrics are fanned out to it.
*/}}
{{- define "chromadb.collectorConfig" -}}
{{- $promPort := include "chromadb.int" (dict "key" "metrics.port" "value" .Values.metrics.port) | int -}}
{{- $upstream := .Values.chromadb.telemetry.endpoint | default "" | toString -}}
{{- $traceOut := list "spanmetrics" -}}
{{- $metricOut := list "prometheus" -}}
{{- $exporters := dict "prometheus" (dict "endpoint" (printf "0.0.0.0:%d" $promPort)) -}}
{{- if $upstream -}}
{{- $_ := set $exporters "otlp/upstream" (dict "endpoint" $upstream "tls" (dict "insecure" (hasPrefix "http://" $upstream))) -}}
{{- $traceOut = append $traceOut "otlp/upstream" -}}
{{- $metricOut = append $metricOut "otlp/upstream" -}}
{{- end -}}
{{- $cfg := dict
  "receivers" (dict "otlp" (dict "protocols" (dict "grpc" (dict "endpoint" "0.0.0.0:4317"))))
  "processors" (dict "batch" dict)
  "connectors" (dict "spanmetrics" (dict
      "namespace" "traces.span.metrics"
      "histogram" (dict "explicit" (dict "buckets" (list "2ms" "5ms" "10ms" "25ms" "50ms" "100ms" "250ms" "500ms" "1s" "2500ms" "5s" "10s")))
      "dimensions" (list (dict "name" "http.method") (dict "name" "http.route") (dict "name" "http.status_code"))))
  "exporters" $exporters
  "extensions" (dict "health_check" (dict "endpoint" "0.0.0.0:13133"))
  "service" (dict
      "extensions" (list "health_check")
      "pipelines" (dict
        "traces" (dict "receivers" (list "otlp") "processors" (list "batch") "exporters" $traceOut)
        "metrics" (dict "receivers" (list "otlp" "spanmetrics") "processors" (list "batch") "exporters" $metricOut))) -}}
{{- toYaml $cfg -}}
{{- end -}}
