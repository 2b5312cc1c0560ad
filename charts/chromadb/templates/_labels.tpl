{{/*
Labels and annotations: the chart's own labels, the selectors that must never change, and
how the user's commonLabels, podLabels and annotations are merged over them.
*/}}

{{- define "chromadb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chromadb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
`extra` (commonLabels or podLabels) merged over the chart's labels `base` into one map, so no
key is ever emitted twice: a user value wins over a chart label of the same key, except the
keys in `owned` (the component of the chart's backup, restore, test and metrics objects),
which the chart keeps so that its own selectors and NetworkPolicy rules still match. Selector
labels are refused: the StatefulSet selector cannot change, and a pod that stops matching it
is orphaned. Call with (dict "base" (dict …) "extra" .Values.x "key" "commonLabels" "ctx" $
["owned" (list …)]). Prints YAML.
*/}}
{{- define "chromadb.mergeLabels" -}}
{{- $out := dict -}}
{{- range $k, $v := .base }}{{ $_ := set $out $k (toString $v) }}{{ end -}}
{{- $selector := include "chromadb.selectorLabels" .ctx | fromYaml -}}
{{- $owned := .owned | default list -}}
{{- range $k, $v := (.extra | default dict) -}}
{{- if hasKey $selector $k -}}
{{- fail (printf "%s.%s: %s is a selector label the chart sets itself (it cannot change on an existing StatefulSet); remove it, or choose another key" $.key $k $k) -}}
{{- end -}}
{{- if not (has $k $owned) -}}
{{- $_ := set $out $k (toString $v) -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/*
Annotations: the user's `extra` and the chart's own `base` in one map, one key once (the
chart's wins: a `checksum/config` must stay the one that rolls the pod), every value a
string: the API server refuses a number or a boolean there (`proxy-body-size: 0`), so values
are turned into text rather than passed through. Call with (dict "extra" .Values.x ["base" (dict …)]).
*/}}
{{- define "chromadb.annotations" -}}
{{- $out := dict -}}
{{- range $k, $v := (.extra | default dict) }}{{ $_ := set $out $k (toString $v) }}{{ end -}}
{{- range $k, $v := (.base | default dict) }}{{ $_ := set $out $k (toString $v) }}{{ end -}}
{{- if $out }}{{ toYaml $out }}{{ end -}}
{{- end -}}

{{- define "chromadb.chartLabels" -}}
helm.sh/chart: {{ include "chromadb.chart" . }}
{{ include "chromadb.selectorLabels" . }}
app.kubernetes.io/version: {{ include "chromadb.apiVersion" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "chromadb.labels" -}}
{{- include "chromadb.mergeLabels" (dict "base" (include "chromadb.chartLabels" . | fromYaml) "extra" .Values.commonLabels "key" "commonLabels" "ctx" .) -}}
{{- end -}}

{{/*
The selector of a pod the chart runs besides Chroma: `backup`, `restore` or `test`. Its name
label is `<name>-<component>`, so the Chroma Services, PodDisruptionBudget and NetworkPolicy,
which select `app.kubernetes.io/name: <name>`, never pick it. Call with (dict "ctx" $ "component" "backup").
*/}}
{{- define "chromadb.componentSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-%s" (include "chromadb.name" .ctx) .component | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels of the objects of one component (backup, restore, test): the chart's labels with the component's own selector, then commonLabels, which cannot change the component. */}}
{{- define "chromadb.componentLabels" -}}
{{- $base := include "chromadb.chartLabels" .ctx | fromYaml -}}
{{- $base = merge (include "chromadb.componentSelectorLabels" . | fromYaml) $base -}}
{{- include "chromadb.mergeLabels" (dict "base" $base "extra" .ctx.Values.commonLabels "key" "commonLabels" "ctx" .ctx "owned" (list "app.kubernetes.io/component")) -}}
{{- end -}}

{{/* The pod template labels of a component: its object labels with `podLabels` (the component's own knob, key `key`) merged over them. */}}
{{- define "chromadb.componentPodLabels" -}}
{{- $base := include "chromadb.componentLabels" . | fromYaml -}}
{{- include "chromadb.mergeLabels" (dict "base" $base "extra" .podLabels "key" .key "ctx" .ctx "owned" (list "app.kubernetes.io/component")) -}}
{{- end -}}

{{- define "chromadb.testLabels" -}}
{{- include "chromadb.componentLabels" (dict "ctx" . "component" "test") -}}
{{- end -}}

{{/* Pod template labels: the object labels with podLabels merged over them. */}}
{{- define "chromadb.podLabels" -}}
{{- include "chromadb.mergeLabels" (dict "base" (include "chromadb.labels" . | fromYaml) "extra" .Values.podLabels "key" "podLabels" "ctx" .) -}}
{{- end -}}

{{/*
Labels for the PVC template: the selector labels only. volumeClaimTemplates cannot change on
an existing StatefulSet, so neither commonLabels nor anything that moves with the chart or
Chroma version goes here (a new label would make every `helm upgrade` fail).
*/}}
{{- define "chromadb.pvcLabels" -}}
{{- include "chromadb.selectorLabels" . -}}
{{- end -}}

{{/* The collector pods' own selector: not Chroma's, so Chroma's Service, PDB and NetworkPolicy never pick them. */}}
{{- define "chromadb.collectorSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-otel-collector" (include "chromadb.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of the metrics objects: the chart's labels, with the collector's own name and component. */}}
{{- define "chromadb.collectorLabels" -}}
{{- $base := include "chromadb.chartLabels" . | fromYaml -}}
{{- $_ := set $base "app.kubernetes.io/name" (include "chromadb.collectorSelectorLabels" . | fromYaml | dig "app.kubernetes.io/name" "") -}}
{{- $_ := set $base "app.kubernetes.io/component" "metrics" -}}
{{- include "chromadb.mergeLabels" (dict "base" $base "extra" .Values.commonLabels "key" "commonLabels" "ctx" . "owned" (list "app.kubernetes.io/component")) -}}
{{- end -}}
