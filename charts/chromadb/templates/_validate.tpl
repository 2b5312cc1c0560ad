{{/*
Render-time checks. values.schema.json refuses most bad input already; these repeat the
rules that a schema cannot express (cross-key rules, version rules) and keep the chart safe
when schema validation is skipped. They hold on every version, even where the version
ignores the key, so one values file cannot render for one version and fail for another.
*/}}

{{- define "chromadb.validate" -}}
{{- $c := .Values.chromadb -}}
{{- range $key, $val := dict
      "chromadb.allowReset" $c.allowReset
      "chromadb.isPersistent" $c.isPersistent
      "chromadb.anonymizedTelemetry" $c.anonymizedTelemetry
      "chromadb.auth.enabled" $c.auth.enabled
      "chromadb.telemetry.enabled" $c.telemetry.enabled
      "serviceAccount.create" $.Values.serviceAccount.create
      "serviceAccount.automountServiceAccountToken" $.Values.serviceAccount.automountServiceAccountToken
      "ingress.enabled" $.Values.ingress.enabled
      "startupProbe.enabled" ($.Values.startupProbe | default dict).enabled
      "readinessProbe.enabled" ($.Values.readinessProbe | default dict).enabled
      "livenessProbe.enabled" ($.Values.livenessProbe | default dict).enabled
      "podDisruptionBudget.enabled" ($.Values.podDisruptionBudget | default dict).enabled
      "networkPolicy.enabled" ($.Values.networkPolicy | default dict).enabled }}
{{- $_ := include "chromadb.bool" (dict "key" $key "value" $val) -}}
{{- end -}}

{{- $grace := include "chromadb.int" (dict "key" "terminationGracePeriodSeconds" "value" .Values.terminationGracePeriodSeconds) | int64 -}}
{{- if lt $grace 0 -}}
{{- fail (printf "terminationGracePeriodSeconds: must be 0 or more seconds, got %d" $grace) -}}
{{- end -}}
{{- range $kind := list "startupProbe" "readinessProbe" "livenessProbe" -}}
{{- $p := index $.Values $kind | default dict -}}
{{- range $field := list "initialDelaySeconds" "periodSeconds" "timeoutSeconds" "failureThreshold" -}}
{{- $raw := index $p $field -}}
{{- if not (kindIs "invalid" $raw) -}}
{{- $n := include "chromadb.int" (dict "key" (printf "%s.%s" $kind $field) "value" $raw) | int64 -}}
{{- $min := ternary 0 1 (eq $field "initialDelaySeconds") | int64 -}}
{{- if lt $n $min -}}
{{- fail (printf "%s.%s: must be %d or more, got %d" $kind $field $min $n) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- $pdb := .Values.podDisruptionBudget | default dict -}}
{{- if eq (include "chromadb.bool" (dict "key" "podDisruptionBudget.enabled" "value" $pdb.enabled)) "true" -}}
{{- if eq (kindIs "invalid" $pdb.minAvailable) (kindIs "invalid" $pdb.maxUnavailable) -}}
{{- fail "podDisruptionBudget.minAvailable: set exactly one of podDisruptionBudget.minAvailable and podDisruptionBudget.maxUnavailable (the other null) when the budget is enabled" -}}
{{- end -}}
{{- end -}}

{{- $np := .Values.networkPolicy | default dict -}}
{{- if and (eq (include "chromadb.bool" (dict "key" "networkPolicy.enabled" "value" $np.enabled)) "true") (not $np.allowedFrom) -}}
{{- fail "networkPolicy.allowedFrom: list at least one peer (podSelector, namespaceSelector or ipBlock) when networkPolicy.enabled is true; an empty list would shut every client out" -}}
{{- end -}}

