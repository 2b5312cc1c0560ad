{{/*
Env: the Chroma container's environment. The Python server (0.x) reads its settings from
env, under names that change with the era (docs/chroma-eras.md); the Rust server (1.x)
reads the config file, so it gets only extraEnv.
*/}}

{{/* The Chroma container's env entries: the era's settings, then extraEnv. Empty on 1.x without extraEnv. */}}
{{- define "chromadb.serverEnv" -}}
{{- if not (include "chromadb.isRust" .) }}
{{- include "chromadb.pythonEnv" . }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The Python server's settings, each entry starting with a newline. */}}
{{- define "chromadb.pythonEnv" -}}
{{- $c := .Values.chromadb -}}
{{- $port := include "chromadb.serverHttpPort" . -}}
{{- $entrypointEra := include "chromadb.entrypointEra" . }}
- name: IS_PERSISTENT
  value: {{ include "chromadb.bool" (dict "key" "chromadb.isPersistent" "value" $c.isPersistent) | quote }}
- name: PERSIST_DIRECTORY
  value: {{ $c.persistDirectory | quote }}
- name: ALLOW_RESET
  value: {{ include "chromadb.bool" (dict "key" "chromadb.allowReset" "value" $c.allowReset) | quote }}
- name: ANONYMIZED_TELEMETRY
  value: {{ include "chromadb.bool" (dict "key" "chromadb.anonymizedTelemetry" "value" $c.anonymizedTelemetry) | quote }}
- name: CHROMA_SERVER_CORS_ALLOW_ORIGINS
  value: {{ $c.corsAllowOrigins | default list | toJson | quote }}
- name: CHROMA_SERVER_HTTP_PORT
  value: {{ $port | quote }}
{{- include "chromadb.otelEnv" . }}
{{- if and $entrypointEra (include "chromadb.fullCommand" .) }}
{{- /* The 0.4.23+ entrypoint raises the open-files limit; keep that when it is bypassed. */}}
- name: CHROMA_SERVER_NOFILE
  value: "65535"
{{- end }}
{{- if $entrypointEra }}
{{- /* Read by the image's entrypoint from 0.4.23 on. */}}
- name: CHROMA_HOST_ADDR
  value: {{ $c.serverHost | toString | quote }}
- name: CHROMA_HOST_PORT
  value: {{ $port | quote }}
- name: CHROMA_LOG_CONFIG
  value: {{ $c.logConfigFileLocation | quote }}
{{- if eq ($c.maintenance.collection_cache_policy | default "") "LRU" }}
- name: CHROMA_SEGMENT_CACHE_POLICY
  value: "LRU"
- name: CHROMA_MEMORY_LIMIT_BYTES
  value: {{ include "chromadb.int" (dict "key" "chromadb.maintenance.collection_cache_limit_bytes" "value" $c.maintenance.collection_cache_limit_bytes) | quote }}
{{- end }}
{{- end }}
{{- include "chromadb.authEnv" . }}
{{- end -}}
