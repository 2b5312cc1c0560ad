{{/*
Values as the spec types them: an integer or a boolean may arrive as a YAML number or bool,
a --set string or a quoted string; each is read here or refused naming its key.
*/}}

{{/* An integer value (YAML numbers arrive as float64, --set numbers as int64). */}}
{{- define "chromadb.int" -}}
{{- $v := .value -}}
{{- if or (kindIs "int" $v) (kindIs "int64" $v) -}}
{{- $v -}}
{{- else if and (kindIs "float64" $v) (eq (float64 (int64 $v)) $v) -}}
{{- int64 $v -}}
{{- else -}}
{{- fail (printf "%s: must be an integer, got %v" .key $v) -}}
{{- end -}}
{{- end -}}

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

{{/* "true" when Chroma's data lives on a volume that outlasts the pod. */}}
{{- define "chromadb.persistent" -}}
{{- if eq (include "chromadb.bool" (dict "key" "chromadb.isPersistent" "value" .Values.chromadb.isPersistent)) "true" -}}true{{- end -}}
{{- end -}}

{{/* The port Chroma serves its API on (chromadb.serverHttpPort). */}}
{{- define "chromadb.serverHttpPort" -}}
{{- include "chromadb.int" (dict "key" "chromadb.serverHttpPort" "value" .Values.chromadb.serverHttpPort) -}}
{{- end -}}
