#!/usr/bin/env bash
# make k8s-e2e: a real Kubernetes control plane drives the CSI controller, from
# the shipped manifests in examples/kubernetes.
#
# On 127.0.0.1, with free ports, started and stopped here (nothing is left
# running; the work folder is removed on success and kept on failure):
#   etcd, kube-apiserver (certificates, service-account keys and static tokens
#   made at run time, RBAC authorization), kube-controller-manager (PV binder,
#   PV/PVC protection, attach-detach, expander, service accounts),
#   snapshot-controller (with the snapshot CRDs), `rds-reconcile sim` as the
#   RDS, and the pod of the shipped controller (Deployment or StatefulSet,
#   whichever controller.yaml says) run as processes: `rds-reconcile csi` and
#   csi-provisioner, csi-attacher, csi-resizer, csi-snapshotter with the args
#   the manifest gives them.
# Binaries come from k8s-e2e/build.sh (a cache outside the repository; a cold
# build takes ~30 min on 2 quiet cores, 2 hours loaded: docs/csi.md; a warm
# one nothing).
#
# What the harness changes, and why (everything else is the manifests' own):
#   - Container args are read from controller.yaml at run time (k8s-e2e/tool pod,
#     package k8s-e2e/manifest) with these rewrites: $(VAR) expanded as the kubelet
#     does; paths under a volumeMount moved to <work>/controller/volumes/<volume>;
#     listen addresses ":N" of a containerPort moved to 127.0.0.1:<free port>.
#   - The sidecars get --kubeconfig with a token of the pod's ServiceAccount
#     (`kubectl create token`), since they run outside a pod: wrong RBAC fails the
#     test. With --leader-election they also get
#     --leader-election-namespace=<the workload's namespace>, which in a pod
#     they read from the service-account mount.
#   - The driver gets KUBECONFIG (and --kubeconfig if `csi --help` has it) with
#     the same ServiceAccount's token, for a driver that talks to the API.
#   - The images: ghcr.io/rds-reconcile/rds-reconcile is this tree's binary; each
#     sidecar image must name the version build.sh built (else the test fails);
#     livenessprobe is not served by the Go module proxy and is not run (the
#     driver's own /healthz is checked instead).
#   - configmap.yaml: its base state is applied with the target pointed at the
#     simulator and the SSH key paths mapped like args (k8s-e2e/tool basestate). secret.yaml holds placeholders: the rds-ssh
#     Secret is created the way its comment says, from the simulator's key and
#     known_hosts. Both are then projected into the pod's volumes from the API,
#     as the kubelet would. emptyDir volumes (and a volumeClaimTemplate) are
#     empty folders.
#   - controller.yaml and node.yaml are validated by the apiserver (server-side
#     dry run) but not run as workloads: there is no kubelet on this side.
#   - The snapshot CRDs (VolumeSnapshotClass, VolumeSnapshot,
#     VolumeSnapshotContent) and snapshot-controller's RBAC are applied from
#     the external-snapshotter modules of SNAPSHOTTER_VERSION in the Go module
#     cache (client/v8 config/crd; deploy/kubernetes/snapshot-controller), as
#     a cluster admin installs them; snapshot-controller runs on the host like
#     kube-controller-manager, with a token of its ServiceAccount and no
#     leader election. volumesnapshotclass.yaml is applied as shipped.
#   - The simulator keeps its disks as sparse files (--backend files) and logs
#     every command (--log-level debug), so the snapshot flows can check what
#     a disk was copied from: by the copy-from command and by the bytes.
#   - No kube-scheduler: the WaitForFirstConsumer class's PVC gets the
#     volume.kubernetes.io/selected-node annotation the scheduler would set, and
#     the test pod has spec.nodeName. The Node and its CSINode are made by hand
#     (what the kubelet does), the CSINode's node id asked from our node plugin
#     by NodeGetInfo (what node-driver-registrar does), the plugin on a
#     simulated host; pods are deleted with --force, since no kubelet confirms
#     termination.
#
# Environment: K8S_E2E_WORK (work folder; default a new /tmp/k8s-e2e.*),
# K8S_E2E_KEEP=1 (keep it on success), RDS_RECONCILE (a binary instead of
# building this tree), K8S_E2E_CACHE / K8S_E2E_BIN (see build.sh),
# K8S_E2E_PVCS (the many-PVCs step, default 20).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
EX=$REPO/examples/kubernetes
T0=$(date +%s)
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

say() { printf '[k8s-e2e %4ss] %s\n' "$(($(date +%s) - T0))" "$*"; }

BIN=$("$REPO/k8s-e2e/build.sh")
# shellcheck source=k8s-e2e/versions.env
. "$REPO/k8s-e2e/versions.env"

