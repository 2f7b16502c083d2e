{{/*
The chart's name, or nameOverride.
*/}}
{{- define "podwire.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The full name: fullnameOverride, else the release name when it already holds
the chart's name, else release-chart. Object names add "-agent" to it.
*/}}
{{- define "podwire.fullname" -}}
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

{{/*
The name of the DaemonSet, the headless Service, the ClusterRole and its
binding: FULLNAME-agent.
*/}}
{{- define "podwire.agentName" -}}
{{- printf "%s-agent" (include "podwire.fullname" . | trunc 57 | trimSuffix "-") -}}
{{- end -}}

{{- define "podwire.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels that select the agents' pods. They never change across upgrades.
*/}}
{{- define "podwire.selectorLabels" -}}
app.kubernetes.io/name: {{ include "podwire.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end -}}

{{/*
Standard labels on every object.
*/}}
{{- define "podwire.labels" -}}
helm.sh/chart: {{ include "podwire.chart" . }}
{{ include "podwire.selectorLabels" . }}
{{- with .Chart.AppVersion }}
app.kubernetes.io/version: {{ . | trunc 63 | trimSuffix "-" | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: podwire
{{- end -}}

{{- define "podwire.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "podwire.agentName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "podwire.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) -}}
{{- end -}}
{{- end -}}

{{/*
The Secret holding the token, "" when there is no token.
*/}}
{{- define "podwire.tokenSecret" -}}
{{- if and .Values.token.existingSecret .Values.token.value -}}
{{- fail "token: set either existingSecret or value, not both" -}}
{{- end -}}
{{- if .Values.token.existingSecret -}}
{{- .Values.token.existingSecret -}}
{{- else if .Values.token.value -}}
{{- printf "%s-token" (include "podwire.fullname" . | trunc 57 | trimSuffix "-") -}}
{{- end -}}
{{- end -}}

{{/*
podwire.parseBytes: a byte count from an integer or a string with an optional
Ki/Mi/Gi/Ti or k/M/G/T suffix, as a decimal string; "" when the value has
another form.
*/}}
{{- define "podwire.parseBytes" -}}
{{- $v := . -}}
{{- if kindIs "string" $v -}}
{{- if regexMatch "^(0|[1-9][0-9]*)(Ki|Mi|Gi|Ti|k|M|G|T)?$" $v -}}
{{- $num := regexFind "^[0-9]+" $v -}}
{{- $units := dict "" 1 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 -}}
{{- mul (int64 $num) (get $units (trimPrefix $num $v)) -}}
{{- end -}}
{{- else if or (kindIs "float64" $v) (kindIs "int64" $v) (kindIs "int" $v) -}}
{{- if eq (float64 $v) (float64 (int64 $v)) -}}
{{- int64 $v -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
podwire.bytes: podwire.parseBytes for a value named .name, failing when it
cannot be read or is not positive.
*/}}
{{- define "podwire.bytes" -}}
{{- $n := include "podwire.parseBytes" .value -}}
{{- if or (eq $n "") (le (int64 $n) 0) -}}
{{- fail (printf "%s: %v is not a positive byte count (an integer, or a string such as 256Mi)" .name .value) -}}
{{- end -}}
{{- $n -}}
{{- end -}}

{{/*
podwire.sliceArg: one value of a repeatable string-slice flag of the agent.
Its flag parser splits values as CSV, so a value holding a comma, a quote or
a line break is quoted CSV-style.
*/}}
{{- define "podwire.sliceArg" -}}
{{- $v := toString .value -}}
{{- if regexMatch "[,\"\r\n]" $v -}}
{{- $v = printf "\"%s\"" (replace "\"" "\"\"" $v) -}}
{{- end -}}
{{- printf "--%s=%s" .flag $v -}}
{{- end -}}

{{/*
The arguments of `podwire agent`, as a YAML list.
*/}}
{{- define "podwire.agentArgs" -}}
{{- $a := .Values.agent -}}
{{- $args := list (printf "--listen=%s" (include "podwire.listenAddress" .)) "--node-name=$(NODE_NAME)" -}}
{{- $args = append $args (printf "--store-bytes=%s" (include "podwire.bytes" (dict "name" "agent.storeBytes" "value" $a.storeBytes))) -}}
{{- $args = append $args (printf "--max-body-bytes=%s" (include "podwire.bytes" (dict "name" "agent.maxBodyBytes" "value" $a.maxBodyBytes))) -}}
{{- $args = append $args (printf "--ring-bytes=%s" (include "podwire.bytes" (dict "name" "agent.ringBytes" "value" $a.ringBytes))) -}}
{{- if $a.maxConns -}}
{{- $args = append $args (printf "--max-conns=%d" (int64 $a.maxConns)) -}}
{{- end -}}
{{- if $a.idleTimeout -}}
{{- $args = append $args (printf "--idle-timeout=%s" $a.idleTimeout) -}}
{{- end -}}
{{- if $a.cgroupRoot -}}
{{- $args = append $args (printf "--cgroup-root=%s" $a.cgroupRoot) -}}
{{- end -}}
{{- range $a.skipPorts -}}
{{- $args = append $args (printf "--skip-port=%d" (int64 .)) -}}
{{- end -}}
{{- range $a.udpPorts -}}
{{- $args = append $args (printf "--udp-port=%d" (int64 .)) -}}
{{- end -}}
{{- $args = append $args (printf "--log-level=%s" $a.logLevel) -}}
{{- range .Values.captureNamespaces -}}
{{- $args = append $args (printf "--capture-namespace=%s" .) -}}
{{- end -}}
{{- range .Values.skipNamespaces -}}
{{- $args = append $args (printf "--skip-namespace=%s" .) -}}
{{- end -}}
{{- range .Values.redact.headers -}}
{{- $args = append $args (include "podwire.sliceArg" (dict "flag" "redact-header" "value" .)) -}}
{{- end -}}
{{- range .Values.redact.bodyPatterns -}}
{{- $args = append $args (include "podwire.sliceArg" (dict "flag" "redact-body" "value" .)) -}}
{{- end -}}
{{- if .Values.tls.enabled -}}
{{- $args = append $args "--tls-cert=/etc/podwire/tls/tls.crt" -}}
{{- $args = append $args "--tls-key=/etc/podwire/tls/tls.key" -}}
{{- end -}}
{{- range $a.extraArgs -}}
{{- $args = append $args (toString .) -}}
{{- end -}}
{{- toYaml $args -}}
{{- end -}}

{{- define "podwire.listenAddress" -}}
{{- $host := .Values.agent.listenHost -}}
{{- if contains ":" $host -}}
{{- printf "[%s]:%d" (trimAll "[]" $host) (int64 .Values.agent.port) -}}
{{- else -}}
{{- printf "%s:%d" $host (int64 .Values.agent.port) -}}
{{- end -}}
{{- end -}}

{{/*
Checks that need more than the schema: the memory limit holds the store and
the ring buffer; TLS names its Secret.
*/}}
{{- define "podwire.validate" -}}
{{- $store := include "podwire.bytes" (dict "name" "agent.storeBytes" "value" .Values.agent.storeBytes) | int64 -}}
{{- $ring := include "podwire.bytes" (dict "name" "agent.ringBytes" "value" .Values.agent.ringBytes) | int64 -}}
{{- $limit := dig "limits" "memory" "" (.Values.resources | default dict) -}}
{{- if $limit -}}
{{- $l := include "podwire.parseBytes" $limit -}}
{{- if and $l (le (int64 $l) (add $store $ring)) -}}
{{- fail (printf "resources.limits.memory (%v) must exceed agent.storeBytes (%v) + agent.ringBytes (%v): the store and the ring buffer are charged to the agent's memory" $limit .Values.agent.storeBytes .Values.agent.ringBytes) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) -}}
{{- fail "tls.enabled needs tls.secretName: a Secret with tls.crt and tls.key" -}}
{{- end -}}
{{- end -}}
