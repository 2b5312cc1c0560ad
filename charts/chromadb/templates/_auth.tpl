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

{{/*
The Python server's auth settings, env entries each starting with a newline, in the names
of the version's era: CHROMA_SERVER_AUTH_* and a credentials provider class before 0.5.0,
CHROMA_SERVER_AUTHN_* from 0.5.0. Nothing when no auth mode is configured.
*/}}
{{- define "chromadb.authEnv" -}}
{{- $mode := include "chromadb.authMode" . -}}
{{- $secret := include "chromadb.authSecretName" . -}}
{{- $authn := include "chromadb.authnEra" . -}}
{{- if eq $mode "token" }}
{{- if $authn }}
- name: CHROMA_SERVER_AUTHN_PROVIDER
  value: "chromadb.auth.token_authn.TokenAuthenticationServerProvider"
- name: CHROMA_SERVER_AUTHN_CREDENTIALS
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: token
- name: CHROMA_AUTH_TOKEN_TRANSPORT_HEADER
  value: {{ include "chromadb.tokenHeaderSetting" . | quote }}
{{- else }}
- name: CHROMA_SERVER_AUTH_PROVIDER
  value: "chromadb.auth.token.TokenAuthServerProvider"
- name: CHROMA_SERVER_AUTH_CREDENTIALS_PROVIDER
  value: "chromadb.auth.token.TokenConfigServerAuthCredentialsProvider"
- name: CHROMA_SERVER_AUTH_CREDENTIALS
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: token
- name: CHROMA_SERVER_AUTH_TOKEN_TRANSPORT_HEADER
  value: {{ include "chromadb.tokenHeaderSetting" . | quote }}
{{- end }}
{{- else if eq $mode "basic" }}
{{- if $authn }}
- name: CHROMA_SERVER_AUTHN_PROVIDER
  value: "chromadb.auth.basic_authn.BasicAuthenticationServerProvider"
- name: CHROMA_SERVER_AUTHN_CREDENTIALS_FILE
  value: {{ include "chromadb.htpasswdFile" . | quote }}
{{- else }}
- name: CHROMA_SERVER_AUTH_PROVIDER
  value: "chromadb.auth.basic.BasicAuthServerProvider"
- name: CHROMA_SERVER_AUTH_CREDENTIALS_PROVIDER
  value: "chromadb.auth.providers.HtpasswdFileServerAuthCredentialsProvider"
- name: CHROMA_SERVER_AUTH_CREDENTIALS_FILE
  value: {{ include "chromadb.htpasswdFile" . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Basic auth: the init container that writes the htpasswd file from the credentials Secret
before the server starts (a container list item); nothing in other modes.
*/}}
{{- define "chromadb.htpasswdInitContainer" -}}
{{- if eq (include "chromadb.authMode" .) "basic" }}
{{- $secret := include "chromadb.authSecretName" . }}
- name: htpasswd
  image: {{ include "chromadb.initImage" . | quote }}
  imagePullPolicy: {{ .Values.initImage.pullPolicy }}
  command: ["sh", "-c", "htpasswd -Bbc \"$HTPASSWD_FILE\" \"$CHROMA_BASIC_AUTH_USERNAME\" \"$CHROMA_BASIC_AUTH_PASSWORD\""]
  env:
    - name: CHROMA_BASIC_AUTH_USERNAME
      valueFrom:
        secretKeyRef:
          name: {{ $secret }}
          key: username
    - name: CHROMA_BASIC_AUTH_PASSWORD
      valueFrom:
        secretKeyRef:
          name: {{ $secret }}
          key: password
    - name: HTPASSWD_FILE
      value: {{ include "chromadb.htpasswdFile" . | quote }}
    {{- /* htpasswd (apr) writes a temp file before the real one and exits 1 ("could not
           determine temp dir") when it finds no writable one: the root is read-only. */}}
    - name: TMPDIR
      value: /tmp
  {{- with .Values.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: htpasswd
      mountPath: {{ include "chromadb.htpasswdDir" . }}
    - name: htpasswd-tmp
      mountPath: /tmp
{{- end }}
{{- end -}}

{{/* Basic auth: where the server reads the htpasswd file (a volumeMounts item); nothing in other modes. */}}
{{- define "chromadb.htpasswdVolumeMount" -}}
{{- if eq (include "chromadb.authMode" .) "basic" }}
- name: htpasswd
  mountPath: {{ include "chromadb.htpasswdDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* Basic auth: the pod's volumes for the htpasswd file and the init container's temp dir; nothing in other modes. */}}
{{- define "chromadb.htpasswdVolumes" -}}
{{- if eq (include "chromadb.authMode" .) "basic" }}
- name: htpasswd
  emptyDir: {}
- name: htpasswd-tmp
  emptyDir: {}
{{- end }}
{{- end -}}
