{{/*
Eras: which Chroma version is deployed, and the version gates the templates branch on.
docs/chroma-eras.md says what changes at each floor.
*/}}

{{/* The release a versioned image tag (`0.6.3`, `v1.5.0`, `1.0.0-amd64`) names, else "". */}}
{{- define "chromadb.tagVersion" -}}
{{- $tag := .Values.image.tag | default "" | toString -}}
{{- regexFind "^[0-9]+\\.[0-9]+\\.[0-9]+" (trimPrefix "v" $tag) -}}
{{- end -}}

{{/*
Where the chart's rendering changes: auth kinds (0.4.7, 0.4.8), OpenTelemetry settings
(0.4.15), uvicorn flags (0.4.16), the
image entrypoint (0.4.23), auth settings (0.5.0), the token header form (0.5.1), the API
generation (0.5.16), the Rust server (1.0.0), the CORS wildcard (1.0.11). Two releases between
the same floors are configured identically: that is what "the same era" means to the chart.
*/}}
{{- define "chromadb.eraFloors" -}}0.4.7 0.4.8 0.4.15 0.4.16 0.4.23 0.5.0 0.5.1 0.5.16 1.0.0 1.0.11{{- end -}}

{{/*
The Chroma version every gate compares against: chromadb.apiVersion, else the release a
versioned image.tag names, else appVersion. A versioned tag of another era than apiVersion
fails: the chart would configure one server and run another.
*/}}
{{- define "chromadb.apiVersion" -}}
{{- $v := .Values.chromadb.apiVersion | default "" | toString | trimPrefix "v" -}}
{{- $tagV := include "chromadb.tagVersion" . -}}
{{- $from := "chromadb.apiVersion" -}}
{{- if and (not $v) $tagV -}}{{- $v = $tagV -}}{{- $from = "image.tag" -}}{{- end -}}
{{- if not $v -}}{{- $v = .Chart.AppVersion -}}{{- end -}}
{{- if not (regexMatch "^[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z.-]+)?(\\+[0-9A-Za-z.-]+)?$" $v) -}}
{{- fail (printf "chromadb.apiVersion: %q is not a Chroma version; use a full version such as 0.4.24, 0.6.3 or 1.5.0" $v) -}}
{{- end -}}
{{- if semverCompare "<0.4.3-0" $v -}}
{{- fail (printf "%s: %s is older than the oldest supported Chroma (0.4.3); use 0.4.3 or later" $from $v) -}}
{{- end -}}
{{- if and $tagV (eq $from "chromadb.apiVersion") -}}
{{- range $floor := splitList " " (include "chromadb.eraFloors" .) -}}
{{- $c := printf ">=%s-0" $floor -}}
{{- if ne (semverCompare $c $v) (semverCompare $c $tagV) -}}
{{- fail (printf "image.tag: %s is Chroma %s but chromadb.apiVersion is %s, and the chart configures releases before and from %s differently (the server would crash or ignore its settings); use a tag of the same era as %s, or leave chromadb.apiVersion empty so the tag decides" (toString $.Values.image.tag) $tagV $v $floor $v) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $v -}}
{{- end -}}

{{/* "true" when the version is at or above the given floor (a semver such as 0.4.23). */}}
{{- define "chromadb.atLeast" -}}
{{- if semverCompare (printf ">=%s-0" .floor) (include "chromadb.apiVersion" .ctx) -}}true{{- end -}}
{{- end -}}

{{- define "chromadb.isRust" -}}
{{- include "chromadb.atLeast" (dict "ctx" . "floor" "1.0.0") -}}
{{- end -}}

{{/* "true" from 0.4.23, whose image entrypoint reads host, port and log config from env. */}}
{{- define "chromadb.entrypointEra" -}}
{{- include "chromadb.atLeast" (dict "ctx" . "floor" "0.4.23") -}}
{{- end -}}

{{/* "true" from 0.5.0, which names its auth settings CHROMA_SERVER_AUTHN_* (before: CHROMA_SERVER_AUTH_*). */}}
{{- define "chromadb.authnEra" -}}
{{- include "chromadb.atLeast" (dict "ctx" . "floor" "0.5.0") -}}
{{- end -}}

{{/* The API generation the version serves (v2 from 0.5.16). */}}
{{- define "chromadb.apiPrefix" -}}
{{- if include "chromadb.atLeast" (dict "ctx" . "floor" "0.5.16") -}}/api/v2{{- else -}}/api/v1{{- end -}}
{{- end -}}

{{/* The collection listing of the version's API (v2 nests it under the default tenant and database). */}}
{{- define "chromadb.collectionsPath" -}}
{{- $prefix := include "chromadb.apiPrefix" . -}}
{{- if eq $prefix "/api/v2" -}}
{{- printf "%s/tenants/default_tenant/databases/default_database/collections" $prefix -}}
{{- else -}}
{{- printf "%s/collections" $prefix -}}
{{- end -}}
{{- end -}}
