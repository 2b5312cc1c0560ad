{{/*
TLS: whether the API is served over HTTPS, where the certificate comes from, and how each
era terminates it (uvicorn on 0.x, the nginx sidecar on 1.x).
*/}}

{{/* "true" when the API is served over HTTPS. */}}
{{- define "chromadb.tls" -}}
{{- $t := .Values.tls | default dict -}}
{{- if eq (include "chromadb.bool" (dict "key" "tls.enabled" "value" $t.enabled)) "true" -}}true{{- end -}}
{{- end -}}

{{/* "true" when cert-manager issues the certificate. */}}
{{- define "chromadb.tlsCertManager" -}}
{{- $t := .Values.tls | default dict -}}
{{- $cm := $t.certManager | default dict -}}
{{- if and (include "chromadb.tls" .) (eq (include "chromadb.bool" (dict "key" "tls.certManager.enabled" "value" $cm.enabled)) "true") -}}true{{- end -}}
{{- end -}}

{{/* The kubernetes.io/tls Secret the server's certificate is read from. */}}
{{- define "chromadb.tlsSecretName" -}}
{{- if include "chromadb.tlsCertManager" . -}}
{{- include "chromadb.suffixedName" (dict "ctx" . "suffix" "tls") -}}
{{- else -}}
{{- .Values.tls.existingSecret | toString -}}
{{- end -}}
{{- end -}}

{{/* Where the certificate is mounted. The Secret's name is part of the path, so every error
     about the files (missing, unreadable, key not matching) names the Secret. */}}
{{- define "chromadb.tlsDir" -}}/etc/chroma-tls/{{ include "chromadb.tlsSecretName" . }}{{- end -}}

{{/* 1.x with TLS: the server sits behind the proxy sidecar. */}}
{{- define "chromadb.tlsProxy" -}}
{{- if and (include "chromadb.tls" .) (include "chromadb.isRust" .) -}}true{{- end -}}
{{- end -}}

{{/* 0.x with TLS: uvicorn starts through files/uvicorn-tls.py, which names the Secret when the
     pair cannot be used and serves a renewed Secret without a restart. */}}
{{- define "chromadb.uvicornTls" -}}
{{- if and (include "chromadb.tls" .) (not (include "chromadb.isRust" .)) -}}true{{- end -}}
{{- end -}}

{{- define "chromadb.uvicornTlsScript" -}}/etc/chroma-uvicorn-tls/uvicorn-tls.py{{- end -}}

{{/*
The volume source of the CA that clients of this deployment trust, as the file `ca.crt`:
tls.caBundle when named, else the key `ca.crt` of the certificate's own Secret.
*/}}
{{- define "chromadb.caVolumeSource" -}}
{{- $ca := (.Values.tls | default dict).caBundle | default dict -}}
{{- if and $ca.name (eq ($ca.kind | default "ConfigMap") "ConfigMap") }}
configMap:
  name: {{ $ca.name | quote }}
  items:
    - key: {{ $ca.key | default "ca.crt" | quote }}
      path: ca.crt
{{- else if $ca.name }}
secret:
  secretName: {{ $ca.name | quote }}
  items:
    - key: {{ $ca.key | default "ca.crt" | quote }}
      path: ca.crt
{{- else }}
secret:
  secretName: {{ include "chromadb.tlsSecretName" . | quote }}
  items:
    - key: ca.crt
      path: ca.crt
{{- end }}
{{- end -}}

{{/* Name of the Service/container port: `https` when TLS is on. */}}
{{- define "chromadb.portName" -}}{{ if include "chromadb.tls" . }}https{{ else }}http{{ end }}{{- end -}}

{{/* 0.x with TLS: the certificate and the uvicorn TLS launcher in the Chroma container (volumeMounts items). */}}
{{- define "chromadb.uvicornTlsVolumeMounts" -}}
{{- if include "chromadb.uvicornTls" . }}
- name: tls
  mountPath: {{ include "chromadb.tlsDir" . }}
  readOnly: true
- name: uvicorn-tls
  mountPath: {{ dir (include "chromadb.uvicornTlsScript" .) }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* The pod's TLS volumes: the certificate, and each era's way of serving it (volumes items). */}}
{{- define "chromadb.tlsVolumes" -}}
{{- if include "chromadb.tls" . }}
{{- /* Only the two keys: a Secret without either fails the mount, and the kubelet names the Secret and the key. */}}
- name: tls
  secret:
    secretName: {{ include "chromadb.tlsSecretName" . }}
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- end }}
{{- if include "chromadb.uvicornTls" . }}
- name: uvicorn-tls
  configMap:
    name: {{ include "chromadb.uvicornTlsConfigMapName" . }}
{{- end }}
{{- if include "chromadb.tlsProxy" . }}
- name: tls-proxy-tmp
  emptyDir: {}
- name: tls-proxy-config
  configMap:
    name: {{ include "chromadb.tlsProxyConfigMapName" . }}
{{- end }}
{{- end -}}

{{/*
1.x with TLS: the nginx sidecar (a containers item). 1.x has no TLS of its own: nginx
terminates it in the pod and forwards to the server on 127.0.0.1. The probes live here,
since only this port is reachable.
*/}}
{{- define "chromadb.tlsProxyContainer" -}}
{{- if include "chromadb.tlsProxy" . }}
- name: tls-proxy
  image: {{ include "chromadb.proxyImage" . | quote }}
  imagePullPolicy: {{ .Values.tls.proxy.image.pullPolicy }}
  command: ["nginx"]
  args: ["-c", "/etc/nginx/chroma/nginx.conf", "-g", "daemon off;"]
  ports:
    - name: https
      containerPort: {{ include "chromadb.serverHttpPort" . }}
      protocol: TCP
  volumeMounts:
    - name: tls-proxy-tmp
      mountPath: /tmp
    - name: tls-proxy-config
      mountPath: /etc/nginx/chroma
      readOnly: true
    - name: tls
      mountPath: {{ include "chromadb.tlsDir" . }}
      readOnly: true
  {{- include "chromadb.probes" . | trim | nindent 2 }}
  {{- with .Values.tls.proxy.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end -}}
