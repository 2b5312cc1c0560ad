{{/*
Config files the pods read: the 1.x server's config YAML, the Python server's logging
config, and the nginx config of the 1.x TLS proxy.
*/}}

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
{{- if include "chromadb.tlsProxy" . -}}
{{- /* Behind the TLS proxy the server answers on loopback only: nothing reaches it around the proxy. */}}
{{- $_ := set $cfg "listen_address" "127.0.0.1" -}}
{{- $_ := set $cfg "port" (include "chromadb.int" (dict "key" "tls.proxy.serverPort" "value" .Values.tls.proxy.serverPort) | int64) -}}
{{- end -}}
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

{{/*
nginx config of the 1.x TLS proxy. Paths are all under volumes (read-only root). The
certificate is named through a variable, which makes nginx read it at each handshake: a
renewed Secret (the kubelet swaps the mounted files) is served with no reload or restart.
The payload limit and CORS stay the server's: no body size limit here (the server answers
413 itself) and no CORS headers added or stripped.
*/}}
{{- define "chromadb.tlsProxyConfig" -}}
{{- $port := include "chromadb.int" (dict "key" "chromadb.serverHttpPort" "value" .Values.chromadb.serverHttpPort) -}}
{{- $upstream := include "chromadb.int" (dict "key" "tls.proxy.serverPort" "value" .Values.tls.proxy.serverPort) -}}
worker_processes 1;
pid /tmp/nginx.pid;
error_log /dev/stderr notice;
events {
    worker_connections 1024;
}
http {
    access_log /dev/stdout;
    client_body_temp_path /tmp/client_temp;
    proxy_temp_path /tmp/proxy_temp;
    fastcgi_temp_path /tmp/fastcgi_temp;
    uwsgi_temp_path /tmp/uwsgi_temp;
    scgi_temp_path /tmp/scgi_temp;
    map $ssl_server_name $chroma_tls_dir {
        default {{ include "chromadb.tlsDir" . }};
    }
    server {
        listen {{ $port }} ssl;
        ssl_certificate $chroma_tls_dir/tls.crt;
        ssl_certificate_key $chroma_tls_dir/tls.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        client_max_body_size 0;
        location / {
            proxy_pass http://127.0.0.1:{{ $upstream }};
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            proxy_read_timeout 300s;
            proxy_send_timeout 300s;
        }
    }
    # Serves nothing. With fixed paths nginx loads this pair when it starts, so a key that does
    # not match its certificate stops the container, the message naming the Secret's mount.
    server {
        listen unix:/tmp/chroma-tls-check.sock ssl;
        ssl_certificate {{ include "chromadb.tlsDir" . }}/tls.crt;
        ssl_certificate_key {{ include "chromadb.tlsDir" . }}/tls.key;
        return 444;
    }
}
{{- end -}}

{{/* Where the Chroma container reads its config file: 1.x's config directory, else 0.x's log config (a volumeMounts item). */}}
{{- define "chromadb.configVolumeMount" -}}
{{- if include "chromadb.isRust" . -}}
- name: server-config
  mountPath: {{ include "chromadb.serverConfigDir" . }}
  readOnly: true
{{- else -}}
- name: log-config
  mountPath: {{ .Values.chromadb.logConfigFileLocation }}
  subPath: {{ include "chromadb.logConfigKey" . }}
  readOnly: true
{{- end -}}
{{- end -}}

{{/* The ConfigMap behind chromadb.configVolumeMount (a volumes item). */}}
{{- define "chromadb.configVolume" -}}
{{- if include "chromadb.isRust" . -}}
- name: server-config
  configMap:
    name: {{ include "chromadb.configMapName" . }}
{{- else -}}
- name: log-config
  configMap:
    name: {{ include "chromadb.logConfigMapName" . }}
{{- end -}}
{{- end -}}

{{/* A hash of every rendered ConfigMap the pod reads, so a config change rolls the pod. */}}
{{- define "chromadb.configChecksum" -}}
{{- $c := .Values.chromadb -}}
{{- $configHash := "" -}}
{{- if include "chromadb.isRust" . -}}
{{- $configHash = include "chromadb.serverConfig" . -}}
{{- if include "chromadb.tlsProxy" . }}{{ $configHash = printf "%s\n%s" $configHash (include "chromadb.tlsProxyConfig" .) }}{{ end -}}
{{- else -}}
{{- $configHash = printf "%s\n%s\n%s" (include "chromadb.logConfigData" .) (toString $c.logConfigMap) (include "chromadb.tokenHeaderName" .) -}}
{{- if include "chromadb.uvicornTls" . }}{{ $configHash = printf "%s\n%s" $configHash (.Files.Get "files/uvicorn-tls.py") }}{{ end -}}
{{- end -}}
{{- sha256sum $configHash -}}
{{- end -}}