{{- $svc := .Values.service -}}
{{- if not (kindIs "invalid" $svc.nodePort) -}}
{{- $np := include "chromadb.int" (dict "key" "service.nodePort" "value" $svc.nodePort) | int64 -}}
{{- if or (lt $np 1) (gt $np 65535) -}}
{{- fail (printf "service.nodePort: must be a port number (30000-32767 on most clusters), got %d" $np) -}}
{{- end -}}
{{- if not (has $svc.type (list "NodePort" "LoadBalancer")) -}}
{{- fail (printf "service.nodePort: only NodePort and LoadBalancer Services have node ports, but service.type is %s" $svc.type) -}}
{{- end -}}
{{- end -}}
{{- if ne ($svc.type | default "ClusterIP") "LoadBalancer" -}}
{{- if $svc.loadBalancerIP -}}
{{- fail (printf "service.loadBalancerIP: only a LoadBalancer Service takes it, but service.type is %s; set service.type=LoadBalancer or remove it" ($svc.type | default "ClusterIP")) -}}
{{- end -}}
{{- if $svc.loadBalancerSourceRanges -}}
{{- fail (printf "service.loadBalancerSourceRanges: only a LoadBalancer Service takes them, but service.type is %s; set service.type=LoadBalancer or remove them" ($svc.type | default "ClusterIP")) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.serviceAccount.annotations (ne (include "chromadb.bool" (dict "key" "serviceAccount.create" "value" .Values.serviceAccount.create)) "true") -}}
{{- fail "serviceAccount.annotations: they go on the ServiceAccount the chart creates, and serviceAccount.create is false; annotate your own ServiceAccount instead, or set serviceAccount.create=true" -}}
{{- end -}}
{{- if not (has ($svc.externalTrafficPolicy | default "") (list "" "Cluster" "Local")) -}}
{{- fail (printf "service.externalTrafficPolicy: must be Cluster or Local (or empty for the Kubernetes default), got %v" $svc.externalTrafficPolicy) -}}
{{- end -}}

{{- $_ := include "chromadb.apiVersion" . -}}

{{- if not (and (kindIs "string" $c.persistDirectory) (hasPrefix "/" $c.persistDirectory)) -}}
{{- fail (printf "chromadb.persistDirectory: must be an absolute path (starting with /), got %v" $c.persistDirectory) -}}
{{- end -}}

{{- $port := include "chromadb.int" (dict "key" "chromadb.serverHttpPort" "value" $c.serverHttpPort) | int64 -}}
{{- if or (lt $port 1) (gt $port 65535) -}}
{{- fail (printf "chromadb.serverHttpPort: must be a port number from 1 to 65535, got %d" $port) -}}
{{- end -}}

{{- $payload := include "chromadb.int" (dict "key" "chromadb.maxPayloadSizeBytes" "value" $c.maxPayloadSizeBytes) | int64 -}}
{{- if lt $payload 1 -}}
{{- fail (printf "chromadb.maxPayloadSizeBytes: must be a positive number of bytes, got %d" $payload) -}}
{{- end -}}

{{- if not (kindIs "invalid" $c.circuitBreaker.requests) -}}
{{- $req := include "chromadb.int" (dict "key" "chromadb.circuitBreaker.requests" "value" $c.circuitBreaker.requests) | int64 -}}
{{- if or (lt $req 0) (gt $req 4294967295) -}}
{{- fail (printf "chromadb.circuitBreaker.requests: must be 0 (disabled) or a positive integer, got %d" $req) -}}
{{- end -}}
{{- end -}}

{{- if not (has ($c.sqliteDb.hashType | default "") (list "" "md5" "sha256")) -}}
{{- fail (printf "chromadb.sqliteDb.hashType: must be md5 or sha256 (or empty for the server default), got %q" $c.sqliteDb.hashType) -}}
{{- end -}}
{{- if not (has ($c.sqliteDb.migrationMode | default "") (list "" "apply" "validate")) -}}
{{- fail (printf "chromadb.sqliteDb.migrationMode: must be apply or validate (or empty for the server default), got %q" $c.sqliteDb.migrationMode) -}}
{{- end -}}