# The snapshot CRDs and snapshot-controller's RBAC, from the module cache
# build.sh filled (the sidecar's module and its client module, same tag).
snapdir() { # snapdir <module>: its folder in the module cache
  (cd / && GOFLAGS=-mod=mod go mod download -json "$1@$SNAPSHOTTER_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
}
SNAP_MOD=$(snapdir github.com/kubernetes-csi/external-snapshotter/v8)
SNAP_CLIENT=$(snapdir github.com/kubernetes-csi/external-snapshotter/client/v8)
SNAP_CRDS=()
for k in volumesnapshotclasses volumesnapshotcontents volumesnapshots; do
  SNAP_CRDS+=("$SNAP_CLIENT/config/crd/snapshot.storage.k8s.io_$k.yaml")
done
SNAP_RBAC=$SNAP_MOD/deploy/kubernetes/snapshot-controller/rbac-snapshot-controller.yaml
for f in "${SNAP_CRDS[@]}" "$SNAP_RBAC"; do
  [ -f "$f" ] || {
    echo "k8s-e2e: $f is missing: external-snapshotter $SNAPSHOTTER_VERSION moved its CRDs or RBAC; update run.sh" >&2
    exit 1
  }
done

W=${K8S_E2E_WORK:-$(mktemp -d /tmp/k8s-e2e.XXXXXX)}
mkdir -p "$W"/{bin,logs,pki,kube,etcd}
LOGS=$W/logs
export KUBECONFIG=$W/kube/admin.kubeconfig

PIDS=()
NAMES=()
STEP="setup"
OK=0

start() { # start <name> <cmd...>: a background process logging to logs/<name>.log
  local name=$1
  shift
  "$@" >>"$LOGS/$name.log" 2>&1 &
  PIDS+=($!)
  NAMES+=("$name")
}

# podstart <name> <cmd...>: start a container of the controller pod, its
# command kept in pod-cmd/<name>.sh (exec: the PID is the container's own) so
# the pod can be deleted and started again exactly as before.
podstart() {
  local name=$1
  shift
  mkdir -p "$W/pod-cmd"
  printf '%q ' exec "$@" >"$W/pod-cmd/$name.sh"
  start "$name" bash "$W/pod-cmd/$name.sh"
}

cleanup() {
  local rc=$?
  set +e
  # Stop in reverse start order, each before the next, so the apiserver does
  # not outlive etcd nor the sidecars the apiserver.
  local i n
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${PIDS[$i]}" 2>/dev/null || continue
    n=0
    while kill -0 "${PIDS[$i]}" 2>/dev/null && [ $n -lt 200 ]; do
      sleep 0.1
      n=$((n + 1))
    done
    if kill -0 "${PIDS[$i]}" 2>/dev/null; then
      echo "k8s-e2e: ${NAMES[$i]} did not stop 20 s after TERM; killing it" >&2
      kill -KILL "${PIDS[$i]}" 2>/dev/null
    fi
    wait "${PIDS[$i]}" 2>/dev/null
  done
  if [ "$OK" = 1 ] && [ "${K8S_E2E_KEEP:-0}" != 1 ]; then
    rm -rf "$W"
  else
    echo "k8s-e2e: work folder kept: $W" >&2
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# fail <message> [log...]: names the step, prints the message and the logs
# that matter for it (the tail of each, and every RBAC refusal anywhere).
fail() {
  local msg=$1
  shift
  echo >&2
  echo "k8s-e2e: FAILED at step \"$STEP\": $msg" >&2
  local l
  for l in "$@"; do
    [ -f "$LOGS/$l.log" ] || continue
    echo "---- $l.log (last 60 lines) ----" >&2
    tail -n 60 "$LOGS/$l.log" >&2
  done
  if grep -l -i 'forbidden' "$LOGS"/*.log >/dev/null 2>&1; then
    echo "---- RBAC refusals (forbidden) ----" >&2
    grep -i -h 'forbidden' "$LOGS"/*.log | tail -n 20 >&2
  fi
  for l in "${NAMES[@]}"; do
    local i
    for i in "${!NAMES[@]}"; do
      if [ "${NAMES[$i]}" = "$l" ] && ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
        echo "---- $l exited early; its log ----" >&2
        tail -n 30 "$LOGS/$l.log" >&2
      fi
    done
  done
  exit 1
}

step() {
  STEP=$1
  say "== $STEP"
}

# alive <name...>: every named process still runs.
alive() {
  local n i
  for n in "$@"; do
    for i in "${!NAMES[@]}"; do
      if [ "${NAMES[$i]}" = "$n" ] && ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
        fail "$n exited" "$n"
      fi
    done
  done
}

# alive_quiet <name...>: every named process that was started still runs
# (names that are logs only, not processes, are ignored).
alive_quiet() {
  local n i
  for n in "$@"; do
    for i in "${!NAMES[@]}"; do
      if [ "${NAMES[$i]}" = "$n" ] && ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
        return 1
      fi
    done
  done
}

K() { "$BIN/kubectl" "$@"; }

# waitfor <seconds> <description> <logs...> -- <command...>: polls until the
# command succeeds.
waitfor() {
  local secs=$1 what=$2 logs=()
  shift 2
  while [ "$1" != "--" ]; do
    logs+=("$1")
    shift
  done
  shift
  local end=$(($(date +%s) + secs))
  until "$@" >/dev/null 2>&1; do
    alive_quiet "${logs[@]}" || fail "$what: a process it needs exited" "${logs[@]}"
    if [ "$(date +%s)" -ge "$end" ]; then
      fail "$what: not so after ${secs}s" "${logs[@]}"
    fi
    sleep 0.5
  done
}

step "build rds-reconcile and the harness tool"
TOOL=$W/bin/tool
go build -o "$TOOL" ./k8s-e2e/tool
RR=${RDS_RECONCILE:-}
if [ -z "$RR" ]; then
  CGO_ENABLED=0 go build -trimpath -o "$W/bin/rds-reconcile" ./cmd/rds-reconcile
  RR=$W/bin/rds-reconcile
fi

step "etcd $ETCD_VERSION"
mapfile -t P < <("$TOOL" ports 3)
ETCD_PORT=${P[0]} ETCD_PEER=${P[1]} API_PORT=${P[2]}
start etcd "$BIN/etcd" --name default --data-dir "$W/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
  --initial-cluster "default=http://127.0.0.1:$ETCD_PEER" --unsafe-no-fsync --log-level warn
"$TOOL" wait-http --timeout 60s "http://127.0.0.1:$ETCD_PORT/health" >/dev/null || fail "etcd is not healthy" etcd

step "kube-apiserver $K8S_VERSION (RBAC)"
"$TOOL" certs "$W/pki" >/dev/null
start kube-apiserver "$BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
  --tls-cert-file "$W/pki/apiserver.crt" --tls-private-key-file "$W/pki/apiserver.key" \
  --cert-dir "$W/pki/apiserver" \
  --token-auth-file "$W/pki/tokens.csv" --authorization-mode RBAC \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$W/pki/sa.pub" --service-account-signing-key-file "$W/pki/sa.key" \
  --service-cluster-ip-range 10.0.0.0/24 --allow-privileged=true \
  --enable-priority-and-fairness=false --profiling=false --v=1
SERVER=https://127.0.0.1:$API_PORT
"$TOOL" wait-http --timeout 120s --ca "$W/pki/ca.crt" --token-file "$W/pki/admin.token" "$SERVER/readyz" >/dev/null ||
  fail "kube-apiserver is not ready" kube-apiserver etcd
for u in admin kube-controller-manager; do
  "$TOOL" kubeconfig --server "$SERVER" --ca "$W/pki/ca.crt" --token-file "$W/pki/$u.token" --out "$W/kube/$u.kubeconfig"
done
say "$(K version 2>&1 | tr '\n' ' ')"

step "kube-controller-manager $K8S_VERSION"
KCM_PORT=$("$TOOL" ports 1)
start kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig "$W/kube/kube-controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --leader-elect=false \
  --controllers persistentvolume-binder-controller,persistentvolume-protection-controller,persistentvolumeclaim-protection-controller,persistentvolume-attach-detach-controller,persistentvolume-expander-controller,serviceaccount-controller,namespace-controller \
  --v=2
# The service-account controller made "default": the controllers run.
waitfor 90 "kube-controller-manager runs (serviceaccount default/default)" kube-controller-manager -- \
  K -n default get serviceaccount default

step "rds-reconcile sim (the RDS)"
start sim "$RR" --log-level debug --log-format json sim --backend files --listen 127.0.0.1:0 --dir "$W/rds"
waitfor 30 "the simulator writes its known_hosts" sim -- test -s "$W/rds/known_hosts"
SIM_PORT=$(sed -n 's/^\[127\.0\.0\.1\]:\([0-9]*\) .*/\1/p' "$W/rds/known_hosts" | head -n1)
[ -n "$SIM_PORT" ] || fail "no port in the simulator's known_hosts: $(cat "$W/rds/known_hosts")" sim
rds() { "$TOOL" rds "$W/rds/state.json" 2>/dev/null || true; }
rds_empty() { [ -z "$(rds)" ]; }

step "snapshot CRDs and snapshot-controller $SNAPSHOTTER_VERSION"
crd_args=()
for f in "${SNAP_CRDS[@]}"; do crd_args+=(-f "$f"); done
K apply "${crd_args[@]}" >"$LOGS/apply.log" 2>&1 || fail "applying the snapshot CRDs of external-snapshotter $SNAPSHOTTER_VERSION" apply
K wait --for condition=established --timeout 60s "${crd_args[@]}" >>"$LOGS/apply.log" 2>&1 ||
  fail "the snapshot CRDs are not established" apply kube-apiserver
K apply -f "$SNAP_RBAC" >>"$LOGS/apply.log" 2>&1 || fail "applying snapshot-controller's RBAC ($SNAP_RBAC)" apply
K -n kube-system create token snapshot-controller --duration 2h >"$W/kube/snapshot-controller.token" ||
  fail "kubectl create token snapshot-controller"
"$TOOL" kubeconfig --server "$SERVER" --ca "$W/pki/ca.crt" --token-file "$W/kube/snapshot-controller.token" \
  --out "$W/kube/snapshot-controller.kubeconfig"
start snapshot-controller "$BIN/snapshot-controller" --kubeconfig "$W/kube/snapshot-controller.kubeconfig" --v=4

step "apply the shipped manifests"
K apply -f "$EX/namespace.yaml" -f "$EX/rbac.yaml" -f "$EX/csidriver.yaml" -f "$EX/storageclass.yaml" \
  -f "$EX/volumesnapshotclass.yaml" >>"$LOGS/apply.log" 2>&1 ||
  fail "kubectl apply of the shipped manifests" apply
# The workloads are validated by the real API (strict fields) but not run here.
K apply --dry-run=server -f "$EX/controller.yaml" -f "$EX/node.yaml" >>"$LOGS/apply.log" 2>&1 ||
  fail "the apiserver refuses controller.yaml or node.yaml" apply
NS=$(K get -f "$EX/namespace.yaml" -o jsonpath='{.metadata.name}')

NODE=k8s-e2e-node-1
CTL=$W/controller
K -n "$NS" create secret generic rds-ssh \
  --from-file=id_ed25519="$W/rds/client_key" --from-file=known_hosts="$W/rds/known_hosts" >>"$LOGS/apply.log" 2>&1 ||
  fail "creating the rds-ssh Secret" apply
"$TOOL" basestate --configmap "$EX/configmap.yaml" --controller "$EX/controller.yaml" --root "$CTL" \
  --ssh "127.0.0.1:$SIM_PORT" >"$W/configmap.yaml"
K apply -f "$W/configmap.yaml" >>"$LOGS/apply.log" 2>&1 || fail "applying the base-state ConfigMap" apply

step "lay out the controller pod from controller.yaml"
"$TOOL" pod --manifest "$EX/controller.yaml" --name rds-csi-controller --root "$CTL" --node "$NODE" >/dev/null
# shellcheck disable=SC1091
. "$CTL/pod/meta.env"
# shellcheck disable=SC1091
. "$CTL/pod/ports.env"
sed 's/^/  rewrite: /' "$CTL/pod/rewrites.log"
while IFS=$'\t' read -r vname vkind vsrc vmode vdir; do
  case $vkind in
    emptyDir | volumeClaimTemplate | persistentVolumeClaim) mkdir -p "$vdir" ;;
    configMap) K -n "$pod_namespace" get configmap "$vsrc" -o json | "$TOOL" project "$vdir" >/dev/null ||
      fail "projecting ConfigMap $vsrc into volume $vname" ;;
    secret) K -n "$pod_namespace" get secret "$vsrc" -o json | "$TOOL" project "$vdir" "$vmode" >/dev/null ||
      fail "projecting Secret $vsrc into volume $vname" ;;
    *) fail "volume $vname: a $vkind volume in the controller pod is not supported by the harness" ;;
  esac
