{{/* Chart name, truncated to the 63 characters Kubernetes names allow. */}}
{{- define "mailproxy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mailproxy.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "mailproxy.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "mailproxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "mailproxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mailproxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mailproxy.secretName" -}}
{{- default (include "mailproxy.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "mailproxy.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Everything a mailproxy container shares: image, settings, secret, writable dirs. */}}
{{- define "mailproxy.container" -}}
image: {{ include "mailproxy.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
envFrom:
  - secretRef:
      name: {{ include "mailproxy.secretName" . }}
env:
  - name: MAILPROXY_DATA_DIR
    value: /var/lib/mailproxy
{{- if .Values.storage.local.enabled }}
  - name: MAILPROXY_OFFLOAD_LOCAL_DIR
    value: {{ .Values.storage.local.mountPath | quote }}
{{- end }}
{{- range $name, $value := .Values.config }}
  - name: {{ $name }}
    value: {{ $value | toString | quote }}
{{- end }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - name: data
    mountPath: /var/lib/mailproxy
  - name: tmp
    mountPath: /tmp
{{- end -}}

{{/* Pod-level fields every mailproxy pod shares. */}}
{{- define "mailproxy.podSpec" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
volumes:
  - name: data
    emptyDir: {}
  - name: tmp
    emptyDir: {}
{{- end -}}

{{/* Restart pods when the chart's Secret changes. */}}
{{- define "mailproxy.podAnnotations" -}}
{{- if not .Values.secrets.existingSecret }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The shared offload volume: mounted by the API and the workers when `local` is on. */}}
{{- define "mailproxy.offloadMount" -}}
{{- if .Values.storage.local.enabled }}
- name: offload
  mountPath: {{ .Values.storage.local.mountPath }}
{{- end }}
{{- end -}}

{{- define "mailproxy.offloadVolume" -}}
{{- if .Values.storage.local.enabled }}
{{- if not .Values.storage.local.persistentVolumeClaim }}
{{- fail "storage.local.enabled needs storage.local.persistentVolumeClaim: the name of a ReadWriteMany claim shared by the API and worker pods (files written by a worker are served by the API)" }}
{{- end }}
- name: offload
  persistentVolumeClaim:
    claimName: {{ .Values.storage.local.persistentVolumeClaim }}
{{- end }}
{{- end -}}
