{{/*
Command: how the Chroma container starts on each era. 1.x runs its server on the chart's
config file; 0.x runs the image's entrypoint, or uvicorn given in full where the entrypoint
would override the values.
*/}}

{{/*
"true" where the 0.x command is given in full, bypassing the entrypoint: images before
0.4.23 start uvicorn with a fixed port and log config, every 0.x entrypoint exports
IS_PERSISTENT=1 over the pod's env, and uvicorn's TLS flags go on the command line (so with
TLS the command is given in full on every 0.x era).
*/}}
{{- define "chromadb.fullCommand" -}}
{{- if and (not (include "chromadb.isRust" .)) (or (not (include "chromadb.entrypointEra" .)) (not (include "chromadb.persistent" .)) (include "chromadb.tls" .)) -}}true{{- end -}}
{{- end -}}

{{/*
The Chroma container's `args` (1.x) or `command` (0.x given in full), as container fields;
nothing where the 0.x image's entrypoint starts the server.
*/}}
{{- define "chromadb.serverCommand" -}}
{{- $c := .Values.chromadb -}}
{{- if include "chromadb.isRust" . }}
args: ["run", {{ include "chromadb.serverConfigPath" . | quote }}]
{{- else if include "chromadb.fullCommand" . }}
command:
  {{- if include "chromadb.uvicornTls" . }}
  - python
  - {{ include "chromadb.uvicornTlsScript" . }}
  {{- else }}
  - uvicorn
  {{- end }}
  - chromadb.app:app
  - --workers
  - "1"
  - --host
  - {{ $c.serverHost | toString | quote }}
  - --port
  - {{ include "chromadb.serverHttpPort" . | quote }}
  - --proxy-headers
  - --log-config
  - {{ $c.logConfigFileLocation | quote }}
  {{- if include "chromadb.atLeast" (dict "ctx" . "floor" "0.4.16") }}
  - --timeout-keep-alive
  - "30"
  {{- end }}
  {{- if include "chromadb.tls" . }}
  - --ssl-certfile
  - {{ printf "%s/tls.crt" (include "chromadb.tlsDir" .) | quote }}
  - --ssl-keyfile
  - {{ printf "%s/tls.key" (include "chromadb.tlsDir" .) | quote }}
  - --tls-secret
  - {{ include "chromadb.tlsSecretName" . | quote }}
  {{- end }}
{{- end }}
{{- end -}}