done <"$CTL/pod/volumes.tsv"
K -n "$pod_namespace" create token "$pod_service_account" --duration 2h >"$W/kube/sa.token" ||
  fail "kubectl create token $pod_service_account"
SA_KUBECONFIG=$W/kube/$pod_service_account.kubeconfig
"$TOOL" kubeconfig --server "$SERVER" --ca "$W/pki/ca.crt" --token-file "$W/kube/sa.token" \
  --namespace "$pod_namespace" --out "$SA_KUBECONFIG"

step "start the controller pod's containers"
SIDECARS=()
DRIVER=""
SOCK=""
for c in $pod_containers; do
  mapfile -t args <"$CTL/pod/$c.args"
  mapfile -t envs <"$CTL/pod/$c.env"
  image=$(cat "$CTL/pod/$c.image")
  img=${image##*/}
  name=${img%%:*}
  tag=${img#*:}
  case $name in
    rds-reconcile)
      DRIVER=$c
      extra=()
      help=$("$RR" csi --help 2>&1 || true)
      case $help in
        *--kubeconfig*)
          case " ${args[*]}" in
            *" --kubeconfig"*) ;;
            *) extra=(--kubeconfig="$SA_KUBECONFIG") ;;
          esac
          ;;
      esac
      for a in "${args[@]}"; do
        case $a in --endpoint=unix://*) SOCK=${a#--endpoint=unix://} ;; esac
      done
      say "$c: rds-reconcile ${args[*]} ${extra[*]}"
      podstart "$c" env "${envs[@]}" KUBECONFIG="$SA_KUBECONFIG" "$RR" "${args[@]}" "${extra[@]}"
      ;;
    csi-provisioner | csi-attacher | csi-resizer | csi-snapshotter)
      case $name in
        csi-provisioner) want=$PROVISIONER_VERSION ;;
        csi-attacher) want=$ATTACHER_VERSION ;;
        csi-resizer) want=$RESIZER_VERSION ;;
        csi-snapshotter) want=$SNAPSHOTTER_VERSION ;;
      esac
      [ "$tag" = "$want" ] || fail "controller.yaml runs $image, but this harness builds and tests $name $want (k8s-e2e/versions.env)"
      SIDECARS+=("$c:$name")
      ;;
    livenessprobe) say "$c: $image is not run (not served by the Go module proxy); the driver's /healthz is checked instead" ;;
    *) fail "container $c runs $image, which the harness does not know" ;;
  esac
