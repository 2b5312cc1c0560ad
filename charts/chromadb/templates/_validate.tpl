{{/*
Render-time checks. values.schema.json refuses most bad input already; these repeat the
rules that a schema cannot express (cross-key rules, version rules) and keep the chart safe
when schema validation is skipped. They hold on every version, even where the version
ignores the key, so one values file cannot render for one version and fail for another.
*/}}

{{/* An integer value (YAML numbers arrive as float64, --set numbers as int64). */}}
{{- define "chromadb.int" -}}
{{- $v := .value -}}
{{- if or (kindIs "int" $v) (kindIs "int64" $v) -}}
{{- $v -}}
{{- else if and (kindIs "float64" $v) (eq (float64 (int64 $v)) $v) -}}
{{- int64 $v -}}
{{- else -}}
{{- fail (printf "%s: must be an integer, got %v" .key $v) -}}
{{- end -}}
{{- end -}}

{{- define "chromadb.validate" -}}
{{- $c := .Values.chromadb -}}
{{- range $key, $val := dict
      "chromadb.allowReset" $c.allowReset
      "chromadb.isPersistent" $c.isPersistent
      "chromadb.anonymizedTelemetry" $c.anonymizedTelemetry
      "chromadb.auth.enabled" $c.auth.enabled
      "chromadb.telemetry.enabled" $c.telemetry.enabled
      "serviceAccount.create" $.Values.serviceAccount.create
      "serviceAccount.automountServiceAccountToken" $.Values.serviceAccount.automountServiceAccountToken
      "ingress.enabled" $.Values.ingress.enabled }}
{{- $_ := include "chromadb.bool" (dict "key" $key "value" $val) -}}
{{- end -}}

{{- $_ := include "chromadb.apiVersion" . -}}

{{- if not (and (kindIs "string" $c.persistDirectory) (hasPrefix "/" $c.persistDirectory)) -}}
{{- fail (printf "chromadb.persistDirectory: must be an absolute path (starting with /), got %v" $c.persistDirectory) -}}
{{- end -}}

{{- $port := include "chromadb.int" (dict "key" "chromadb.serverHttpPort" "value" $c.serverHttpPort) | int64 -}}
{{- if or (lt $port 1) (gt $port 65535) -}}
{{- fail (printf "chromadb.serverHttpPort: must be a port number from 1 to 65535, got %d" $port) -}}
{{- end -}}

{{- $payload := include "chromadb.int" (dict "key" "chromadb.maxPayloadSizeBytes" "value" $c.maxPayloadSizeBytes) | int64 -}}
{{- if lt $payload 1 -}}
{{- fail (printf "chromadb.maxPayloadSizeBytes: must be a positive number of bytes, got %d" $payload) -}}
{{- end -}}

{{- if not (kindIs "invalid" $c.circuitBreaker.requests) -}}
{{- $req := include "chromadb.int" (dict "key" "chromadb.circuitBreaker.requests" "value" $c.circuitBreaker.requests) | int64 -}}
{{- if or (lt $req 0) (gt $req 4294967295) -}}
{{- fail (printf "chromadb.circuitBreaker.requests: must be 0 (disabled) or a positive integer, got %d" $req) -}}
{{- end -}}
{{- end -}}

{{- if not (has ($c.sqliteDb.hashType | default "") (list "" "md5" "sha256")) -}}
{{- fail (printf "chromadb.sqliteDb.hashType: must be md5 or sha256 (or empty for the server default), got %q" $c.sqliteDb.hashType) -}}
{{- end -}}
{{- if not (has ($c.sqliteDb.migrationMode | default "") (list "" "apply" "validate")) -}}
{{- fail (printf "chromadb.sqliteDb.migrationMode: must be apply or validate (or empty for the server default), got %q" $c.sqliteDb.migrationMode) -}}
{{- end -}}

