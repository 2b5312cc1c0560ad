{{/*
Backup and restore: the backup CronJob's and the restore hook's names, pod spec, storage
location, labels and checks.
*/}}

{{/* The chart's own backup claim (used unless backup.storage.pvc.existingClaim names another). */}}
{{- define "chromadb.backupClaimName" -}}
{{- $pvc := .Values.backup.storage.pvc | default dict -}}
{{- default (printf "%s-backup" (include "chromadb.fullname" . | trunc 56 | trimSuffix "-")) $pvc.existingClaim -}}
{{- end -}}

{{/* The backup CronJob: 52 characters at most, since the controller appends an 11-character suffix to the Jobs it makes. */}}
{{- define "chromadb.backupCronJobName" -}}
{{- printf "%s-backup" (include "chromadb.fullname" . | trunc 45 | trimSuffix "-") -}}
{{- end -}}

{{- define "chromadb.restoreJobName" -}}
{{- include "chromadb.suffixedName" (dict "ctx" . "suffix" "restore") -}}
{{- end -}}

{{/* The ServiceAccount of the backup and restore pods: the chart's own when backup.serviceAccount.create, else the one named, else none (the namespace's default). */}}
{{- define "chromadb.backupServiceAccountName" -}}
{{- $sa := .Values.backup.serviceAccount | default dict -}}
{{- if eq (include "chromadb.bool" (dict "key" "backup.serviceAccount.create" "value" ($sa.create | default false))) "true" -}}
{{- default (include "chromadb.suffixedName" (dict "ctx" . "suffix" "backup")) $sa.name -}}
{{- else -}}
{{- $sa.name | default "" -}}
{{- end -}}
{{- end -}}

{{/* Where the deployment's CA is mounted in the backup and restore pods (TLS only). */}}
{{- define "chromadb.backupCaDir" -}}/var/run/chroma-ca{{- end -}}

{{/* Where the backup volume is mounted in the backup and restore pods. */}}
{{- define "chromadb.backupMountPath" -}}/backups{{- end -}}

{{/*
"true" when the chart creates the backup claim itself (pvc storage, no existingClaim). The
server pod then lists that claim among its volumes, unmounted: the claim has a consumer from
install on, so it binds on WaitForFirstConsumer classes (local-path, kind, most clouds) and
`helm install --wait`, which waits for every claim to be Bound, does not time out waiting for
the first scheduled backup.
*/}}
{{- define "chromadb.backupClaimOwned" -}}
{{- $st := .Values.backup.storage -}}
{{- if and (include "chromadb.backupEnabled" .) (eq $st.type "pvc") (not $st.pvc.existingClaim) -}}true{{- end -}}
{{- end -}}

{{/* The backup claim's access modes as a list. */}}
{{- define "chromadb.backupClaimModes" -}}
{{- $m := .Values.backup.storage.pvc.accessModes -}}
{{- if kindIs "slice" $m -}}{{ toJson $m }}{{- else -}}{{ toJson (list ($m | default "ReadWriteOnce")) }}{{- end -}}
{{- end -}}

{{/*
The backup pods' affinity when the user sets none: with the chart's own ReadWriteOnce claim,
which the server pod holds, a backup pod on another node could not attach it, so it runs on
the server's node.
*/}}
{{- define "chromadb.backupAffinity" -}}
{{- $b := .Values.backup -}}
{{- if $b.affinity -}}
{{- toYaml $b.affinity -}}
{{- else if and (include "chromadb.backupClaimOwned" .) (has "ReadWriteOnce" (include "chromadb.backupClaimModes" . | fromJsonArray)) (not (has "ReadWriteMany" (include "chromadb.backupClaimModes" . | fromJsonArray))) -}}
podAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "chromadb.selectorLabels" . | nindent 10 }}
{{- end -}}
{{- end -}}

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
{{- $tls := include "chromadb.tls" $ -}}
{{- $sa := include "chromadb.backupServiceAccountName" $ -}}
restartPolicy: Never
enableServiceLinks: false
{{- with $sa }}
serviceAccountName: {{ . | quote }}
{{- end }}
{{- /* The tool never calls the Kubernetes API. Cloud identity (IRSA, Workload Identity) does
       not need this token: EKS projects its own, GKE answers on the metadata server. */}}