done
[ -n "$DRIVER" ] && [ -n "$SOCK" ] || fail "controller.yaml has no rds-reconcile container with a unix --endpoint"
# Where the driver keeps its CSI layer: a ConfigMap (--layer=configmap://NS/NAME)
# or <state-dir>/csi-volumes.yaml.
mapfile -t dargs <"$CTL/pod/$DRIVER.args"
LAYER_CM="" LAYER_FILE=""
for a in "${dargs[@]}"; do
  case $a in
    --layer=configmap://*) LAYER_CM=${a#--layer=configmap://} ;;
    --state-dir=*) LAYER_FILE=${a#--state-dir=}/csi-volumes.yaml ;;
  esac
done
if [ -n "$LAYER_CM" ]; then
  LAYER_DESC="ConfigMap $LAYER_CM"
  layer() { K -n "${LAYER_CM%%/*}" get configmap "${LAYER_CM#*/}" -o jsonpath='{.data.csi-volumes\.yaml}' 2>/dev/null || true; }
else
  LAYER_DESC=$LAYER_FILE
  layer() { cat "$LAYER_FILE" 2>/dev/null || true; }
fi
waitfor 60 "the driver serves its socket $SOCK" "$DRIVER" -- test -S "$SOCK"
alive "$DRIVER"
if [ -n "${port_metrics:-}" ]; then
  "$TOOL" wait-http --timeout 60s "http://127.0.0.1:$port_metrics/healthz" >/dev/null ||
    fail "the driver's /healthz is not OK" "$DRIVER" sim
fi
for s in "${SIDECARS[@]}"; do
  c=${s%%:*}
  name=${s#*:}
  mapfile -t args <"$CTL/pod/$c.args"
  mapfile -t envs <"$CTL/pod/$c.env"
  extra=(--kubeconfig="$SA_KUBECONFIG")
  case " ${args[*]} " in
    *" --leader-election "* | *" --leader-election=true "*)
      case " ${args[*]}" in
        *" --leader-election-namespace"*) ;;
        *) extra+=(--leader-election-namespace="$pod_namespace") ;;
      esac
      ;;
  esac
  say "$c: $name ${args[*]} ${extra[*]}"
  podstart "$c" env "${envs[@]}" "$BIN/$name" "${args[@]}" "${extra[@]}" --v=4
done
sleep 2
alive "$DRIVER" "${SIDECARS[@]%%:*}"

ALL_LOGS=("$DRIVER" "${SIDECARS[@]%%:*}" kube-controller-manager sim)
TEST_NS=k8s-e2e
K create namespace "$TEST_NS" >/dev/null
waitfor 60 "serviceaccount $TEST_NS/default exists" kube-controller-manager -- K -n "$TEST_NS" get serviceaccount default

pvc() { # pvc <name> <class> <size>
  cat <<EOF
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: $1, namespace: $TEST_NS}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: $2
  resources: {requests: {storage: $3}}
EOF
}
jp() { K get "$@" 2>/dev/null; }
# Predicates for waitfor: each call asks again (an argument like "$(jp ...)"
# would be read once, when waitfor is called).
no_pvs() { # none left, and kubectl answered
  local out
  out=$(K get pv -o name 2>/dev/null) || return 1
  [ -z "$out" ]
}
jp_is() { # jp_is <want> <kubectl get args...>
  local want=$1
  shift
  [ "$(jp "$@")" = "$want" ]
}

# ---------------------------------------------------------------------------
step "StorageClass from the examples, Immediate binding"
SC=$(K get -f "$EX/storageclass.yaml" -o jsonpath='{.metadata.name}')
"$TOOL" storageclass --manifest "$EX/storageclass.yaml" --name "$SC" --as "$SC-immediate" --binding Immediate >"$W/sc-immediate.yaml"
K apply -f "$W/sc-immediate.yaml" >/dev/null
SCI=$SC-immediate
want_ctrl=$(K get storageclass "$SC" -o jsonpath='{.parameters.ctrlLossTmo}')
want_reco=$(K get storageclass "$SC" -o jsonpath='{.parameters.reconnectDelay}')
want_kato=$(K get storageclass "$SC" -o jsonpath='{.parameters.keepAliveTmo}')
want_fs=$(K get storageclass "$SC" -o jsonpath='{.parameters.csi\.storage\.k8s\.io/fstype}')

step "PVC (Immediate) -> bound PV -> volume on the RDS with the class's timeouts"
pvc one "$SCI" 64Mi | K apply -f - >/dev/null
waitfor 120 "PVC one is Bound" csi-provisioner "$DRIVER" kube-controller-manager -- \
  jp_is Bound -n "$TEST_NS" pvc one -o jsonpath='{.status.phase}'
PV=$(jp -n "$TEST_NS" pvc one -o jsonpath='{.spec.volumeName}')
HANDLE=$(jp pv "$PV" -o jsonpath='{.spec.csi.volumeHandle}')
[ "$(jp pv "$PV" -o jsonpath='{.spec.csi.driver}')" = rds.csi.rds-reconcile.io ] || fail "PV $PV has another driver" csi-provisioner
[ "$HANDLE" = "$PV" ] || fail "volume handle $HANDLE is not the PV name $PV (Kubernetes names are kept)" "$DRIVER"
for kv in "ctrlLossTmo=$want_ctrl" "reconnectDelay=$want_reco" "keepAliveTmo=$want_kato"; do
  k=${kv%%=*}
  got=$(jp pv "$PV" -o jsonpath="{.spec.csi.volumeAttributes.$k}")
  [ "$got" = "${kv#*=}" ] || fail "PV $PV volume context $k=$got, want the class's ${kv#*=}" "$DRIVER"
done
[ "$(jp pv "$PV" -o jsonpath='{.spec.csi.fsType}')" = "$want_fs" ] || fail "PV $PV fsType is not the class's $want_fs" csi-provisioner
grep -q "^disk $HANDLE storage-pool/volumes/$HANDLE.img 67108864 export=yes " <<<"$(rds)" ||
  fail "no exported 64 MiB disk $HANDLE on the RDS: $(rds)" "$DRIVER" sim
# The driver's CSI layer holds the class's timeouts for the volume.
entry=$(grep -A12 "name: $HANDLE" <<<"$(layer)" || true)
grep -q "ctrlLossTmo: $want_ctrl" <<<"$entry" ||
  fail "the CSI layer ($LAYER_DESC) lacks ctrlLossTmo $want_ctrl for $HANDLE: $(layer)" "$DRIVER"
say "PV $PV bound; RDS: $(grep "$HANDLE" <<<"$(rds)" | tr '\n' ' ')"

