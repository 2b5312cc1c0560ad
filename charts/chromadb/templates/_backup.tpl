{{/* Backup and restore ----------------------------------------------------- */}}

{{- define "chromadb.backupImage" -}}
{{- include "chromadb.image" (dict "image" .Values.backup.image "global" .Values.global "defaultTag" .Chart.Version) -}}
{{- end -}}

{{/* The chart's own backup claim (used unless backup.storage.pvc.existingClaim names another). */}}
{{- define "chromadb.backupClaimName" -}}
{{- $pvc := .Values.backup.storage.pvc | default dict -}}
{{- default (printf "%s-backup" (include "chromadb.fullname" . | trunc 56 | trimSuffix "-")) $pvc.existingClaim -}}
{{- end -}}

{{/* Where the backup volume is mounted in the backup and restore pods. */}}
{{- define "chromadb.backupMountPath" -}}/backups{{- end -}}

{{- define "chromadb.backupEnabled" -}}
{{- if eq (include "chromadb.bool" (dict "key" "backup.enabled" "value" .Values.backup.enabled)) "true" -}}true{{- end -}}
{{- end -}}

{{- define "chromadb.restoreEnabled" -}}
{{- if eq (include "chromadb.bool" (dict "key" "restore.enabled" "value" .Values.restore.enabled)) "true" -}}true{{- end -}}
{{- end -}}

{{/* The storage location the tool dumps to and restores from: a directory or an S3 prefix. */}}
{{- define "chromadb.backupLocation" -}}
{{- $st := .Values.backup.storage -}}
{{- if eq $st.type "s3" -}}
{{- $prefix := $st.s3.prefix | default "" | toString | trimPrefix "/" -}}
{{- if and $prefix (not (hasSuffix "/" $prefix)) -}}{{- $prefix = printf "%s/" $prefix -}}{{- end -}}
{{- printf "s3://%s/%s" $st.s3.bucket $prefix -}}
{{- else -}}
{{- printf "%s/" (include "chromadb.backupMountPath" .) -}}
{{- end -}}
{{- end -}}

