{{/*
Helpers for the triton-llm chart. Each helper says how to call it.
*/}}

{{/*
Chart name, truncated to 63 characters.
Usage: {{ include "triton-llm.name" . }}
*/}}
{{- define "triton-llm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name prefix of every object: <release>-<chart>, or <release> when it already contains the chart name.
Kept at 40 characters so derived names (<fullname>-worker-<i>, LWS pod names) stay under 63.
Usage: {{ include "triton-llm.fullname" . }}
*/}}
{{- define "triton-llm.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart label value: <name>-<version>.
Usage: {{ include "triton-llm.chart" . }}
*/}}
{{- define "triton-llm.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels shared by every pod of the release (stable across upgrades).
Usage: {{- include "triton-llm.selectorLabels" . | nindent 4 }}
*/}}
{{- define "triton-llm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "triton-llm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Standard labels for every object.
Usage: {{- include "triton-llm.labels" . | nindent 4 }}
*/}}
{{- define "triton-llm.labels" -}}
helm.sh/chart: {{ include "triton-llm.chart" . }}
{{ include "triton-llm.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: triton-llm
{{- end }}

{{/*
Selector labels of one role's pods (leader, worker, engine-build, test).
Usage: {{- include "triton-llm.roleSelectorLabels" (dict "root" $ "role" "leader") | nindent 4 }}
*/}}
{{- define "triton-llm.roleSelectorLabels" -}}
{{ include "triton-llm.selectorLabels" .root }}
app.kubernetes.io/component: {{ .role }}
{{- end }}

{{/*
Label carried by every serving pod (leader and workers), not by the build Job or the test pod.
Usage: {{- include "triton-llm.servingLabel" . | nindent 4 }}
*/}}
{{- define "triton-llm.servingLabel" -}}
triton-llm/serving: "true"
{{- end }}

{{/*
Serving image reference (tag defaults to the chart's appVersion).
Usage: image: {{ include "triton-llm.image" . }}
*/}}
{{- define "triton-llm.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
World size of one group: tp * pp ranks.
Usage: {{ include "triton-llm.worldSize" . }}
*/}}
{{- define "triton-llm.worldSize" -}}
{{- mul (int .Values.parallelism.tp) (int .Values.parallelism.pp) }}
{{- end }}

{{/*
Nodes (pods) per group: tp*pp / gpusPerNode, derived (validateValues checks divisibility).
Usage: {{ include "triton-llm.nodesPerReplica" . }}
*/}}
{{- define "triton-llm.nodesPerReplica" -}}
{{- $ws := include "triton-llm.worldSize" . | int }}
{{- $gpn := int .Values.gpusPerNode }}
{{- if and (gt $gpn 0) (eq (mod $ws $gpn) 0) }}{{ div $ws $gpn }}{{ else }}1{{ end }}
{{- end }}

{{/*
Highest number of groups that can exist (replicas, or autoscaling.maxReplicas).
Usage: {{ include "triton-llm.maxGroups" . }}
*/}}
{{- define "triton-llm.maxGroups" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.maxReplicas }}{{ else }}{{ .Values.replicas }}{{ end }}
{{- end }}

{{/*
Groups that exist at install time (replicas, or autoscaling.minReplicas).
Usage: {{ include "triton-llm.initialGroups" . }}
*/}}
{{- define "triton-llm.initialGroups" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.minReplicas }}{{ else }}{{ .Values.replicas }}{{ end }}
{{- end }}

{{/*
ServiceAccount name.
Usage: serviceAccountName: {{ include "triton-llm.serviceAccountName" . }}
*/}}
{{- define "triton-llm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}{{ default (include "triton-llm.fullname" .) .Values.serviceAccount.name }}
{{- else }}{{ default "default" .Values.serviceAccount.name }}{{ end }}
{{- end }}

{{/*
Name of the Secret holding the group's ssh private key (launcher.ssh.existingSecret; validateValues requires
it in ssh mode: the chart never generates the key, so every render, GitOps included, gives the same objects).
Usage: secretName: {{ include "triton-llm.sshSecretName" . }}
*/}}
{{- define "triton-llm.sshSecretName" -}}
{{- .Values.launcher.ssh.existingSecret }}
{{- end }}

{{/*
Name of the secondary network (custom resource and NetworkAttachmentDefinition).
Usage: {{ include "triton-llm.networkName" . }}
*/}}
{{- define "triton-llm.networkName" -}}
{{- default (printf "%s-%s" (include "triton-llm.fullname" .) .Values.network.type) .Values.network.name }}
{{- end }}

{{/*
IPAM JSON of the secondary network: network.ipam, or whereabouts over network.ipamRange.
Usage: ipam: {{ include "triton-llm.ipam" . | quote }}
*/}}
{{- define "triton-llm.ipam" -}}
{{- if .Values.network.ipam }}{{ .Values.network.ipam }}
{{- else }}{{ dict "type" "whereabouts" "range" .Values.network.ipamRange | toJson }}{{ end }}
{{- end }}

{{/*
Name of the LeaderWorkerSet: <fullname>-lws. It must differ from every Service of the chart: the LWS
controller creates its headless Service under the LWS's name only when no Service has that name
(CreateHeadlessServiceIfNotExists), and pods resolve each other only through that headless Service.
Usage: {{ include "triton-llm.lwsName" . }}
*/}}
{{- define "triton-llm.lwsName" -}}
{{- printf "%s-lws" (include "triton-llm.fullname" .) }}
{{- end }}

{{/*
Name of the headless Service (StatefulSet mode).
Usage: {{ include "triton-llm.headlessName" . }}
*/}}
{{- define "triton-llm.headlessName" -}}
{{- printf "%s-headless" (include "triton-llm.fullname" .) }}
{{- end }}

{{/*
Fixed paths inside the serving pods.
Usage: {{ include "triton-llm.path" (list "modelRepo") }}
*/}}
{{- define "triton-llm.path" -}}
{{- $paths := dict "cache" "/var/cache/triton-llm" "models" "/models" "modelRepo" "/models/repo" "ssh" "/etc/triton-llm/ssh" "home" "/home/triton" "rootHome" "/root" }}
{{- get $paths (first .) }}
{{- end }}

{{/*
NCCL/UCX environment derived from network values; identical on every rank.
Usage: {{- include "triton-llm.ncclEnv" . | trim | nindent 12 }}
*/}}
{{- define "triton-llm.ncclEnv" -}}
{{- $net := .Values.network }}
{{- $rdma := ne $net.type "none" }}
{{- /* No HCA or GID default: "mlx5" is a prefix that matches every HCA, and RoCE GIDs differ per pod
      (macvlan), so NCCL picks them unless the user names them. */}}
{{- $hca := $net.nccl.ibHca }}
{{- $ifname := $net.nccl.socketIfname | default (ternary "net1" "eth0" $rdma) }}
{{- $gid := toString $net.nccl.ibGidIndex }}
- name: NCCL_DEBUG
  value: {{ $net.nccl.debug | quote }}
- name: NCCL_SOCKET_IFNAME
  value: {{ $ifname | quote }}
{{- if and $rdma $hca }}
- name: NCCL_IB_HCA
  value: {{ $hca | quote }}
{{- else if not $rdma }}
- name: NCCL_IB_DISABLE
  value: "1"
{{- end }}
{{- if $gid }}
- name: NCCL_IB_GID_INDEX
  value: {{ $gid | quote }}
{{- end }}
{{- if $net.ucxNetDevices }}
- name: UCX_NET_DEVICES
  value: {{ $net.ucxNetDevices | quote }}
{{- end }}
{{- /* The launcher forwards its transport settings to every rank (mpirun -x), remote ones included. */}}
- name: TRITON_LLM_TRANSPORT__NCCL_SOCKET_IFNAME
  value: {{ $ifname | quote }}
{{- if and $rdma $hca }}
- name: TRITON_LLM_TRANSPORT__NCCL_IB_HCA
  value: {{ $hca | quote }}
{{- end }}
{{- if $gid }}
- name: TRITON_LLM_TRANSPORT__NCCL_IB_GID_INDEX
  value: {{ $gid | quote }}
{{- end }}
{{- if $net.ucxNetDevices }}
- name: TRITON_LLM_TRANSPORT__UCX_NET_DEVICES
  value: {{ $net.ucxNetDevices | quote }}
{{- end }}
{{- end }}

{{/*
Environment shared by every container of the serving pods (leader, workers, init containers). HOME is
/root for ssh-mode serving containers (sshd reads root's authorized_keys there), else an emptyDir.
Usage: {{- include "triton-llm.commonEnv" (dict "root" $ "serving" true) | trim | nindent 12 }}
*/}}
{{- define "triton-llm.commonEnv" -}}
{{- $sshHome := and .serving (eq (include "triton-llm.sshMode" .root) "true") }}
{{- with .root }}
- name: POD_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: POD_NAMESPACE
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
- name: HOME
  value: {{ include "triton-llm.path" (list (ternary "rootHome" "home" $sshHome)) }}
- name: TRITON_LLM_CACHE_DIR
  value: {{ include "triton-llm.path" (list "cache") }}
- name: TRITON_LLM_STORE
  value: {{ .Values.engine.store | quote }}
- name: TRITON_LLM_PROGRESS
  value: plain
{{- if .Values.engine.s3EndpointUrl }}
- name: TRITON_LLM_S3_ENDPOINT_URL
  value: {{ .Values.engine.s3EndpointUrl | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Object-store credentials: secretKeyRef from engine.credentials.secretName (never plain values), the S3
endpoint and region. Only the containers that touch the store get them.
Usage: {{- include "triton-llm.storeEnv" . | trim | nindent 12 }}
*/}}
{{- define "triton-llm.storeEnv" -}}
{{- $c := .Values.engine.credentials }}
{{- if .Values.engine.s3EndpointUrl }}
- name: AWS_ENDPOINT_URL_S3
  value: {{ .Values.engine.s3EndpointUrl | quote }}
{{- end }}
{{- if .Values.engine.region }}
- name: AWS_REGION
  value: {{ .Values.engine.region | quote }}
{{- end }}
{{- if $c.secretName }}
- name: AWS_ACCESS_KEY_ID
  valueFrom: {secretKeyRef: {name: {{ $c.secretName | quote }}, key: {{ $c.accessKeyIdKey | quote }}}}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom: {secretKeyRef: {name: {{ $c.secretName | quote }}, key: {{ $c.secretAccessKeyKey | quote }}}}
- name: AWS_SESSION_TOKEN
  valueFrom: {secretKeyRef: {name: {{ $c.secretName | quote }}, key: {{ $c.sessionTokenKey | quote }}, optional: true}}
{{- end }}
{{- end }}

{{/*
True ("true"/"") when the group spans pods and mpirun reaches workers over ssh: sshd in the workers needs
root, a writable root filesystem (host keys, ~/.ssh) and the SETUID/SETGID/SYS_CHROOT capabilities.
Usage: {{ if include "triton-llm.sshMode" . }}...{{ end }}
*/}}
{{- define "triton-llm.sshMode" -}}
{{- if and (eq .Values.launcher.agent "ssh") (gt (include "triton-llm.nodesPerReplica" . | int) 1) }}true{{ end }}
{{- end }}

{{/*
True ("true"/"") when the serving pods run as root (podSecurity.runAsRoot, or the ssh agent).
Usage: {{ if include "triton-llm.runsAsRoot" . }}...{{ end }}
*/}}
{{- define "triton-llm.runsAsRoot" -}}
{{- if or .Values.podSecurity.runAsRoot (include "triton-llm.sshMode" .) }}true{{ end }}
{{- end }}

{{/*
Command of the serving container for a role: leader (LWS or StatefulSet mode), worker, or single
(Deployment). The leader runs the project's launcher and workers its rank agent: no launch logic lives here.
The ssh worker authorizes the public half of the mounted private key (`triton-llm agent ssh --private-key`);
the launcher and the agent both use a private copy when OpenSSH would refuse the mounted file (a root-owned
Secret made group-readable by fsGroup is refused for root).
Usage: command: {{- include "triton-llm.command" (dict "root" $ "role" "leader") | trim | nindent 12 }}
*/}}
{{- define "triton-llm.command" -}}
{{- $v := .root.Values }}
{{- $kind := $v.workload.kind }}
{{- $nodes := include "triton-llm.nodesPerReplica" .root | int }}
{{- $key := printf "%s/ssh-privatekey" (include "triton-llm.path" (list "ssh")) }}
{{- $args := list }}
{{- if eq .role "worker" }}
{{- if eq $v.launcher.agent "ssh" }}
{{- $args = list "triton-llm" "agent" "ssh" "--port" (toString $v.launcher.ssh.port) "--private-key" $key }}
{{- else }}
{{- $args = list "triton-llm" "agent" "wait" }}
{{- end }}
{{- else }}
{{- $args = list "triton-llm" "launch" $v.engine.key "--engine-dir" (include "triton-llm.engineDir" .root) "--model-repo" (include "triton-llm.path" (list "modelRepo")) }}
{{- $args = concat $args (list "--http-port" (toString $v.service.httpPort) "--grpc-port" (toString $v.service.grpcPort) "--metrics-port" (toString $v.service.metricsPort)) }}
{{- if and (eq .role "leader") (gt $nodes 1) }}
{{- if eq $kind "lws" }}
{{- $args = append $args "--lws" }}
{{- else }}
{{- $args = concat $args (list "--statefulset" (include "triton-llm.fullname" .root) "--service" (include "triton-llm.headlessName" .root) "--namespace" .root.Release.Namespace "--replicas" (toString $nodes)) }}
{{- end }}
{{- if eq $v.launcher.agent "ssh" }}
{{- $args = concat $args (list "--agent" "ssh" "--ssh-port" (toString $v.launcher.ssh.port) "--ssh-key" $key) }}
{{- else }}
{{- $args = concat $args (list "--agent" "kubectl" "--container" "rank-agent") }}
{{- end }}
{{- $args = concat $args (list "--join-timeout" (toString $v.launcher.joinTimeoutSeconds)) }}
{{- end }}
{{- $args = concat $args $v.launcher.extraArgs }}
{{- end }}
{{- toYaml $args }}
{{- end }}

{{/*
Command of the engine-pull init container: `triton-llm engine pull KEY`. With engine.build.enabled it first
waits, inside this one container run, until the build Job has published the key (engine.build.waitTimeoutSeconds):
a failed init container is restarted by the kubelet, and LWS counts any container restart as a group restart
(RecreateGroupOnPodRestart), so a pod must not fail its way through the wait.
Usage: command: {{- include "triton-llm.pullCommand" . | trim | nindent 8 }}
*/}}
{{- define "triton-llm.pullCommand" -}}
{{- $v := .Values }}
{{- $pull := list "triton-llm" "engine" "pull" $v.engine.key "--dest" (include "triton-llm.engineDir" .) "--store" $v.engine.store }}
{{- if $v.engine.build.enabled }}
{{- $wait := printf "deadline=$(( $(date +%%s) + %d )); until triton-llm engine show \"$3\" --store \"$7\" >/dev/null; do [ \"$(date +%%s)\" -lt \"$deadline\" ] || { echo \"engine $3 is not in $7 after %ds: check the engine-build Job (kubectl logs job/%s-engine-build)\" >&2; exit 1; }; echo \"waiting for the engine-build Job to publish $3\"; sleep 30; done; exec \"$0\" \"$@\"" (int $v.engine.build.waitTimeoutSeconds) (int $v.engine.build.waitTimeoutSeconds) (include "triton-llm.fullname" .) }}
{{- toYaml (concat (list "sh" "-c" $wait) $pull) }}
{{- else }}
{{- toYaml $pull }}
{{- end }}
{{- end }}

{{/*
The serving command, guarded when RDMA needs locked memory that a non-root pod cannot get by capability:
with a secondary RDMA network and non-root pods, it first checks that RLIMIT_MEMLOCK is unlimited (what the
container runtime gives the pod; IPC_LOCK is only effective for root) and fails with the fix instead of
letting NCCL's memory registration fail later. Otherwise the command as given.
Usage: command: {{- include "triton-llm.memlockGuard" (dict "root" $ "command" $argv) | trim | nindent 8 }}
*/}}
{{- define "triton-llm.memlockGuard" -}}
{{- $v := .root.Values }}
{{- if and (ne $v.network.type "none") (not (include "triton-llm.runsAsRoot" .root)) }}
{{- $check := "limit=$(ulimit -l); [ \"$limit\" = unlimited ] || { echo \"RLIMIT_MEMLOCK is $limit KiB in this pod, but RDMA needs it unlimited and a non-root pod cannot raise it (IPC_LOCK is effective only for root): set the container runtime's memlock limit to unlimited (containerd: LimitMEMLOCK=infinity), or podSecurity.runAsRoot=true\" >&2; exit 1; }; exec \"$0\" \"$@\"" }}
{{- toYaml (concat (list "sh" "-c" $check) .command) }}
{{- else }}
{{- toYaml .command }}
{{- end }}
{{- end }}

{{/*
Directory the init container pulls the engine into: the cache entry `triton-llm repo sync --key KEY` restores
to (<cache>/entries/engine/<key>), so the sync finds it verified in place and downloads nothing twice.
Usage: {{ include "triton-llm.engineDir" . }}
*/}}
{{- define "triton-llm.engineDir" -}}
{{- printf "%s/entries/engine/%s" (include "triton-llm.path" (list "cache")) .Values.engine.key }}
{{- end }}

{{/*
Resources of a serving container: the user's resources plus gpusPerNode GPUs, the RDMA resource and (emptyDir
cache) an ephemeral-storage request for the engine; identical on every rank.
Usage: resources: {{- include "triton-llm.resources" . | trim | nindent 12 }}
*/}}
{{- define "triton-llm.resources" -}}
{{- $extra := dict "nvidia.com/gpu" (int .Values.gpusPerNode) }}
{{- if ne .Values.network.type "none" }}
{{- $_ := set $extra .Values.network.rdmaResource.name (int .Values.network.rdmaResource.count) }}
{{- end }}
{{- $req := merge (deepCopy (.Values.resources.requests | default dict)) $extra }}
{{- $lim := merge (deepCopy (.Values.resources.limits | default dict)) $extra }}
{{- $cache := .Values.engine.cache }}
{{- if and (eq $cache.type "emptyDir") (not (hasKey $req "ephemeral-storage")) }}
{{- /* The engine cache emptyDir counts against the pod's ephemeral storage: request it so the scheduler
      only picks nodes with room for the whole engine. */}}
{{- $_ := set $req "ephemeral-storage" (toString ($cache.ephemeralStorageRequest | default $cache.sizeLimit)) }}
{{- end }}
{{- toYaml (dict "requests" $req "limits" $lim) }}
{{- end }}

{{/*
Container securityContext for a container kind:
- init: the engine pull and repo sync always run non-root with a read-only root filesystem;
- serving: every capability dropped; IPC_LOCK added back when the pod runs as root (RDMA and NCCL pin
  memory). A non-root process gets no effective capabilities from the container's add list, so IPC_LOCK would
  be inert there: non-root RDMA pods check RLIMIT_MEMLOCK instead (triton-llm.memlockGuard). Read-only root
  unless the ssh agent is used (its ~/.ssh and host keys live on the root filesystem);
- sshWorker: serving plus what sshd's privilege separation needs (SETUID, SETGID, SYS_CHROOT, AUDIT_WRITE);
- sidecar: the OpenAI frontend, non-root with a read-only root filesystem like the init containers.
Usage: securityContext: {{- include "triton-llm.containerSecurity" (dict "root" $ "kind" "init") | trim | nindent 12 }}
*/}}
{{- define "triton-llm.containerSecurity" -}}
{{- $ssh := eq (include "triton-llm.sshMode" .root) "true" }}
{{- $root := eq (include "triton-llm.runsAsRoot" .root) "true" }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ or (eq .kind "init") (eq .kind "test") (eq .kind "sidecar") (not $ssh) }}
{{- if or (eq .kind "init") (eq .kind "test") (eq .kind "sidecar") }}
runAsNonRoot: true
runAsUser: {{ .root.Values.podSecurity.runAsUser }}
runAsGroup: {{ .root.Values.podSecurity.runAsGroup }}
{{- end }}
capabilities:
  drop: [ALL]
  {{- if and (eq .kind "serving") $root }}
  add: [IPC_LOCK]
  {{- else if eq .kind "sshWorker" }}
  add: [IPC_LOCK, SETUID, SETGID, SYS_CHROOT, AUDIT_WRITE]
  {{- end }}
{{- end }}

{{/*
Pod securityContext: non-root unless podSecurity.runAsRoot or the ssh agent; RuntimeDefault seccomp.
Usage: securityContext: {{- include "triton-llm.podSecurity" . | trim | nindent 8 }}
*/}}
{{- define "triton-llm.podSecurity" -}}
{{- if include "triton-llm.runsAsRoot" . }}
runAsUser: 0
{{- else }}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.runAsUser }}
runAsGroup: {{ .Values.podSecurity.runAsGroup }}
{{- end }}
fsGroup: {{ .Values.podSecurity.runAsGroup }}
seccompProfile: {type: RuntimeDefault}
{{- end }}

{{/*
Node affinity on the engine's GPU product label (engine.gpuProduct).
Usage: {{- include "triton-llm.gpuAffinity" . | trim | nindent 8 }}
*/}}
{{- define "triton-llm.gpuAffinity" -}}
{{- if .Values.engine.gpuProduct }}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
        - matchExpressions:
            - key: nvidia.com/gpu.product
              operator: In
              values: [{{ .Values.engine.gpuProduct | quote }}]
{{- end }}
{{- end }}

{{/*
Pod template (metadata + spec) of a serving pod. role: leader, worker or single.
Usage: {{- include "triton-llm.podTemplate" (dict "root" $ "role" "leader") | trim | nindent 6 }}
*/}}
{{- define "triton-llm.podTemplate" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $role := .role }}
{{- $serving := ne $role "worker" }}
{{- $ssh := eq (include "triton-llm.sshMode" $root) "true" }}
{{- $key := $v.engine.key }}
metadata:
  labels:
    {{- include "triton-llm.roleSelectorLabels" (dict "root" $root "role" (ternary "leader" $role (eq $role "single"))) | nindent 4 }}
    {{- include "triton-llm.servingLabel" $root | nindent 4 }}
    {{- if and $serving $v.inferencePool.enabled }}
    {{- /* The Inference Extension's endpoint picker reads TensorRT-LLM backend metrics from pods with this label. */}}
    llm-d.ai/engine-type: triton-tensorrt-llm
    {{- end }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    triton-llm/engine-key: {{ $key | quote }}
    {{- if ne $v.network.type "none" }}
    k8s.v1.cni.cncf.io/networks: {{ include "triton-llm.networkName" $root }}
    {{- end }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "triton-llm.serviceAccountName" $root }}
  automountServiceAccountToken: {{ and (eq $v.launcher.agent "kubectl") (eq $role "leader") }}
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
  {{- with $v.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- range . }}
    - name: {{ . }}
    {{- end }}
  {{- end }}
  securityContext:
    {{- include "triton-llm.podSecurity" $root | trim | nindent 4 }}
  {{- include "triton-llm.gpuAffinity" $root | trim | nindent 2 }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if $v.topologySpreadKey }}
  topologySpreadConstraints:
    - maxSkew: 1
      topologyKey: {{ $v.topologySpreadKey }}
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "triton-llm.selectorLabels" $root | nindent 10 }}
          {{- include "triton-llm.servingLabel" $root | nindent 10 }}
  {{- end }}
  initContainers:
    {{- if eq $v.engine.cache.type "hostPath" }}
    {{- /* The kubelet creates a missing hostPath (DirectoryOrCreate) root-owned 0755, and fsGroup does not
          apply to hostPath, so the uid-1000 init containers could not write it: hand it to that uid first.
          Root with only CHOWN and FOWNER, in this one container. */}}
    - name: cache-owner
      image: {{ include "triton-llm.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command:
        {{- toYaml (list "install" "-d" "-o" (toString $v.podSecurity.runAsUser) "-g" (toString $v.podSecurity.runAsGroup) "-m" "0775" (include "triton-llm.path" (list "cache"))) | nindent 8 }}
      resources:
        {{- toYaml $v.initResources | nindent 8 }}
      securityContext:
        runAsUser: 0
        runAsNonRoot: false
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {drop: [ALL], add: [CHOWN, FOWNER]}
      volumeMounts:
        - {name: engine-cache, mountPath: {{ include "triton-llm.path" (list "cache") }}}
    {{- end }}
    - name: engine-pull
      image: {{ include "triton-llm.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command:
        {{- include "triton-llm.pullCommand" $root | trim | nindent 8 }}
      env:
        {{- include "triton-llm.commonEnv" (dict "root" $root "serving" false) | trim | nindent 8 }}
        {{- include "triton-llm.storeEnv" $root | trim | nindent 8 }}
      resources:
        {{- toYaml $v.initResources | nindent 8 }}
      securityContext:
        {{- include "triton-llm.containerSecurity" (dict "root" $root "kind" "init") | trim | nindent 8 }}
      volumeMounts:
        - {name: engine-cache, mountPath: {{ include "triton-llm.path" (list "cache") }}}
        - {name: tmp, mountPath: /tmp}
        - {name: home, mountPath: {{ include "triton-llm.path" (list "home") }}}
    - name: repo-sync
      image: {{ include "triton-llm.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command:
        {{- toYaml (list "triton-llm" "repo" "sync" "--key" $key "--repo" (include "triton-llm.path" (list "modelRepo")) "--store" $v.engine.store) | nindent 8 }}
      env:
        {{- include "triton-llm.commonEnv" (dict "root" $root "serving" false) | trim | nindent 8 }}
        {{- include "triton-llm.storeEnv" $root | trim | nindent 8 }}
      resources:
        {{- toYaml $v.initResources | nindent 8 }}
      securityContext:
        {{- include "triton-llm.containerSecurity" (dict "root" $root "kind" "init") | trim | nindent 8 }}
      volumeMounts:
        - {name: engine-cache, mountPath: {{ include "triton-llm.path" (list "cache") }}}
        - {name: model-repo, mountPath: {{ include "triton-llm.path" (list "models") }}}
        - {name: tmp, mountPath: /tmp}
        - {name: home, mountPath: {{ include "triton-llm.path" (list "home") }}}
  containers:
    - name: {{ ternary "triton" "rank-agent" $serving }}
      image: {{ include "triton-llm.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command:
        {{- include "triton-llm.memlockGuard" (dict "root" $root "command" (include "triton-llm.command" (dict "root" $root "role" $role) | fromYamlArray)) | trim | nindent 8 }}
      env:
        {{- include "triton-llm.commonEnv" (dict "root" $root "serving" true) | trim | nindent 8 }}
        {{- include "triton-llm.ncclEnv" $root | trim | nindent 8 }}
      {{- if or $serving $ssh }}
      ports:
        {{- if $serving }}
        - {name: http, containerPort: {{ $v.service.httpPort }}, protocol: TCP}
        - {name: grpc, containerPort: {{ $v.service.grpcPort }}, protocol: TCP}
        - {name: metrics, containerPort: {{ $v.service.metricsPort }}, protocol: TCP}
        {{- else }}
        - {name: ssh, containerPort: {{ $v.launcher.ssh.port }}, protocol: TCP}
        {{- end }}
      {{- end }}
      {{- if $serving }}
      startupProbe:
        httpGet: {path: /v2/health/ready, port: http}
        periodSeconds: {{ $v.probes.startup.periodSeconds }}
        failureThreshold: {{ $v.probes.startup.failureThreshold }}
        timeoutSeconds: {{ $v.probes.timeoutSeconds }}
      readinessProbe:
        httpGet: {path: /v2/health/ready, port: http}
        periodSeconds: {{ $v.probes.readiness.periodSeconds }}
        failureThreshold: {{ $v.probes.readiness.failureThreshold }}
        timeoutSeconds: {{ $v.probes.timeoutSeconds }}
      livenessProbe:
        httpGet: {path: /v2/health/live, port: http}
        periodSeconds: {{ $v.probes.liveness.periodSeconds }}
        failureThreshold: {{ $v.probes.liveness.failureThreshold }}
        timeoutSeconds: {{ $v.probes.timeoutSeconds }}
      {{- end }}
      resources:
        {{- include "triton-llm.resources" $root | trim | nindent 8 }}
      securityContext:
        {{- include "triton-llm.containerSecurity" (dict "root" $root "kind" (ternary "sshWorker" "serving" (and $ssh (eq $role "worker")))) | trim | nindent 8 }}
      volumeMounts:
        - {name: engine-cache, mountPath: {{ include "triton-llm.path" (list "cache") }}, readOnly: true}
        - {name: model-repo, mountPath: {{ include "triton-llm.path" (list "models") }}, readOnly: true}
        - {name: shm, mountPath: /dev/shm}
        - {name: tmp, mountPath: /tmp}
        {{- if not $ssh }}
        - {name: home, mountPath: {{ include "triton-llm.path" (list "home") }}}
        {{- end }}
        {{- if $ssh }}
        - {name: ssh-key, mountPath: {{ include "triton-llm.path" (list "ssh") }}, readOnly: true}
        {{- end }}
    {{- if and $serving $v.frontend.enabled }}
    {{- include "triton-llm.frontendContainer" $root | trim | nindent 4 }}
    {{- end }}
  volumes:
    {{- if eq $v.engine.cache.type "hostPath" }}
    - name: engine-cache
      hostPath: {path: {{ $v.engine.cache.hostPath }}, type: DirectoryOrCreate}
    {{- else }}
    - name: engine-cache
      emptyDir: {sizeLimit: {{ $v.engine.cache.sizeLimit }}}
    {{- end }}
    - name: model-repo
      emptyDir: {sizeLimit: 1Gi}
    - name: shm
      emptyDir: {medium: Memory, sizeLimit: {{ $v.shmSize }}}
    - name: tmp
      emptyDir: {sizeLimit: 10Gi}
    - name: home
      emptyDir: {sizeLimit: 100Mi}
    {{- if $ssh }}
    - name: ssh-key
      secret:
        secretName: {{ include "triton-llm.sshSecretName" $root }}
        defaultMode: 0400
    {{- end }}
{{- end }}

{{/*
A Kubernetes quantity ("4", 4, "2500m") as a plain decimal number string (KEDA thresholds take numbers).
Usage: {{ include "triton-llm.quantityNumber" .Values.autoscaling.targetWaitingRequests }}
*/}}
{{- define "triton-llm.quantityNumber" -}}
{{- $q := toString . }}
{{- if hasSuffix "m" $q }}
{{- $milli := trimSuffix "m" $q | float64 }}
{{- divf $milli 1000.0 }}
{{- else }}
{{- $q }}
{{- end }}
{{- end }}

{{/*
Model id of the OpenAI frontend: frontend.modelName, or the release name.
Usage: {{ include "triton-llm.frontendModel" . }}
*/}}
{{- define "triton-llm.frontendModel" -}}
{{- default .Release.Name .Values.frontend.modelName }}
{{- end }}

{{/*
The OpenAI frontend sidecar of a leader pod: `triton-llm frontend` calling the leader's Triton over gRPC on
localhost, ready once /v1/models answers. It never exits while Triton is down (it answers 503), so it cannot
make LWS recreate the group.
Usage: {{- include "triton-llm.frontendContainer" . | trim | nindent 4 }}
*/}}
{{- define "triton-llm.frontendContainer" -}}
{{- $v := .Values }}
- name: openai-frontend
  image: {{ include "triton-llm.image" . }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  command:
    {{- toYaml (list "triton-llm" "frontend" "--triton" (printf "127.0.0.1:%d" (int $v.service.grpcPort)) "--host" "0.0.0.0" "--port" (toString $v.frontend.port) "--model-name" (include "triton-llm.frontendModel" .) "--max-inflight" (toString $v.frontend.maxInflight)) | nindent 4 }}
  env:
    - {name: HOME, value: /tmp}
  ports:
    - {name: openai, containerPort: {{ $v.frontend.port }}, protocol: TCP}
  readinessProbe:
    httpGet: {path: /v1/models, port: openai}
    periodSeconds: {{ $v.probes.readiness.periodSeconds }}
    failureThreshold: {{ $v.probes.readiness.failureThreshold }}
    timeoutSeconds: {{ $v.probes.timeoutSeconds }}
  resources:
    {{- toYaml $v.frontend.resources | nindent 4 }}
  securityContext:
    {{- include "triton-llm.containerSecurity" (dict "root" . "kind" "sidecar") | trim | nindent 4 }}
  volumeMounts:
    - {name: tmp, mountPath: /tmp}
{{- end }}

{{/*
validateValues: checks every rule the schema cannot express, collects all problems and fails once with a
message naming the keys to set. Rendered by templates/validate.yaml.
Usage: {{- include "triton-llm.validateValues" . }}
*/}}
{{- define "triton-llm.validateValues" -}}
{{- $v := .Values }}
{{- $errs := list }}
{{- $ws := include "triton-llm.worldSize" . | int }}
{{- $gpn := int $v.gpusPerNode }}
{{- $nodes := include "triton-llm.nodesPerReplica" . | int }}
{{- if not $v.engine.key }}
{{- $errs = append $errs "engine.key: set the engine key printed by `triton-llm engine build RECIPE --dry-run` (the full 64 hex digits)" }}
{{- end }}
{{- if not (hasPrefix "s3://" $v.engine.store) }}
{{- $errs = append $errs (printf "engine.store: set an s3://bucket/prefix URI (got %q)" $v.engine.store) }}
{{- end }}
{{- if ne (mod $ws $gpn) 0 }}
{{- $errs = append $errs (printf "parallelism: tp*pp=%d is not a multiple of gpusPerNode=%d; set gpusPerNode to a divisor of %d (GPUs per pod), or change parallelism.tp/pp" $ws $gpn $ws) }}
{{- end }}
{{- if and (eq $v.workload.kind "deployment") (gt $nodes 1) }}
{{- $errs = append $errs (printf "workload.kind: deployment runs one pod but tp*pp=%d needs %d nodes of gpusPerNode=%d; use lws or statefulset" $ws $nodes $gpn) }}
{{- end }}
{{- if and (eq $v.workload.kind "statefulset") (ne (int $v.replicas) 1) }}
{{- $errs = append $errs (printf "replicas: workload.kind=statefulset serves exactly one group (got %d); set replicas: 1 or use workload.kind=lws" (int $v.replicas)) }}
{{- end }}
{{- if and (eq $v.workload.kind "statefulset") $v.autoscaling.enabled }}
{{- $errs = append $errs "autoscaling.enabled: a StatefulSet group cannot be scaled by whole groups; use workload.kind=lws (or turn autoscaling off)" }}
{{- end }}
{{- if $v.autoscaling.enabled }}
{{- if gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas) }}
{{- $errs = append $errs (printf "autoscaling.minReplicas=%d is above autoscaling.maxReplicas=%d" (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- end }}
{{- if not (and $v.monitoring.enabled $v.monitoring.prometheusRule.enabled) }}
{{- $errs = append $errs "autoscaling.enabled: the HPA metric is recorded by the PrometheusRule; set monitoring.enabled and monitoring.prometheusRule.enabled" }}
{{- end }}
{{- end }}
{{- $configured := list }}
{{- if $v.network.macvlan.master }}{{ $configured = append $configured "macvlan" }}{{ end }}
{{- if $v.network.ipoib.master }}{{ $configured = append $configured "ipoib" }}{{ end }}
{{- if $v.network.hostdevice.resourceName }}{{ $configured = append $configured "hostdevice" }}{{ end }}
{{- range $configured }}
{{- if ne . $v.network.type }}
{{- $errs = append $errs (printf "network.%s is configured but network.type=%s: configure exactly one network kind (set network.type=%s or clear network.%s)" . $v.network.type . .) }}
{{- end }}
{{- end }}
{{- if and (eq $v.network.type "macvlan") $v.network.create (not $v.network.macvlan.master) }}
{{- $errs = append $errs "network.macvlan.master: set the host RoCE interface to enslave (e.g. ens1f0np0)" }}
{{- end }}
{{- if and (eq $v.network.type "ipoib") $v.network.create (not $v.network.ipoib.master) }}
{{- $errs = append $errs "network.ipoib.master: set the host IPoIB interface (e.g. ibs1f0)" }}
{{- end }}
{{- if and (eq $v.network.type "hostdevice") $v.network.create (not $v.network.hostdevice.resourceName) }}
{{- $errs = append $errs "network.hostdevice.resourceName: set the device-plugin resource pool (e.g. hostdev)" }}
{{- end }}
{{- if and (ne $v.network.type "none") (not $v.network.rdmaResource.name) }}
{{- $errs = append $errs "network.rdmaResource.name: an RDMA network needs the extended resource pods request (e.g. rdma/rdma_shared_device_a)" }}
{{- end }}
{{- if and (eq $v.network.type "none") (or $v.network.nccl.ibHca (toString $v.network.nccl.ibGidIndex)) }}
{{- $errs = append $errs "network.nccl.ibHca/ibGidIndex: set for an InfiniBand/RoCE HCA but network.type=none; choose network.type (macvlan, ipoib, hostdevice) or clear them" }}
{{- end }}
{{- $nic := $v.network.nicClusterPolicy }}
{{- if and $nic.enabled (not $nic.rdmaSharedDevicePlugin.version) }}
{{- $errs = append $errs "network.nicClusterPolicy.rdmaSharedDevicePlugin.version: pin the image version your Network Operator release lists" }}
{{- end }}
{{- if and $nic.enabled (not $nic.ifNames) }}
{{- $errs = append $errs "network.nicClusterPolicy.ifNames: list the host interfaces the RDMA shared device plugin exposes" }}
{{- end }}
{{- $budget := mul (int $v.probes.startup.periodSeconds) (int $v.probes.startup.failureThreshold) }}
{{- if and (gt $nodes 1) (le (int $budget) (int $v.launcher.joinTimeoutSeconds)) }}
{{- $errs = append $errs (printf "probes.startup: budget periodSeconds*failureThreshold=%ds must exceed launcher.joinTimeoutSeconds=%ds plus the engine load time; raise probes.startup.failureThreshold" (int $budget) (int $v.launcher.joinTimeoutSeconds)) }}
{{- end }}
{{- range $kind := list "requests" "limits" }}
{{- $set := index ($v.resources | default dict) $kind | default dict }}
{{- if hasKey $set "nvidia.com/gpu" }}
{{- $errs = append $errs (printf "resources.%s.nvidia.com/gpu: remove it; the chart gives every serving pod gpusPerNode=%d GPUs (and derives the pods per group from it), so set gpusPerNode instead" $kind $gpn) }}
{{- end }}
{{- if and (ne $v.network.type "none") (hasKey $set $v.network.rdmaResource.name) }}
{{- $errs = append $errs (printf "resources.%s.%s: remove it; the chart requests network.rdmaResource.count of it, so set that instead" $kind $v.network.rdmaResource.name) }}
{{- end }}
{{- end }}
{{- if and (include "triton-llm.sshMode" .) (not $v.launcher.ssh.existingSecret) }}
{{- $errs = append $errs "launcher.ssh.existingSecret: the ssh agent needs the group's key in a Secret you create once (the chart does not generate it, so GitOps renders stay stable): ssh-keygen -t ed25519 -N '' -f group-key && kubectl create secret generic NAME --type=kubernetes.io/ssh-auth --from-file=ssh-privatekey=group-key, then set launcher.ssh.existingSecret=NAME (or use launcher.agent=kubectl)" }}
{{- end }}
{{- range $v.engine.build.set }}
{{- if hasPrefix "parallelism." . }}
{{- $errs = append $errs (printf "engine.build.set: %q sets parallelism; set parallelism.tp/pp at the top level (the Job passes them, and the serving pods use them too)" .) }}
{{- end }}
{{- end }}
{{- if and $v.engine.build.enabled (not $v.engine.build.recipe) }}
{{- $errs = append $errs "engine.build.recipe: name the recipe the build Job builds (engines/<name>.yaml)" }}
{{- end }}
{{- if and $v.autoscaling.keda.enabled (not $v.autoscaling.enabled) }}
{{- $errs = append $errs "autoscaling.keda.enabled: KEDA scales only with autoscaling.enabled (it replaces the chart's HPA); set autoscaling.enabled=true or turn keda off" }}
{{- end }}
{{- $pool := $v.inferencePool }}
{{- if and $pool.enabled (not $v.frontend.enabled) }}
{{- $errs = append $errs "inferencePool.enabled: the pool routes OpenAI requests to the leaders' frontend sidecar; set frontend.enabled=true" }}
{{- end }}
{{- if and $pool.enabled (not $pool.endpointPicker.name) }}
{{- $errs = append $errs "inferencePool.endpointPicker.name: name the Service of the endpoint picker (llm-d-router) you deploy for this pool" }}
{{- end }}
{{- if and $pool.enabled $pool.httpRoute.enabled (not $pool.httpRoute.gatewayName) }}
{{- $errs = append $errs "inferencePool.httpRoute.gatewayName: name the Gateway the HTTPRoute attaches to (or set inferencePool.httpRoute.enabled=false)" }}
{{- end }}
{{- if and (gt (int $v.workload.lws.partition) 0) (ne $v.workload.kind "lws") }}
{{- $errs = append $errs "workload.lws.partition: only a LeaderWorkerSet has a partition; leave it 0 with workload.kind other than lws" }}
{{- end }}
{{- if $errs }}
{{- fail (printf "\n\ntriton-llm: %d invalid value(s):\n  - %s\n" (len $errs) (join "\n  - " $errs)) }}
{{- end }}
{{- end }}