step "the shipped WaitForFirstConsumer class: waits, then binds on the selected node"
pvc wffc "$SC" 32Mi | K apply -f - >/dev/null
sleep 3
[ "$(jp -n "$TEST_NS" pvc wffc -o jsonpath='{.status.phase}')" = Pending ] || fail "PVC wffc was bound before a consumer" kube-controller-manager
# The node's registration: node-driver-registrar asks the node plugin
# NodeGetInfo and the kubelet writes the answer into the CSINode. No kubelet
# here, so the harness asks our node plugin (simulated host: no NVMe is
# touched) and writes the CSINode itself. The node id carries the host NQN,
# so the node needs no hosts: entry in the base state.
start node-plugin "$RR" --fabric "sim:$W/node/host" --log-format json csi --mode node --node-id "$NODE" \
  --endpoint "unix://$W/node/csi.sock" --state-dir "$W/node/state" --kubelet-dir "$W/node/kubelet"
waitfor 60 "the node plugin serves its socket" node-plugin -- test -S "$W/node/csi.sock"
NODE_ID=$("$TOOL" nodeinfo "unix://$W/node/csi.sock") || fail "NodeGetInfo" node-plugin
say "node id (NodeGetInfo): $NODE_ID"
cat <<EOF | K apply -f - >/dev/null
apiVersion: v1
kind: Node
metadata:
  name: $NODE
  annotations:
    # Set by a kubelet started with --enable-controller-attach-detach: the
    # attach-detach controller attaches volumes for this node.
    volumes.kubernetes.io/controller-managed-attach-detach: "true"
---
# What node-driver-registrar makes the kubelet write: the driver and its node id.
apiVersion: storage.k8s.io/v1
kind: CSINode
metadata: {name: $NODE}
spec:
  drivers:
    - name: rds.csi.rds-reconcile.io
      nodeID: "$NODE_ID"
      topologyKeys: null
EOF
# What kube-scheduler does for the pod that uses the claim:
K -n "$TEST_NS" annotate pvc wffc "volume.kubernetes.io/selected-node=$NODE" >/dev/null
waitfor 120 "PVC wffc is Bound" csi-provisioner "$DRIVER" -- \
  jp_is Bound -n "$TEST_NS" pvc wffc -o jsonpath='{.status.phase}'
WFFC_PV=$(jp -n "$TEST_NS" pvc wffc -o jsonpath='{.spec.volumeName}')
grep -q "^disk $WFFC_PV " <<<"$(rds)" || fail "no disk $WFFC_PV on the RDS" "$DRIVER"

step "Node + Pod on it -> attach-detach controller -> VolumeAttachment -> ControllerPublish -> attached"
cat <<EOF | K apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: app, namespace: $TEST_NS}
spec:
  nodeName: $NODE
  containers:
    - name: app
      image: registry.invalid/never-pulled:v0 # no kubelet runs it
      volumeMounts: [{name: data, mountPath: /data}]
  volumes:
    - name: data
      persistentVolumeClaim: {claimName: one}
EOF
has_va() { [ -n "$(va_of "$1")" ]; }
va_of() { jp volumeattachments -o jsonpath="{range .items[?(@.spec.source.persistentVolumeName==\"$1\")]}{.metadata.name}{end}"; }
waitfor 120 "the attach-detach controller made a VolumeAttachment for $PV" kube-controller-manager -- has_va "$PV"
VA=$(va_of "$PV")
[ "$(jp volumeattachment "$VA" -o jsonpath='{.spec.nodeName}')" = "$NODE" ] || fail "VolumeAttachment $VA is for another node" kube-controller-manager
waitfor 120 "VolumeAttachment $VA attached=true" csi-attacher "$DRIVER" -- \
  jp_is true volumeattachment "$VA" -o jsonpath='{.status.attached}'
grep -q 'ControllerPublishVolume' "$LOGS/$DRIVER.log" || fail "the driver logged no ControllerPublishVolume" "$DRIVER"
entry=$(grep -A20 "name: $HANDLE" <<<"$(layer)" || true)
grep -q -- "$NODE" <<<"$entry" ||
  fail "the CSI layer ($LAYER_DESC) does not record $HANDLE attached to $NODE: $(layer)" "$DRIVER"
grep -q -- "${NODE_ID#*@}" <<<"$(layer)" ||
  fail "the CSI layer ($LAYER_DESC) did not learn $NODE's host NQN from its node id: $(layer)" "$DRIVER"
waitfor 60 "node $NODE lists the volume in status.volumesAttached" kube-controller-manager -- \
  sh -c "'$BIN/kubectl' get node '$NODE' -o jsonpath='{.status.volumesAttached[*].name}' | grep -q '$HANDLE'"
say "VolumeAttachment $VA attached to $NODE"

step "PVC resize -> ControllerExpandVolume -> larger disk on the RDS"
K -n "$TEST_NS" patch pvc one --type merge -p '{"spec":{"resources":{"requests":{"storage":"128Mi"}}}}' >/dev/null
waitfor 120 "PV $PV capacity 128Mi" csi-resizer "$DRIVER" -- jp_is 128Mi pv "$PV" -o jsonpath='{.spec.capacity.storage}'
grep -q "^disk $HANDLE storage-pool/volumes/$HANDLE.img 134217728 " <<<"$(rds)" || fail "disk $HANDLE is not 128 MiB on the RDS: $(rds)" "$DRIVER" sim
grep -q 'ControllerExpandVolume' "$LOGS/$DRIVER.log" || fail "the driver logged no ControllerExpandVolume" "$DRIVER"
# The node finishes a filesystem resize; there is no kubelet here, so the PVC
# waits for it (and says so).
cond=$(jp -n "$TEST_NS" pvc one -o jsonpath='{.status.conditions[*].type}')
say "disk grown to 128 MiB; PVC conditions: ${cond:-none}"

step "delete the Pod and the PVC -> detach, DeleteVolume, disk and file gone"
K -n "$TEST_NS" delete pod app --grace-period=0 --force >/dev/null 2>&1
waitfor 180 "VolumeAttachment $VA is gone (detached)" kube-controller-manager csi-attacher "$DRIVER" -- \
  sh -c "! '$BIN/kubectl' get volumeattachment '$VA'"
grep -q 'ControllerUnpublishVolume' "$LOGS/$DRIVER.log" || fail "the driver logged no ControllerUnpublishVolume" "$DRIVER"
K -n "$TEST_NS" delete pvc one --wait=false >/dev/null
waitfor 120 "PV $PV is deleted" csi-provisioner "$DRIVER" kube-controller-manager -- sh -c "! '$BIN/kubectl' get pv '$PV'"
grep -q "$HANDLE" <<<"$(rds)" && fail "the RDS still holds $HANDLE: $(rds | grep "$HANDLE")" "$DRIVER" sim
grep -q 'DeleteVolume' "$LOGS/$DRIVER.log" || fail "the driver logged no DeleteVolume" "$DRIVER"
K -n "$TEST_NS" delete pvc wffc --wait=false >/dev/null
waitfor 120 "PV $WFFC_PV is deleted" csi-provisioner "$DRIVER" -- sh -c "! '$BIN/kubectl' get pv '$WFFC_PV'"
[ -z "$(rds)" ] || fail "the RDS is not empty: $(rds)" "$DRIVER" sim