{{- if and (eq (include "chromadb.bool" (dict "key" "chromadb.telemetry.enabled" "value" $c.telemetry.enabled)) "true") (not $c.telemetry.endpoint) -}}
{{- fail "chromadb.telemetry.endpoint: must be set (e.g. http://otel-collector:4317) when chromadb.telemetry.enabled is true" -}}
{{- end -}}
{{- with $c.telemetry.endpoint -}}
{{- if not (regexMatch "^https?://[^/@[:space:]:]+(:[0-9]+)?(/[^[:space:]]*)?$" (toString .)) -}}
{{- fail (printf "chromadb.telemetry.endpoint: must be an http:// or https:// URL of an OTLP/gRPC collector such as http://otel-collector:4317, got %q" (toString .)) -}}
{{- end -}}
{{- end -}}
{{- $m := .Values.metrics | default dict -}}
{{- if eq (include "chromadb.bool" (dict "key" "metrics.enabled" "value" $m.enabled)) "true" -}}
{{- if not (include "chromadb.atLeast" (dict "ctx" . "floor" "0.4.15")) -}}
{{- fail (printf "metrics.enabled: Chroma %s has no OpenTelemetry (0.4.15 and later do), so nothing would feed the collector; use 0.4.15 or later, or set metrics.enabled=false" (include "chromadb.apiVersion" .)) -}}
{{- end -}}
{{- end -}}
{{- $sm := ($m.serviceMonitor | default dict).mode | default "auto" | toString -}}
{{- if not (has $sm (list "auto" "force" "disabled")) -}}
{{- fail (printf "metrics.serviceMonitor.mode: must be auto, force or disabled, got %q" $sm) -}}
{{- end -}}
{{- $mp := include "chromadb.int" (dict "key" "metrics.port" "value" ($m.port | default 8889)) | int -}}
{{- if or (lt $mp 1) (gt $mp 65535) (eq $mp 4317) (eq $mp 13133) -}}
{{- fail (printf "metrics.port: must be a port from 1 to 65535 other than 4317 (OTLP) and 13133 (health), got %d" $mp) -}}
{{- end -}}
{{- if not (has ($c.telemetry.granularity | default "operation" | toString) (list "operation" "operation_and_segment" "all")) -}}
{{- fail (printf "chromadb.telemetry.granularity: must be one of operation, operation_and_segment, all (disable telemetry with chromadb.telemetry.enabled=false), got %q" (toString $c.telemetry.granularity)) -}}
{{- end -}}

{{- if and $c.telemetry.filters (ne (include "chromadb.bool" (dict "key" "chromadb.telemetry.enabled" "value" $c.telemetry.enabled)) "true") (not (include "chromadb.metricsEnabled" .)) -}}
{{- fail "chromadb.telemetry.filters: trace filters are written only into an enabled open_telemetry block; set metrics.enabled=true (the chart's collector), or chromadb.telemetry.enabled=true with chromadb.telemetry.endpoint, or remove the filters" -}}
{{- end -}}

{{- /* Empty strings (an old chart's defaults) ask for nothing and pass. */}}
{{- with ($c.auth.token | default dict).value -}}
{{- fail "chromadb.auth.token.value: fixed credentials in values are not supported (they would sit in the release history); put the token under the key `token` of your own Secret and set chromadb.auth.existingSecret, or leave it out and the chart generates one" -}}
{{- end -}}
{{- $basic := $c.auth.basic | default dict -}}
{{- range $k := list "username" "password" -}}
{{- if get $basic $k -}}
{{- fail (printf "chromadb.auth.basic.%s: fixed credentials in values are not supported (they would sit in the release history); put `username` and `password` into your own Secret and set chromadb.auth.existingSecret, or leave them out and the chart generates them" $k) -}}
{{- end -}}
{{- end -}}

{{- $sc := $c.data.storageClass -}}
{{- if not (or (kindIs "invalid" $sc) (kindIs "string" $sc)) -}}
{{- fail (printf "chromadb.data.storageClass: must be a StorageClass name, \"\" or null for the cluster default, or \"-\" for none, got %v" $sc) -}}
{{- end -}}

{{- $extra := $c.extraConfig | default dict -}}
{{- if hasKey $extra "port" -}}
{{- fail "chromadb.extraConfig.port: may not be set through extraConfig; use chromadb.serverHttpPort so the Service, container port and probes follow it" -}}
{{- end -}}
{{- if hasKey $extra "listen_address" -}}
{{- fail "chromadb.extraConfig.listen_address: may not be set through extraConfig; use chromadb.serverHost" -}}
{{- end -}}