{{- if and (eq (include "chromadb.bool" (dict "key" "chromadb.telemetry.enabled" "value" $c.telemetry.enabled)) "true") (not $c.telemetry.endpoint) -}}
{{- fail "chromadb.telemetry.endpoint: must be set (e.g. http://otel-collector:4317) when chromadb.telemetry.enabled is true" -}}
{{- end -}}

{{- $extra := $c.extraConfig | default dict -}}
{{- if hasKey $extra "port" -}}
{{- fail "chromadb.extraConfig.port: may not be set through extraConfig; use chromadb.serverHttpPort so the Service, container port and probes follow it" -}}
{{- end -}}
{{- if hasKey $extra "listen_address" -}}
{{- fail "chromadb.extraConfig.listen_address: may not be set through extraConfig; use chromadb.serverHost" -}}
{{- end -}}

{{- if not (has $c.auth.type (list "token" "basic")) -}}
{{- fail (printf "chromadb.auth.type: must be token or basic, got %v" $c.auth.type) -}}
{{- end -}}
{{- $_ := include "chromadb.tokenHeaderKind" . -}}

{{- $policy := $c.maintenance.collection_cache_policy | default "" -}}
{{- if not (has $policy (list "" "LRU")) -}}
{{- fail (printf "chromadb.maintenance.collection_cache_policy: must be null or LRU, got %v" $policy) -}}
{{- end -}}
{{- $limit := include "chromadb.int" (dict "key" "chromadb.maintenance.collection_cache_limit_bytes" "value" $c.maintenance.collection_cache_limit_bytes) | int64 -}}
{{- if and (eq $policy "LRU") (lt $limit 1) -}}
{{- fail (printf "chromadb.maintenance.collection_cache_limit_bytes: must be a positive number of bytes when collection_cache_policy is LRU, got %d" $limit) -}}
{{- end -}}

{{- if not (has $c.data.retentionPolicyOnDelete (list "Delete" "Retain")) -}}
{{- fail (printf "chromadb.data.retentionPolicyOnDelete: must be Delete or Retain, got %v" $c.data.retentionPolicyOnDelete) -}}
{{- end -}}

{{- $log := $c.logConfigFileLocation | default "" | toString -}}
{{- if not (hasPrefix "/" $log) -}}
{{- fail (printf "chromadb.logConfigFileLocation: must be an absolute path, got %q" $log) -}}
{{- end -}}
{{- if not (regexMatch "\\.(ya?ml|json)$" $log) -}}
{{- fail (printf "chromadb.logConfigFileLocation: must end in .yaml, .yml or .json (the server picks the parser from the extension), got %q" $log) -}}
{{- end -}}
{{- range $name := list "root" "chromadb" "uvicorn" -}}
{{- $lvl := index $c.logging $name | default "" | toString | upper -}}
{{- if not (has $lvl (list "CRITICAL" "FATAL" "ERROR" "WARNING" "WARN" "INFO" "DEBUG" "NOTSET")) -}}
{{- fail (printf "chromadb.logging.%s: must be a Python log level (DEBUG, INFO, WARNING, ERROR, CRITICAL), got %q" $name (index $c.logging $name | toString)) -}}
{{- end -}}
{{- end -}}

{{- $origins := $c.corsAllowOrigins | default list -}}
{{- if not (kindIs "slice" $origins) -}}
{{- fail (printf "chromadb.corsAllowOrigins: must be a list of origins, got %v" $origins) -}}
{{- end -}}
{{- if and (has "*" $origins) (include "chromadb.atLeast" (dict "ctx" . "floor" "1.0.0")) (not (include "chromadb.atLeast" (dict "ctx" . "floor" "1.0.11"))) -}}
{{- fail (printf "chromadb.corsAllowOrigins: a \"*\" wildcard makes Chroma %s panic at start (fixed in 1.0.11); list the origins explicitly or use 1.0.11 or later" (include "chromadb.apiVersion" .)) -}}
{{- end -}}
{{- end -}}