# ---------------------------------------------------------------------------
# Snapshots: the VolumeSnapshot API (CRDs, snapshot-controller) and
# csi-snapshotter drive CreateSnapshot/DeleteSnapshot, and csi-provisioner
# CreateVolume with a content source. What a disk holds is checked by its
# bytes: the simulator keeps each disk as a file (--backend files), and the
# harness writes into the source volume's file what a node would write.
SNAPC=""
for s in "${SIDECARS[@]}"; do
  [ "${s#*:}" = csi-snapshotter ] && SNAPC=${s%%:*}
done
[ -n "$SNAPC" ] || fail "controller.yaml runs no csi-snapshotter container: VolumeSnapshots of this driver would never be made"
VSCLASS=$(K get -f "$EX/volumesnapshotclass.yaml" -o jsonpath='{.metadata.name}')
SNAP_LOGS=("$SNAPC" snapshot-controller "$DRIVER" sim)
diskfile() { # diskfile <slot>: the disk's file on the simulator's side
  local p
  p=$(rds | awk -v s="$1" '$1 == "disk" && $2 == s {print $3}')
  [ -n "$p" ] && echo "$W/rds/files/$p"
}
mark() { # mark <file> <offset> <text>: writes text into the disk image in place
  printf '%s' "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
holds() { # holds <file> <offset> <text>
  [ "$(dd if="$1" bs=1 skip="$2" count="${#3}" status=none | tr -d '\0')" = "$3" ]
}
# copied_from <source slot> <new slot>: the simulator ran a copy-from of the
# source's disk into the new slot (its command log, quotes dropped: the
# values are quoted in the command and escaped again in the JSON log).
copied_from() {
  local lines # no grep -q in a pipe: under pipefail its early exit fails the writer
  lines=$(grep '"sim command"' "$LOGS/sim.log" | tr -d '\\"' | grep -F "copy-from=[find slot=$1]" || true)
  grep -Eq "slot=$2([ ,]|\$)" <<<"$lines"
}
# layer_item <name>: the lines of the CSI layer's list item (volume or
# snapshot) named <name>, however many fields it has.
layer_item() {
  layer | awk -v n="$1" '
    inside { m = match($0, /[^ ]/); if (m && m <= col) inside = 0 }
    !inside && $0 ~ ("^ *- name: " n "$") { inside = 1; col = index($0, "-"); print; next }
    inside { print }'
}
# The harness's own markers: one before the snapshot, one after it.
MARK1="k8s-e2e before the snapshot $(date +%s%N)"
MARK2="k8s-e2e after the snapshot $(date +%s%N)"
OFF1=1048576 OFF2=2097152

step "VolumeSnapshot of a bound PVC -> snapshot-controller and csi-snapshotter -> CreateSnapshot -> readyToUse, a snapshot disk on the RDS"
pvc src "$SCI" 64Mi | K apply -f - >/dev/null
waitfor 120 "PVC src is Bound" csi-provisioner "$DRIVER" -- jp_is Bound -n "$TEST_NS" pvc src -o jsonpath='{.status.phase}'
SRC_PV=$(jp -n "$TEST_NS" pvc src -o jsonpath='{.spec.volumeName}')
SRC_FILE=$(diskfile "$SRC_PV") || fail "no disk $SRC_PV on the RDS: $(rds)" "$DRIVER" sim
mark "$SRC_FILE" $OFF1 "$MARK1"
cat <<EOF | K apply -f - >/dev/null
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata: {name: snap, namespace: $TEST_NS}
spec:
  volumeSnapshotClassName: $VSCLASS
  source: {persistentVolumeClaimName: src}
EOF
waitfor 120 "VolumeSnapshot snap readyToUse" "${SNAP_LOGS[@]}" -- \
  jp_is true -n "$TEST_NS" volumesnapshot snap -o jsonpath='{.status.readyToUse}'
VSC=$(jp -n "$TEST_NS" volumesnapshot snap -o jsonpath='{.status.boundVolumeSnapshotContentName}')
[ -n "$VSC" ] || fail "VolumeSnapshot snap is ready but names no VolumeSnapshotContent" snapshot-controller
SNAP_ID=$(jp volumesnapshotcontent "$VSC" -o jsonpath='{.status.snapshotHandle}')
[ -n "$SNAP_ID" ] || fail "VolumeSnapshotContent $VSC has no snapshotHandle" "$SNAPC" "$DRIVER"
[ "$(jp volumesnapshotcontent "$VSC" -o jsonpath='{.spec.driver}')" = rds.csi.rds-reconcile.io ] ||
  fail "VolumeSnapshotContent $VSC is for another driver" snapshot-controller
[ "$(jp volumesnapshotcontent "$VSC" -o jsonpath='{.spec.source.volumeHandle}')" = "$SRC_PV" ] ||
  fail "VolumeSnapshotContent $VSC is not of volume $SRC_PV" snapshot-controller
[ "$(jp volumesnapshotcontent "$VSC" -o jsonpath='{.spec.deletionPolicy}')" = Delete ] ||
  fail "VolumeSnapshotContent $VSC does not have the class's deletionPolicy Delete" snapshot-controller
[ "$(jp -n "$TEST_NS" volumesnapshot snap -o jsonpath='{.status.restoreSize}')" = 64Mi ] ||
  fail "VolumeSnapshot snap restoreSize $(jp -n "$TEST_NS" volumesnapshot snap -o jsonpath='{.status.restoreSize}'), want the volume's 64Mi" "$SNAPC" "$DRIVER"
case $SNAP_ID in
  *snap-*) ;;
  *) fail "snapshot handle $SNAP_ID is not in the snapshots' name space (<slotPrefix>snap-)" "$DRIVER" ;;
esac
grep -q "^disk $SNAP_ID [^ ]* 67108864 export=no " <<<"$(rds)" ||
  fail "no unexported 64 MiB disk $SNAP_ID on the RDS for VolumeSnapshotContent $VSC: $(rds)" "$DRIVER" sim
copied_from "$SRC_PV" "$SNAP_ID" || fail "the simulator ran no copy-from of $SRC_PV into $SNAP_ID" "$DRIVER" sim
SNAP_FILE=$(diskfile "$SNAP_ID")
holds "$SNAP_FILE" $OFF1 "$MARK1" || fail "the snapshot's file $SNAP_FILE lacks what the volume held when it was taken" sim
grep -q 'CreateSnapshot' "$LOGS/$DRIVER.log" || fail "the driver logged no CreateSnapshot" "$DRIVER"
entry=$(layer_item "$SNAP_ID")
grep -q "volume: $SRC_PV" <<<"$entry" ||
  fail "the CSI layer ($LAYER_DESC) lacks snapshot $SNAP_ID of volume $SRC_PV: $(layer)" "$DRIVER"
# The volume changes after the snapshot; a restore must not see it.
mark "$SRC_FILE" $OFF2 "$MARK2"
say "VolumeSnapshot snap ready: content $VSC, snapshot $SNAP_ID on the RDS"

step "PVC from the VolumeSnapshot (128Mi, larger) -> CreateVolume from the snapshot -> Bound, its disk a copy of the snapshot"
cat <<EOF | K apply -f - >/dev/null
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: restored, namespace: $TEST_NS}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: $SCI
  resources: {requests: {storage: 128Mi}}
  dataSource: {apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: snap}
