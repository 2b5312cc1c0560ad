{{/*
Names: what the chart calls its objects. Every name fits the 63 characters of a DNS label
(less where Kubernetes appends to it), and two objects never share one however long the
release name is.
*/}}

{{- define "chromadb.name" -}}
{{- default .Chart.Name .Values.nameOverride | toString | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
`fullnameOverride`, else `<release>-<name>` (always both parts, so existing releases keep
their object names), cut to the 63 characters a DNS label allows.
*/}}
{{- define "chromadb.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | toString | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "chromadb.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
`<fullname>-<suffix>` within the 63 characters a DNS label allows. The base is cut before the
suffix is added, so two objects with different suffixes never end up with one name however
long the release name is. Call with (dict "ctx" $ "suffix" "config").
*/}}
{{- define "chromadb.suffixedName" -}}
{{- $room := sub 62 (len .suffix) | int -}}
{{- printf "%s-%s" (include "chromadb.fullname" .ctx | trunc $room | trimSuffix "-") .suffix -}}
{{- end -}}

{{/*
The StatefulSet's name: the full name cut to 52 characters. The controller labels each pod
with `controller-revision-hash: <name>-<hash>`, and a label value may not exceed 63.
*/}}
{{- define "chromadb.statefulSetName" -}}
{{- include "chromadb.fullname" . | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{/* The headless Service that gives the StatefulSet's pod its stable DNS name. */}}
{{- define "chromadb.headlessServiceName" -}}
{{- printf "%s-headless" (include "chromadb.fullname" . | trunc 54 | trimSuffix "-") -}}
{{- end -}}

{{- define "chromadb.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "chromadb.serviceAccountName" -}}
{{- if eq (include "chromadb.bool" (dict "key" "serviceAccount.create" "value" .Values.serviceAccount.create)) "true" -}}
{{- default (include "chromadb.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "chromadb.configMapName" -}}
{{- include "chromadb.suffixedName" (dict "ctx" . "suffix" "config") -}}
{{- end -}}

{{- define "chromadb.logConfigMapName" -}}
{{- default (include "chromadb.suffixedName" (dict "ctx" . "suffix" "log-config")) .Values.chromadb.logConfigMap -}}
{{- end -}}

{{- define "chromadb.tokenConfigMapName" -}}
{{- include "chromadb.suffixedName" (dict "ctx" . "suffix" "token-auth-config") -}}
{{- end -}}

{{- define "chromadb.collectorName" -}}
{{- include "chromadb.suffixedName" (dict "ctx" . "suffix" "otel-collector") -}}
{{- end -}}

{{- define "chromadb.dashboardName" -}}
{{- include "chromadb.suffixedName" (dict "ctx" . "suffix" "dashboard") -}}
{{- end -}}

{{- define "chromadb.uvicornTlsConfigMapName" -}}
{{- include "chromadb.suffixedName" (dict "ctx" . "suffix" "uvicorn-tls") -}}
{{- end -}}

{{- define "chromadb.tlsProxyConfigMapName" -}}
{{- include "chromadb.suffixedName" (dict "ctx" . "suffix" "tls-proxy") -}}
{{- end -}}

{{/* The DNS names a cluster client can use for the Service, short to fully qualified. */}}
{{- define "chromadb.serviceDnsNames" -}}
{{- $ns := .Release.Namespace -}}
{{- $names := list -}}
{{- range $svc := list (include "chromadb.fullname" .) (include "chromadb.headlessServiceName" .) -}}
{{- $names = concat $names (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns)) -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}