{{/*
The backup/restore pod spec, shared by the CronJob's job template and the restore Job.
Call with (dict "ctx" $ "name" "backup"|"restore" "args" (list …)). The tool reaches the
server through the chart's Service, takes credentials from the auth Secret by secretKeyRef
(never a ConfigMap) and only where the version has auth (chromadb.authMode), and writes
nothing but the backup volume and /tmp.
*/}}
{{- define "chromadb.backupPodSpec" -}}
{{- $ := .ctx -}}
{{- $b := $.Values.backup -}}
{{- $st := $b.storage -}}
{{- $mode := include "chromadb.authMode" $ -}}
{{- $secret := include "chromadb.authSecretName" $ -}}
{{- $port := include "chromadb.int" (dict "key" "chromadb.serverHttpPort" "value" $.Values.chromadb.serverHttpPort) -}}
restartPolicy: Never
enableServiceLinks: false
{{- with include "chromadb.imagePullSecrets" $ }}{{ . | trim | nindent 0 }}{{- end }}
{{- with $b.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: {{ .name }}
    image: {{ include "chromadb.backupImage" $ | quote }}
    imagePullPolicy: {{ $b.image.pullPolicy }}
    args:
      {{- toYaml .args | nindent 6 }}
    {{- /* The tool's one-line error is what `kubectl describe` and helm show for a failed pod. */}}
    terminationMessagePolicy: FallbackToLogsOnError
    env:
      - name: CHROMA_BACKUP_URL
        value: {{ printf "http://%s.%s.svc:%s" (include "chromadb.fullname" $) $.Release.Namespace $port | quote }}
      - name: CHROMA_BACKUP_WAIT_READY
        value: {{ .wait | quote }}
      {{- if eq $mode "token" }}
      - name: CHROMA_BACKUP_TOKEN
        valueFrom:
          secretKeyRef:
            name: {{ $secret }}
            key: token
      - name: CHROMA_BACKUP_TOKEN_HEADER
        value: {{ ternary "authorization" "x-chroma-token" (eq (include "chromadb.tokenHeaderKind" $) "AUTHORIZATION") | quote }}
      {{- else if eq $mode "basic" }}
      - name: CHROMA_BACKUP_BASIC_USER
        valueFrom:
          secretKeyRef:
            name: {{ $secret }}
            key: username
      - name: CHROMA_BACKUP_BASIC_PASSWORD
        valueFrom:
          secretKeyRef:
            name: {{ $secret }}
            key: password
      {{- end }}
      {{- if eq $st.type "s3" }}
      {{- with $st.s3.endpoint }}
      - name: AWS_ENDPOINT_URL
        value: {{ . | quote }}
      {{- end }}
      - name: AWS_REGION
        value: {{ $st.s3.region | quote }}
      - name: AWS_ALLOW_HTTP
        value: {{ include "chromadb.bool" (dict "key" "backup.storage.s3.allowHttp" "value" $st.s3.allowHttp) | quote }}
      - name: AWS_ACCESS_KEY_ID
        valueFrom:
          secretKeyRef:
            name: {{ $st.s3.existingSecret }}
            key: {{ $st.s3.accessKeyIdKey }}
      - name: AWS_SECRET_ACCESS_KEY
        valueFrom:
          secretKeyRef:
            name: {{ $st.s3.existingSecret }}
            key: {{ $st.s3.secretAccessKeyKey }}
      {{- end }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
      {{- if eq $st.type "pvc" }}
      - name: backups
        mountPath: {{ include "chromadb.backupMountPath" $ }}
      {{- end }}
    {{- with $b.resources }}
    resources:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with $b.securityContext }}
    securityContext:
      {{- toYaml . | nindent 6 }}
    {{- end }}
volumes:
  - name: tmp
    emptyDir: {}
  {{- if eq $st.type "pvc" }}
  - name: backups
    persistentVolumeClaim:
      claimName: {{ include "chromadb.backupClaimName" $ | quote }}
  {{- end }}
{{- end -}}

{{/* Backup and restore rules that a schema cannot express; each names the key at fault. */}}
{{- define "chromadb.validateBackup" -}}
{{- $b := .Values.backup -}}
{{- $backup := include "chromadb.backupEnabled" . -}}
{{- $restore := include "chromadb.restoreEnabled" . -}}
{{- $st := $b.storage | default dict -}}
{{- if not (has $st.type (list "pvc" "s3")) -}}
{{- fail (printf "backup.storage.type: must be pvc or s3, got %v" $st.type) -}}
{{- end -}}
{{- $_ := include "chromadb.bool" (dict "key" "backup.storage.s3.allowHttp" "value" $st.s3.allowHttp) -}}
{{- $keep := include "chromadb.int" (dict "key" "backup.keep" "value" $b.keep) | int64 -}}
{{- if lt $keep 1 -}}
{{- fail (printf "backup.keep: must be 1 or more (the number of newest archives kept), got %d" $keep) -}}
{{- end -}}
{{- range $field := list "waitReadySeconds" "backoffLimit" "activeDeadlineSeconds" "successfulJobsHistoryLimit" "failedJobsHistoryLimit" -}}
{{- $n := include "chromadb.int" (dict "key" (printf "backup.%s" $field) "value" (index $b $field)) | int64 -}}
{{- $min := ternary 1 0 (eq $field "activeDeadlineSeconds") | int64 -}}
{{- if lt $n $min -}}
{{- fail (printf "backup.%s: must be %d or more, got %d" $field $min $n) -}}
{{- end -}}
{{- end -}}
{{- if not (kindIs "invalid" $b.startingDeadlineSeconds) -}}
{{- $n := include "chromadb.int" (dict "key" "backup.startingDeadlineSeconds" "value" $b.startingDeadlineSeconds) | int64 -}}
{{- if lt $n 10 -}}
{{- fail (printf "backup.startingDeadlineSeconds: must be 10 or more seconds (the CronJob controller checks every 10 s; less can skip every run), or null, got %d" $n) -}}
{{- end -}}
{{- end -}}
{{- if not (has $b.concurrencyPolicy (list "Forbid" "Replace" "Allow")) -}}
{{- fail (printf "backup.concurrencyPolicy: must be Forbid, Replace or Allow, got %v" $b.concurrencyPolicy) -}}
{{- end -}}
{{- $r := .Values.restore -}}
{{- range $field := list "waitReadySeconds" "activeDeadlineSeconds" -}}
{{- $n := include "chromadb.int" (dict "key" (printf "restore.%s" $field) "value" (index $r $field)) | int64 -}}
{{- if lt $n 1 -}}
{{- fail (printf "restore.%s: must be 1 or more seconds, got %d" $field $n) -}}
{{- end -}}
{{- end -}}
{{- if or $backup $restore -}}
{{- if and $backup (not (regexMatch "^\\S+(\\s+\\S+){4}$|^@(yearly|annually|monthly|weekly|daily|midnight|hourly)$" ($b.schedule | default "" | toString | trim))) -}}
{{- fail (printf "backup.schedule: must be a cron schedule of five fields (e.g. \"0 3 * * *\") or @daily/@hourly/…, got %q" ($b.schedule | default "" | toString)) -}}
{{- end -}}
{{- if eq $st.type "s3" -}}
{{- if not $st.s3.bucket -}}
{{- fail "backup.storage.s3.bucket: must name the bucket when backup.storage.type is s3" -}}
{{- end -}}
{{- if not $st.s3.existingSecret -}}
{{- fail "backup.storage.s3.existingSecret: must name your Secret holding the access key (keys backup.storage.s3.accessKeyIdKey and secretAccessKeyKey) when backup.storage.type is s3" -}}
{{- end -}}
{{- if and $st.s3.endpoint (not (regexMatch "^https?://[^/]+" $st.s3.endpoint)) -}}
{{- fail (printf "backup.storage.s3.endpoint: must be an http:// or https:// URL, got %q" $st.s3.endpoint) -}}
{{- end -}}
{{- if and (hasPrefix "http://" ($st.s3.endpoint | default "")) (ne (include "chromadb.bool" (dict "key" "backup.storage.s3.allowHttp" "value" $st.s3.allowHttp)) "true") -}}
{{- fail (printf "backup.storage.s3.allowHttp: the endpoint %s is plain http; set backup.storage.s3.allowHttp=true to allow it, or use https" $st.s3.endpoint) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $restore -}}
{{- $from := $r.from | default "" | toString -}}
{{- if not (or (eq $from "latest") (regexMatch "^[A-Za-z0-9][A-Za-z0-9._-]*$" $from)) -}}
{{- fail (printf "restore.from: must be latest or an archive's file name (no directories), got %q" $from) -}}
{{- end -}}
{{- if and (eq $st.type "pvc") (not $st.pvc.existingClaim) -}}
{{- fail (printf "backup.storage.pvc.existingClaim: restore.enabled needs the claim that holds the archives, and a new release's own backup claim is empty; name that claim here (a release's own is <fullname>-backup, for this one %s), or use backup.storage.type=s3" (include "chromadb.backupClaimName" .)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels of the backup objects: the chart's labels plus the backup component, then commonLabels. */}}
{{- define "chromadb.backupLabels" -}}
{{- $base := include "chromadb.chartLabels" . | fromYaml -}}
{{- $_ := set $base "app.kubernetes.io/component" "backup" -}}
{{- include "chromadb.mergeLabels" (dict "base" $base "extra" .Values.commonLabels "key" "commonLabels" "ctx" .) -}}
{{- end -}}