EOF
waitfor 120 "PVC restored is Bound" csi-provisioner "${SNAP_LOGS[@]}" -- \
  jp_is Bound -n "$TEST_NS" pvc restored -o jsonpath='{.status.phase}'
R_PV=$(jp -n "$TEST_NS" pvc restored -o jsonpath='{.spec.volumeName}')
grep -q "^disk $R_PV storage-pool/volumes/$R_PV.img 134217728 export=yes " <<<"$(rds)" ||
  fail "no exported 128 MiB disk $R_PV on the RDS: $(rds)" "$DRIVER" sim
copied_from "$SNAP_ID" "$R_PV" || fail "the simulator ran no copy-from of snapshot $SNAP_ID into $R_PV" "$DRIVER" sim
R_FILE=$(diskfile "$R_PV")
holds "$R_FILE" $OFF1 "$MARK1" || fail "the restored disk $R_PV lacks what the volume held at the snapshot" sim
holds "$R_FILE" $OFF2 "$MARK2" && fail "the restored disk $R_PV holds what was written after the snapshot" sim
entry=$(layer_item "$R_PV")
grep -q "snapshot: $SNAP_ID" <<<"$entry" ||
  fail "the CSI layer ($LAYER_DESC) does not record $R_PV's source snapshot $SNAP_ID: $(layer)" "$DRIVER"
say "PVC restored bound to $R_PV, copied from $SNAP_ID"

step "PVC cloned from the PVC (dataSource PersistentVolumeClaim) -> CreateVolume from the volume -> Bound, its disk a copy of the volume now"
cat <<EOF | K apply -f - >/dev/null
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: clone, namespace: $TEST_NS}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: $SCI
  resources: {requests: {storage: 64Mi}}
  dataSource: {kind: PersistentVolumeClaim, name: src}
EOF
waitfor 120 "PVC clone is Bound" csi-provisioner "$DRIVER" sim -- jp_is Bound -n "$TEST_NS" pvc clone -o jsonpath='{.status.phase}'
C_PV=$(jp -n "$TEST_NS" pvc clone -o jsonpath='{.spec.volumeName}')
grep -q "^disk $C_PV storage-pool/volumes/$C_PV.img 67108864 export=yes " <<<"$(rds)" ||
  fail "no exported 64 MiB disk $C_PV on the RDS: $(rds)" "$DRIVER" sim
copied_from "$SRC_PV" "$C_PV" || fail "the simulator ran no copy-from of $SRC_PV into $C_PV" "$DRIVER" sim
C_FILE=$(diskfile "$C_PV")
holds "$C_FILE" $OFF2 "$MARK2" || fail "the clone $C_PV lacks what its source held when cloned" sim
entry=$(layer_item "$C_PV")
grep -q "volume: $SRC_PV" <<<"$entry" ||
  fail "the CSI layer ($LAYER_DESC) does not record $C_PV's source volume $SRC_PV: $(layer)" "$DRIVER"
say "PVC clone bound to $C_PV, copied from $SRC_PV"

step "delete the restored PVC, the clone, then the VolumeSnapshot (Delete) -> DeleteVolume, DeleteSnapshot, the snapshot gone from the RDS and the layer"
K -n "$TEST_NS" delete pvc restored clone --wait=false >/dev/null
waitfor 120 "PVs $R_PV and $C_PV are deleted" csi-provisioner "$DRIVER" -- \
  sh -c "! '$BIN/kubectl' get pv '$R_PV' && ! '$BIN/kubectl' get pv '$C_PV'"
grep -q -e "$R_PV" -e "$C_PV" <<<"$(rds)" && fail "the RDS still holds $R_PV or $C_PV: $(rds)" "$DRIVER" sim
K -n "$TEST_NS" delete volumesnapshot snap --wait=false >/dev/null
waitfor 120 "VolumeSnapshotContent $VSC is deleted" "${SNAP_LOGS[@]}" -- sh -c "! '$BIN/kubectl' get volumesnapshotcontent '$VSC'"
waitfor 60 "VolumeSnapshot snap is deleted" snapshot-controller -- sh -c "! '$BIN/kubectl' -n '$TEST_NS' get volumesnapshot snap"
grep -q 'DeleteSnapshot' "$LOGS/$DRIVER.log" || fail "the driver logged no DeleteSnapshot" "$DRIVER"
grep -q "$SNAP_ID" <<<"$(rds)" && fail "the RDS still holds snapshot $SNAP_ID: $(rds | grep "$SNAP_ID")" "$DRIVER" sim
grep -q "$SNAP_ID" <<<"$(layer)" && fail "the CSI layer ($LAYER_DESC) still names snapshot $SNAP_ID: $(layer)" "$DRIVER"
K -n "$TEST_NS" delete pvc src --wait=false >/dev/null
waitfor 120 "PV $SRC_PV is deleted" csi-provisioner "$DRIVER" -- sh -c "! '$BIN/kubectl' get pv '$SRC_PV'"
waitfor 30 "the RDS empty" "$DRIVER" sim -- rds_empty
say "snapshot $SNAP_ID and the volumes made from it are gone from the RDS and the layer"

N=${K8S_E2E_PVCS:-20}
step "$N PVCs at once -> all bound, none lost, no duplicates on the RDS"
for i in $(seq -w 1 "$N"); do
  pvc "many-$i" "$SCI" 16Mi
  echo ---
done >"$W/many.yaml"
K apply -f "$W/many.yaml" >/dev/null
bound() { [ "$(jp -n "$TEST_NS" pvc -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -c '^Bound$')" = "$N" ]; }
waitfor 300 "all $N PVCs Bound" csi-provisioner "$DRIVER" sim -- bound
jp -n "$TEST_NS" pvc -o jsonpath='{range .items[*]}{.spec.volumeName}{"\n"}{end}' | sort >"$W/many.pvs"
jp pv -o jsonpath='{range .items[*]}{.spec.csi.volumeHandle}{"\n"}{end}' | sort >"$W/many.handles"
rds | awk '$1 == "disk" {print $2}' | sort >"$W/many.disks"
[ "$(sort -u "$W/many.pvs" | wc -l)" = "$N" ] || fail "$N PVCs bound to $(sort -u "$W/many.pvs" | wc -l) distinct PVs"
cmp -s "$W/many.pvs" "$W/many.handles" || fail "PVs and volume handles differ: $(diff "$W/many.pvs" "$W/many.handles" | head)"
cmp -s "$W/many.handles" "$W/many.disks" ||
  fail "the RDS disks are not exactly the PVs (lost or duplicated): $(diff "$W/many.handles" "$W/many.disks" | head)" "$DRIVER" sim