automountServiceAccountToken: false
{{- include "chromadb.podScheduling" (dict "values" (omit $b "affinity") "key" "backup") }}
{{- with include "chromadb.backupAffinity" $ }}
affinity:
  {{- . | nindent 2 }}
{{- end }}
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
      {{- /* The Service's name, which the certificate must carry, and its port: HTTPS only when TLS is on. */}}
      - name: CHROMA_BACKUP_URL
        value: {{ printf "%s://%s.%s.svc:%s" (ternary "https" "http" (eq $tls "true")) (include "chromadb.fullname" $) $.Release.Namespace $port | quote }}
      {{- if $tls }}
      - name: CHROMA_BACKUP_CACERT
        value: {{ printf "%s/ca.crt" (include "chromadb.backupCaDir" $) | quote }}
      {{- end }}
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
      {{- /* Without a Secret the pod's identity (backup.serviceAccount: IRSA's web identity token) is the credential. */}}
      {{- if $st.s3.existingSecret }}
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
      {{- end }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
      {{- if $tls }}
      - name: ca
        mountPath: {{ include "chromadb.backupCaDir" $ }}
        readOnly: true
      {{- end }}
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
  {{- if $tls }}
  - name: ca
    {{- include "chromadb.caVolumeSource" $ | trim | nindent 4 }}
  {{- end }}
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
{{- $_ := include "chromadb.bool" (dict "key" "backup.suspend" "value" ($b.suspend | default false)) -}}
{{- $bsa := $b.serviceAccount | default dict -}}
{{- if and $bsa.annotations (ne (include "chromadb.bool" (dict "key" "backup.serviceAccount.create" "value" ($bsa.create | default false))) "true") -}}
{{- fail "backup.serviceAccount.annotations: they go on the ServiceAccount the chart creates for the backup pods, and backup.serviceAccount.create is false; set backup.serviceAccount.create=true, or annotate the ServiceAccount named in backup.serviceAccount.name yourself" -}}
{{- end -}}
{{- $tz := $b.timeZone | default "" | toString -}}
{{- if and $tz (not (regexMatch (include "chromadb.timeZonePattern" .) $tz)) -}}
{{- fail (printf "backup.timeZone: must be an IANA time zone such as Europe/Berlin, America/New_York, Etc/GMT+2 or UTC (an area of the tz database — Africa, America, Antarctica, Arctic, Asia, Atlantic, Australia, Europe, Indian, Pacific, Etc — and a city), or empty for the controller's zone, got %q" $tz) -}}
{{- end -}}
{{- $_ := include "chromadb.validateVolume" (dict "key" "backup.storage.pvc" "size" "size" "v" $st.pvc) -}}
{{- if and (include "chromadb.backupClaimOwned" .) (has "ReadWriteOncePod" (include "chromadb.backupClaimModes" . | fromJsonArray)) -}}
{{- fail "backup.storage.pvc.accessModes: ReadWriteOncePod cannot serve the chart's own backup claim, which the server pod holds so that it binds at install while each backup pod writes to it; use ReadWriteOnce (backup pods then run on the server's node) or ReadWriteMany, or name a claim of yours in backup.storage.pvc.existingClaim" -}}
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
{{- if and (not $st.s3.existingSecret) (not (include "chromadb.backupServiceAccountName" .)) -}}
{{- fail "backup.storage.s3.existingSecret: must name your Secret holding the access key (keys backup.storage.s3.accessKeyIdKey and secretAccessKeyKey) when backup.storage.type is s3, unless the pods get their identity from a ServiceAccount (backup.serviceAccount.create with IRSA annotations, or backup.serviceAccount.name)" -}}
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

{{/* Labels of the backup objects (CronJob, its Jobs, the backup claim). */}}
{{- define "chromadb.backupLabels" -}}
{{- include "chromadb.componentLabels" (dict "ctx" . "component" "backup") -}}
{{- end -}}

{{/* Labels of the restore hook Job. */}}
{{- define "chromadb.restoreLabels" -}}
{{- include "chromadb.componentLabels" (dict "ctx" . "component" "restore") -}}
{{- end -}}

{{/* Pod template metadata of the backup or restore pod. Call with (dict "ctx" $ "component" "backup"|"restore"). */}}
{{- define "chromadb.backupPodMetadata" -}}
{{- $b := .ctx.Values.backup -}}
labels:
  {{- include "chromadb.componentPodLabels" (dict "ctx" .ctx "component" .component "podLabels" $b.podLabels "key" "backup.podLabels") | nindent 2 }}
{{- with include "chromadb.annotations" (dict "extra" $b.podAnnotations) }}
annotations:
  {{- . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* An IANA zone name of the tz database's areas (legacy aliases such as US/Eastern are left out), or UTC/GMT. */}}
{{- define "chromadb.timeZonePattern" -}}^(UTC|GMT|Etc/[A-Za-z0-9+-]+|(Africa|America|Antarctica|Arctic|Asia|Atlantic|Australia|Europe|Indian|Pacific)/[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z][A-Za-z0-9_+-]*)?)${{- end -}}
