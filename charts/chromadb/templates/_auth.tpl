{{/*
Auth: which mode the version runs (token, basic or none), where the credentials come from,
and the token header in the form each era parses.
*/}}

{{/* The generated Secret keeps the name the documentation's kubectl commands use. */}}
{{- define "chromadb.authSecretName" -}}
{{- default "chromadb-auth" .Values.chromadb.auth.existingSecret -}}
{{- end -}}

{{/*
The auth mode actually configured: "token", "basic" or "" (none). Empty on 1.x, when
disabled, and below the kind's first version (token 0.4.8, basic 0.4.7), so that nothing
half-configured is rendered.
*/}}
{{- define "chromadb.authMode" -}}
{{- $auth := .Values.chromadb.auth -}}
{{- if and (not (include "chromadb.isRust" .)) (eq (include "chromadb.bool" (dict "key" "chromadb.auth.enabled" "value" $auth.enabled)) "true") -}}
{{- if and (eq $auth.type "token") (include "chromadb.atLeast" (dict "ctx" . "floor" "0.4.8")) -}}
token
{{- else if and (eq $auth.type "basic") (include "chromadb.atLeast" (dict "ctx" . "floor" "0.4.7")) -}}
basic
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "AUTHORIZATION" or "X_CHROMA_TOKEN" from any accepted spelling of headerType. */}}
{{- define "chromadb.tokenHeaderKind" -}}
{{- $raw := .Values.chromadb.auth.token.headerType | default "" | toString -}}
{{- $norm := $raw | upper | replace "-" "_" -}}
{{- if has $norm (list "AUTHORIZATION" "X_CHROMA_TOKEN") -}}
{{- $norm -}}
{{- else -}}
{{- fail (printf "chromadb.auth.token.headerType: must be Authorization, X-Chroma-Token or X_CHROMA_TOKEN (any case), got %q" $raw) -}}
{{- end -}}
{{- end -}}


{{/* The HTTP header a client sends the token in. */}}
{{- define "chromadb.tokenHeaderName" -}}
{{- if eq (include "chromadb.tokenHeaderKind" .) "AUTHORIZATION" -}}Authorization{{- else -}}X-Chroma-Token{{- end -}}
{{- end -}}


{{/*
The transport-header setting in the form the server parses: 0.4.8–0.5.0 look the value up
by enum member name (AUTHORIZATION / X_CHROMA_TOKEN); 0.5.1 and later construct the enum from
its value and accept only "Authorization" / "X-Chroma-Token".
*/}}
{{- define "chromadb.tokenHeaderSetting" -}}
{{- if include "chromadb.atLeast" (dict "ctx" . "floor" "0.5.1") -}}
{{- include "chromadb.tokenHeaderName" . -}}
{{- else -}}
{{- include "chromadb.tokenHeaderKind" . -}}
{{- end -}}
{{- end -}}

{{/* Where the init container writes, and the server reads, the htpasswd file. */}}
{{- define "chromadb.htpasswdDir" -}}/chroma-auth{{- end -}}
{{- define "chromadb.htpasswdFile" -}}/chroma-auth/htpasswd{{- end -}}
