{{/*
Images: every container image reference the chart renders, with the registry override,
digest pinning and pull secrets.
*/}}

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

{{- define "chromadb.collectorImage" -}}
{{- include "chromadb.image" (dict "image" .Values.metrics.collector.image "global" .Values.global "defaultTag" "0.115.1") -}}
{{- end -}}

{{- define "chromadb.proxyImage" -}}
{{- include "chromadb.image" (dict "image" .Values.tls.proxy.image "global" .Values.global "defaultTag" "1.27-alpine") -}}
{{- end -}}

{{/* The backup tool ships with the chart: its tag is the chart version. */}}
{{- define "chromadb.backupImage" -}}
{{- include "chromadb.image" (dict "image" .Values.backup.image "global" .Values.global "defaultTag" .Chart.Version) -}}
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