{{- if not (has $c.auth.type (list "token" "basic")) -}}
{{- fail (printf "chromadb.auth.type: must be token or basic, got %v" $c.auth.type) -}}
{{- end -}}
{{- $_ := include "chromadb.tokenHeaderKind" . -}}

{{- $policy := $c.maintenance.collection_cache_policy | default "" -}}
{{- if not (has $policy (list "" "LRU")) -}}
{{- fail (printf "chromadb.maintenance.collection_cache_policy: must be null or LRU, got %v" $policy) -}}
{{- end -}}
{{- $limit := include "chromadb.int" (dict "key" "chromadb.maintenance.collection_cache_limit_bytes" "value" $c.maintenance.collection_cache_limit_bytes) | int64 -}}
{{- if and (eq $policy "LRU") (lt $limit 1) -}}
{{- fail (printf "chromadb.maintenance.collection_cache_limit_bytes: must be a positive number of bytes when collection_cache_policy is LRU, got %d" $limit) -}}
{{- end -}}

{{- if not (has $c.data.retentionPolicyOnDelete (list "Delete" "Retain")) -}}
{{- fail (printf "chromadb.data.retentionPolicyOnDelete: must be Delete or Retain, got %v" $c.data.retentionPolicyOnDelete) -}}
{{- end -}}

{{- $log := $c.logConfigFileLocation | default "" | toString -}}
{{- if not (hasPrefix "/" $log) -}}
{{- fail (printf "chromadb.logConfigFileLocation: must be an absolute path, got %q" $log) -}}
{{- end -}}
{{- if not (regexMatch "\\.(ya?ml|json)$" $log) -}}
{{- fail (printf "chromadb.logConfigFileLocation: must end in .yaml, .yml or .json (the server picks the parser from the extension), got %q" $log) -}}
{{- end -}}
{{- range $name := list "root" "chromadb" "uvicorn" -}}
{{- $lvl := index $c.logging $name | default "" | toString | upper -}}
{{- if not (has $lvl (list "CRITICAL" "FATAL" "ERROR" "WARNING" "WARN" "INFO" "DEBUG" "NOTSET")) -}}
{{- fail (printf "chromadb.logging.%s: must be a Python log level (DEBUG, INFO, WARNING, ERROR, CRITICAL), got %q" $name (index $c.logging $name | toString)) -}}
{{- end -}}
{{- end -}}

