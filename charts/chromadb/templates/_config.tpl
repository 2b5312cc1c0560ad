{{/*
The 1.x server config: keys the chart manages, optional keys only when set, then
chromadb.extraConfig deep-merged over it (extra wins).
*/}}
{{- define "chromadb.serverConfig" -}}
{{- $c := .Values.chromadb -}}
{{- $cfg := dict
      "port" (include "chromadb.int" (dict "key" "chromadb.serverHttpPort" "value" $c.serverHttpPort) | int64)
      "listen_address" ($c.serverHost | toString)
      "max_payload_size_bytes" (include "chromadb.int" (dict "key" "chromadb.maxPayloadSizeBytes" "value" $c.maxPayloadSizeBytes) | int64)
      "persist_path" $c.persistDirectory
      "allow_reset" (eq (include "chromadb.bool" (dict "key" "chromadb.allowReset" "value" $c.allowReset)) "true") -}}
{{- with $c.corsAllowOrigins }}{{ $_ := set $cfg "cors_allow_origins" . }}{{ end -}}
{{- with $c.sqliteFilename }}{{ $_ := set $cfg "sqlite_filename" . }}{{ end -}}
{{- $sqlitedb := dict -}}
{{- with $c.sqliteDb.hashType }}{{ $_ := set $sqlitedb "hash_type" . }}{{ end -}}
{{- with $c.sqliteDb.migrationMode }}{{ $_ := set $sqlitedb "migration_mode" . }}{{ end -}}
{{- with $sqlitedb }}{{ $_ := set $cfg "sqlitedb" . }}{{ end -}}
{{- if not (kindIs "invalid" $c.circuitBreaker.requests) -}}
{{- $_ := set $cfg "circuit_breaker" (dict "requests" (include "chromadb.int" (dict "key" "chromadb.circuitBreaker.requests" "value" $c.circuitBreaker.requests) | int64)) -}}
{{- end -}}
{{- if include "chromadb.otelExported" . -}}
{{- $otel := dict "service_name" ($c.telemetry.serviceName | default "chroma") "endpoint" (include "chromadb.otelEndpoint" .) -}}
{{- with $c.telemetry.filters }}{{ $_ := set $otel "filters" . }}{{ end -}}
{{- $_ := set $cfg "open_telemetry" $otel -}}
{{- end -}}
{{- with $c.segmentManager.hnswIndexPoolCacheConfig -}}
{{- $cache := deepCopy . -}}
{{- /* The server reads the cache as a one-key map named for the policy ({memory: {capacity: …}});
       the documented {policy: memory, capacity: …} form is turned into that, other forms pass through. */}}
{{- if and (hasKey $cache "policy") (kindIs "string" $cache.policy) -}}
{{- $policy := $cache.policy -}}
{{- $cache = dict $policy (omit $cache "policy") -}}
{{- end -}}
{{- $_ := set $cfg "segment_manager" (dict "hnsw_index_pool_cache_config" $cache) -}}
{{- end -}}
{{- $merged := mergeOverwrite $cfg (deepCopy ($c.extraConfig | default dict)) -}}
{{- toYaml $merged -}}
{{- end -}}

{{/* Where the 1.x config file is mounted; the container args point here. */}}
{{- define "chromadb.serverConfigDir" -}}/etc/chroma{{- end -}}
{{- define "chromadb.serverConfigPath" -}}/etc/chroma/config.yaml{{- end -}}

{{/* Python logging config (dictConfig) for the < 1.0 server, from chromadb.logging.*. */}}
{{- define "chromadb.logConfigData" -}}
{{- $l := .Values.chromadb.logging -}}
{{- $cfg := dict
      "version" 1
      "disable_existing_loggers" false
      "formatters" (dict "default" (dict "format" "%(asctime)s %(levelname)s [%(name)s] %(message)s"))
      "handlers" (dict "console" (dict "class" "logging.StreamHandler" "formatter" "default" "stream" "ext://sys.stdout"))
      "root" (dict "level" ($l.root | toString | upper) "handlers" (list "console"))
      "loggers" (dict
          "chromadb" (dict "level" ($l.chromadb | toString | upper))
          "uvicorn" (dict "level" ($l.uvicorn | toString | upper))
          "uvicorn.error" (dict "level" ($l.uvicorn | toString | upper))
          "uvicorn.access" (dict "level" ($l.uvicorn | toString | upper))) -}}
{{- if hasSuffix ".json" .Values.chromadb.logConfigFileLocation -}}
{{- toPrettyJson $cfg -}}
{{- else -}}
{{- toYaml $cfg -}}
{{- end -}}
{{- end -}}

{{/* Key of the log config inside its ConfigMap (the chart's or chromadb.logConfigMap). */}}
{{- define "chromadb.logConfigKey" -}}log_config.yaml{{- end -}}