[ "$(rds | grep -c '^file ')" = "$N" ] || fail "the RDS holds $(rds | grep -c '^file ') files for $N volumes: $(rds)" "$DRIVER" sim
grep -o 'name: pvc-[0-9a-f-]*' <<<"$(layer)" | sed 's/name: //' | sort >"$W/many.layer"
cmp -s "$W/many.handles" "$W/many.layer" ||
  fail "the CSI layer ($LAYER_DESC) does not hold exactly the PVs: $(diff "$W/many.handles" "$W/many.layer" | head)" "$DRIVER"
say "$N PVCs bound to $N PVs, $N disks on the RDS and $N volumes in the CSI layer, one each"
K -n "$TEST_NS" delete pvc --all --wait=false >/dev/null
waitfor 300 "every PV deleted" csi-provisioner "$DRIVER" -- no_pvs
waitfor 30 "the RDS empty" "$DRIVER" sim -- rds_empty

# delete_pod: the controller pod's containers killed at once (SIGKILL, as a
# node lost or a pod deleted without grace) and its emptyDir volumes emptied:
# the next pod starts with nothing on its own filesystem.
delete_pod() {
  local i c
  for c in "$DRIVER" "${SIDECARS[@]%%:*}"; do
    for i in "${!NAMES[@]}"; do
      if [ "${NAMES[$i]}" = "$c" ]; then
        kill -KILL "${PIDS[$i]}" 2>/dev/null
        wait "${PIDS[$i]}" 2>/dev/null || true # 137: killed, as meant
        NAMES[i]="$c (deleted pod)"
      fi
    done
  done
  while IFS=$'\t' read -r _ vkind _ _ vdir; do
    if [ "$vkind" = emptyDir ]; then
      rm -rf "$vdir" && mkdir -p "$vdir"
    fi
  done <"$CTL/pod/volumes.tsv"
}

# recreate_pod: the same containers again, driver first (its socket), then
# the sidecars, which must win their leader elections back.
recreate_pod() {
  local c
  start "$DRIVER" bash "$W/pod-cmd/$DRIVER.sh"
  waitfor 60 "the new pod's driver serves $SOCK" "$DRIVER" -- test -S "$SOCK"
  for c in "${SIDECARS[@]%%:*}"; do
    start "$c" bash "$W/pod-cmd/$c.sh"
  done
}

step "the controller pod deleted mid-way through $N PVCs (SIGKILL, emptyDirs emptied), a new one started: none lost or duplicated"
for i in $(seq -w 1 "$N"); do
  pvc "again-$i" "$SCI" 16Mi
  echo ---
done >"$W/again.yaml"
K apply -f "$W/again.yaml" >/dev/null
again_bound() { jp -n "$TEST_NS" pvc -o jsonpath='{range .items[*]}{.metadata.name} {.status.phase}{"\n"}{end}' | grep -c '^again-.* Bound$'; }
some_bound() { [ "$(again_bound)" -ge 1 ]; }
all_bound() { [ "$(again_bound)" = "$N" ]; }
waitfor 120 "the first of the $N PVCs Bound" csi-provisioner "$DRIVER" sim -- some_bound
delete_pod
say "pod deleted with $(again_bound) of $N PVCs Bound and $(rds | grep -c '^disk ') disks on the RDS"
recreate_pod
waitfor 300 "all $N PVCs Bound after the new pod started" csi-provisioner "$DRIVER" sim -- all_bound
jp -n "$TEST_NS" pvc -o jsonpath='{range .items[*]}{.spec.volumeName}{"\n"}{end}' | sort >"$W/again.pvs"
jp pv -o jsonpath='{range .items[*]}{.spec.csi.volumeHandle}{"\n"}{end}' | sort >"$W/again.handles"
rds | awk '$1 == "disk" {print $2}' | sort >"$W/again.disks"
[ "$(sort -u "$W/again.pvs" | wc -l)" = "$N" ] || fail "$N PVCs bound to $(sort -u "$W/again.pvs" | wc -l) distinct PVs"
cmp -s "$W/again.pvs" "$W/again.handles" || fail "PVs and volume handles differ: $(diff "$W/again.pvs" "$W/again.handles" | head)"
cmp -s "$W/again.handles" "$W/again.disks" ||
  fail "after the pod was deleted, the RDS disks are not exactly the PVs (lost or duplicated): $(diff "$W/again.handles" "$W/again.disks" | head)" "$DRIVER" sim
grep -o 'name: pvc-[0-9a-f-]*' <<<"$(layer)" | sed 's/name: //' | sort >"$W/again.layer"
cmp -s "$W/again.handles" "$W/again.layer" ||
  fail "after the pod was deleted, the CSI layer ($LAYER_DESC) does not hold exactly the PVs: $(diff "$W/again.handles" "$W/again.layer" | head)" "$DRIVER"
say "$N PVCs bound to $N PVs, $N disks on the RDS and $N volumes in the CSI layer after the pod was deleted and recreated"
K -n "$TEST_NS" delete pvc --all --wait=false >/dev/null
waitfor 300 "every PV deleted" csi-provisioner "$DRIVER" -- no_pvs
waitfor 30 "the RDS empty" "$DRIVER" sim -- rds_empty

step "no errors the flows hid"
alive "$DRIVER" "${SIDECARS[@]%%:*}" kube-controller-manager snapshot-controller kube-apiserver etcd sim
if grep -i -h 'forbidden' "$LOGS"/csi-*.log "$LOGS/$DRIVER.log" >/dev/null 2>&1; then
  fail "a sidecar or the driver was refused by RBAC" "${SIDECARS[@]%%:*}"
fi
if grep -h 'panic' "$LOGS/$DRIVER.log" >/dev/null 2>&1; then
  fail "the driver panicked" "$DRIVER"
fi
# Calls that failed and were retried: reported, not fatal (a retry is the
# sidecars' normal way), but listed so a new pattern is seen.
errs=$(grep -c '"level":"ERROR"\|level=ERROR' "$LOGS/$DRIVER.log" || true)
say "driver calls that ended in an error (retried by the sidecars): $errs"

OK=1
say "PASS in $(($(date +%s) - T0)) s"
