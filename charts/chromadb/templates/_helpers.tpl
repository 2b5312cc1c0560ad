{{/* Names ------------------------------------------------------------------ */}}

{{- define "chromadb.name" -}}
chromadb
{{- end -}}

{{/* `<release>-chromadb`, cut to the 63 characters a DNS label allows. */}}
{{- define "chromadb.fullname" -}}
{{- printf "%s-chromadb" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "chromadb.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "chromadb.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "chromadb.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The generated Secret keeps the name the documentation's kubectl commands use. */}}
{{- define "chromadb.authSecretName" -}}
{{- default "chromadb-auth" .Values.chromadb.auth.existingSecret -}}
{{- end -}}

{{- define "chromadb.configMapName" -}}
{{- printf "%s-config" (include "chromadb.fullname" .) -}}
{{- end -}}

{{- define "chromadb.logConfigMapName" -}}
{{- default (printf "%s-log-config" (include "chromadb.fullname" .)) .Values.chromadb.logConfigMap -}}
{{- end -}}

{{- define "chromadb.tokenConfigMapName" -}}
{{- printf "%s-token-auth-config" (include "chromadb.fullname" .) -}}
{{- end -}}

{{/* Labels ----------------------------------------------------------------- */}}

{{- define "chromadb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chromadb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* commonLabels go last so a user can add to, but the chart's own keys stay stable. */}}
{{- define "chromadb.commonLabels" -}}
{{- range $k, $v := .Values.commonLabels }}
{{ $k }}: {{ $v | toString | quote }}
{{- end }}
{{- end -}}

{{- define "chromadb.labels" -}}
helm.sh/chart: {{ include "chromadb.chart" . }}
{{ include "chromadb.selectorLabels" . }}
app.kubernetes.io/version: {{ include "chromadb.apiVersion" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- include "chromadb.commonLabels" . }}
{{- end -}}

{{/*
Labels for the PVC template. volumeClaimTemplates cannot change on an existing StatefulSet,
so nothing that moves with the chart or Chroma version goes here.
*/}}
{{- define "chromadb.pvcLabels" -}}
{{ include "chromadb.selectorLabels" . }}
{{- include "chromadb.commonLabels" . }}
{{- end -}}

{{/* Version ---------------------------------------------------------------- */}}

{{/* The Chroma version every gate compares against: chromadb.apiVersion, else appVersion. */}}
{{- define "chromadb.apiVersion" -}}
{{- $v := .Values.chromadb.apiVersion | default "" | toString | trimPrefix "v" -}}
{{- if not $v -}}{{- $v = .Chart.AppVersion -}}{{- end -}}
{{- if not (regexMatch "^[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z.-]+)?(\\+[0-9A-Za-z.-]+)?$" $v) -}}
{{- fail (printf "chromadb.apiVersion: %q is not a Chroma version; use a full version such as 0.4.24, 0.6.3 or 1.5.0" $v) -}}
{{- end -}}
{{- if semverCompare "<0.4.3-0" $v -}}
{{- fail (printf "chromadb.apiVersion: %s is older than the oldest supported Chroma (0.4.3); use 0.4.3 or later" $v) -}}
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

{{/* The API generation the version serves (v2 from 0.5.16). */}}
{{- define "chromadb.apiPrefix" -}}
{{- if include "chromadb.atLeast" (dict "ctx" . "floor" "0.5.16") -}}/api/v2{{- else -}}/api/v1{{- end -}}
{{- end -}}

{{/* Booleans --------------------------------------------------------------- */}}

{{/*
A spec boolean: a YAML bool, or the string true/false in any case. Prints "true"/"false";
anything else fails naming the key. Call with (dict "key" "chromadb.x" "value" .Values…).
*/}}
{{- define "chromadb.bool" -}}
{{- $v := .value -}}
{{- if kindIs "bool" $v -}}
{{- ternary "true" "false" $v -}}
{{- else if and (kindIs "string" $v) (eq (lower $v) "true") -}}
true
{{- else if and (kindIs "string" $v) (eq (lower $v) "false") -}}
false
{{- else -}}
{{- fail (printf "%s: must be true or false (a boolean, or the string \"true\"/\"false\" in any case), got %v" .key $v) -}}
{{- end -}}
{{- end -}}

{{- define "chromadb.persistent" -}}
{{- if eq (include "chromadb.bool" (dict "key" "chromadb.isPersistent" "value" .Values.chromadb.isPersistent)) "true" -}}true{{- end -}}
{{- end -}}

{{/* Auth ------------------------------------------------------------------- */}}

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

{{/* Images ----------------------------------------------------------------- */}}

{{/*
An image reference from {registry, repository, tag, digest}. A registry override replaces
the registry part of the repository; a digest wins over the tag.
Call with (dict "image" … "global" .Values.global "defaultTag" "…").
*/}}
{{- define "chromadb.image" -}}
{{- $img := .image -}}
{{- $global := .global | default dict -}}
{{- $registry := $img.registry | default $global.imageRegistry | default "" -}}
{{- $repo := $img.repository -}}
{{- if $registry -}}
{{- $parts := splitList "/" $repo -}}
{{- $first := first $parts -}}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- $repo = rest $parts | join "/" -}}
{{- end -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" $registry) $repo -}}
{{- end -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $repo $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (toString ($img.tag | default .defaultTag)) -}}
{{- end -}}
{{- end -}}

{{- define "chromadb.chromaImage" -}}
{{- include "chromadb.image" (dict "image" .Values.image "global" .Values.global "defaultTag" (include "chromadb.apiVersion" .)) -}}
{{- end -}}

{{- define "chromadb.initImage" -}}
{{- include "chromadb.image" (dict "image" .Values.initImage "global" .Values.global "defaultTag" "2") -}}
{{- end -}}

{{- define "chromadb.testImage" -}}
{{- include "chromadb.image" (dict "image" .Values.tests.image "global" .Values.global "defaultTag" "latest") -}}
{{- end -}}

{{/* Chart and global pull secrets, merged, as [{name: …}]. */}}
{{- define "chromadb.imagePullSecrets" -}}
{{- $names := list -}}
{{- $global := .Values.global | default dict -}}
{{- range concat (.Values.imagePullSecrets | default list) ($global.imagePullSecrets | default list) -}}
{{- if kindIs "string" . -}}
{{- $names = append $names . -}}
{{- else if and (kindIs "map" .) .name -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- end -}}
{{- with ($names | uniq) }}
imagePullSecrets:
{{- range . }}
  - name: {{ . | quote }}
{{- end }}
{{- end }}
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