{{- $origins := $c.corsAllowOrigins | default list -}}
{{- if not (kindIs "slice" $origins) -}}
{{- fail (printf "chromadb.corsAllowOrigins: must be a list of origins, got %v" $origins) -}}
{{- end -}}
{{- if and (has "*" $origins) (include "chromadb.atLeast" (dict "ctx" . "floor" "1.0.0")) (not (include "chromadb.atLeast" (dict "ctx" . "floor" "1.0.11"))) -}}
{{- fail (printf "chromadb.corsAllowOrigins: a \"*\" wildcard makes Chroma %s panic at start (fixed in 1.0.11); list the origins explicitly or use 1.0.11 or later" (include "chromadb.apiVersion" .)) -}}
{{- end -}}
{{- $_ := include "chromadb.validateBackup" . -}}
{{- $_ := include "chromadb.validateVolume" (dict "key" "chromadb.data" "size" "volumeSize" "v" $c.data) -}}
{{- $sm := $m.serviceMonitor | default dict -}}
{{- range $field := list "interval" "scrapeTimeout" -}}
{{- $d := index $sm $field -}}
{{- if and (not (kindIs "invalid" $d)) (ne (toString $d) "") (not (regexMatch (include "chromadb.durationPattern" $) (toString $d))) -}}
{{- fail (printf "metrics.serviceMonitor.%s: must be a Prometheus duration such as 30s, 1m or 1m30s (units ms, s, m, h, d, w, y), got %v" $field $d) -}}
{{- end -}}
{{- end -}}
{{- /* TLS: a certificate must come from somewhere, and the proxy port must not clash. */ -}}
{{- $t := .Values.tls | default dict -}}
{{- $tcm := $t.certManager | default dict -}}
{{- $_ := include "chromadb.bool" (dict "key" "tls.enabled" "value" $t.enabled) -}}
{{- $_ := include "chromadb.bool" (dict "key" "tls.certManager.enabled" "value" $tcm.enabled) -}}
{{- if and (eq (include "chromadb.bool" (dict "key" "tls.certManager.enabled" "value" $tcm.enabled)) "true") (not (include "chromadb.tls" .)) -}}
{{- fail "tls.certManager.enabled: cert-manager would issue a certificate nothing serves, because tls.enabled is false; set tls.enabled=true too, or tls.certManager.enabled=false" -}}
{{- end -}}
{{- if include "chromadb.tls" . -}}
{{- $viaCm := include "chromadb.tlsCertManager" . -}}
{{- $existing := $t.existingSecret | default "" | toString -}}
{{- if and (not $viaCm) (not $existing) -}}
{{- fail "tls.existingSecret: tls.enabled needs a certificate: name a Secret of type kubernetes.io/tls (keys tls.crt and tls.key) in tls.existingSecret, or set tls.certManager.enabled with tls.certManager.issuerRef.name" -}}
{{- end -}}
{{- if and $viaCm $existing -}}
{{- fail (printf "tls.existingSecret: set either tls.existingSecret (%s) or tls.certManager.enabled, not both" $existing) -}}
{{- end -}}
{{- if and $viaCm (not (($tcm.issuerRef | default dict).name)) -}}
{{- fail "tls.certManager.issuerRef.name: tls.certManager.enabled needs the name of the cert-manager Issuer or ClusterIssuer that signs the certificate" -}}
{{- end -}}
{{- $ca := $t.caBundle | default dict -}}
{{- if and $ca.name (not (has ($ca.kind | default "") (list "ConfigMap" "Secret"))) -}}
{{- fail (printf "tls.caBundle.kind: must be ConfigMap or Secret, got %v" $ca.kind) -}}
{{- end -}}
{{- if include "chromadb.isRust" . -}}
{{- $sp := include "chromadb.int" (dict "key" "tls.proxy.serverPort" "value" $t.proxy.serverPort) | int64 -}}
{{- $hp := include "chromadb.int" (dict "key" "chromadb.serverHttpPort" "value" $c.serverHttpPort) | int64 -}}
{{- if or (lt $sp 1) (gt $sp 65535) (eq $sp $hp) -}}
{{- fail (printf "tls.proxy.serverPort: must be a port (1-65535) other than chromadb.serverHttpPort (%d), which the TLS proxy takes; got %d" $hp $sp) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A Prometheus duration (what the ServiceMonitor CRD accepts). */}}
{{- define "chromadb.durationPattern" -}}^(0|([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?)${{- end -}}

{{/*
A PersistentVolumeClaim's size and access modes, as the API server reads them. Call with
(dict "key" "chromadb.data" "size" "volumeSize" "v" .Values.chromadb.data).
*/}}
{{- define "chromadb.validateVolume" -}}
{{- $size := index .v .size -}}
{{- if not (regexMatch "^([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|[eE][0-9]+)?$" (toString $size)) -}}
{{- fail (printf "%s.%s: must be a Kubernetes quantity such as 512Mi, 10Gi or 1Ti, got %q" .key .size (toString $size)) -}}
{{- end -}}
{{- $modes := .v.accessModes | default "ReadWriteOnce" -}}
{{- if not (kindIs "slice" $modes) }}{{ $modes = list $modes }}{{ end -}}
{{- if not $modes -}}
{{- fail (printf "%s.accessModes: must name at least one access mode (ReadWriteOnce, ReadOnlyMany, ReadWriteMany or ReadWriteOncePod)" .key) -}}
{{- end -}}
{{- range $modes -}}
{{- if not (has . (list "ReadWriteOnce" "ReadOnlyMany" "ReadWriteMany" "ReadWriteOncePod")) -}}
{{- fail (printf "%s.accessModes: %v is not an access mode; use ReadWriteOnce, ReadOnlyMany, ReadWriteMany or ReadWriteOncePod (a single mode or a list)" $.key .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
