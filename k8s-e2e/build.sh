#!/usr/bin/env bash
# Builds the Kubernetes parts `make k8s-e2e` runs, from the Go module proxy, into a
# cache outside the repository:
#   etcd, kube-apiserver, kube-controller-manager, kubectl   (one scratch module)
#   csi-provisioner, csi-attacher, csi-resizer                (one scratch module each)
#   csi-snapshotter, snapshot-controller                      (one scratch module)
# There is no container registry here, so nothing is pulled as an image.
#
# Why scratch modules: k8s.io/kubernetes replaces its 31 staging modules with
# ./staging/... paths, which a dependant cannot see, so `go install ...@v` is
# refused; our own go.mod repeats them as `replace k8s.io/X => k8s.io/X v0.<minor>.<patch>`.
# The sidecars likewise carry non-local replaces that only apply in the main module,
# so each gets a module that copies them. etcd's server is built in the Kubernetes
# module: Kubernetes requires exactly the etcd version we want, and one `go build`
# of all four commands compiles the packages they share (grpc, protobuf, the
# apimachinery stack) once.
#
# Idempotent: a part whose binary is in the cache is skipped, so a warm run costs
# nothing. The cache directory is named after every version, so a new or bumped
# part makes a new directory; the parts whose versions did not change are then
# hard-linked from the directory that has them (reuse below), not rebuilt. Concurrent runs (CI starts one in the background, run.sh asks again)
# serialise on a lock in the cache directory.
#
# Environment:
#   K8S_E2E_CACHE  cache root   (default ~/.cache/rds-reconcile-k8s)
#   K8S_E2E_BIN    binary dir   (default $K8S_E2E_CACHE/<version key>/bin)
# Prints the binary directory on stdout when done; progress and timings go to stderr
# and to <version key>/timings.txt.
set -euo pipefail

# shellcheck source=k8s-e2e/versions.env
. "$(dirname "$0")/versions.env"

key="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_provisioner-${PROVISIONER_VERSION}_attacher-${ATTACHER_VERSION}_resizer-${RESIZER_VERSION}_snapshotter-${SNAPSHOTTER_VERSION}"
cache="${K8S_E2E_CACHE:-$HOME/.cache/rds-reconcile-k8s}"
root="$cache/$key"
bin="${K8S_E2E_BIN:-$root/bin}"
src="$root/src"
mkdir -p "$bin" "$src"

log() { echo "k8s-build: $*" >&2; }

exec 9>"$root/.lock"
flock 9

# The scratch modules are ours: -mod=mod lets go fill go.sum; no vendoring, no
# toolchain download (the sidecars need go >= 1.26.0, which we have).
export GOFLAGS="-mod=mod -buildvcs=false"
export GOTOOLCHAIN=local
export CGO_ENABLED=0

timed() { # timed <name> <cmd...>: run, record wall seconds in timings.txt
  local name=$1 t0 t1
  shift
  t0=$(date +%s)
  "$@"
  t1=$(date +%s)
  log "$name: $((t1 - t0)) s"
  echo "$(date -u +%FT%TZ) $name $((t1 - t0))s cold" >>"$root/timings.txt"
}

have() { # have <binary...>: all present and executable
  local b
  for b in "$@"; do [ -x "$bin/$b" ] || return 1; done
}

# reuse <token...> -- <binary...>: the part's binaries from another version
# directory of the cache whose name has every token (the part's own versions,
# e.g. provisioner-v5.3.0), hard-linked (or copied) into bin. A cold build of a
# part costs 10 to 60 minutes here; one that only moved directory is not redone.
# Binaries land in a bin directory by rename after a whole build, so one seen
# there is complete.
reuse() {
  local toks=() d k t b ok
  while [ "$1" != -- ]; do
    toks+=("$1")
    shift
  done
  shift
  for d in "$cache"/k8s-*/; do
    d=${d%/}
    k=${d##*/}
    [ "$k" != "$key" ] || continue
    ok=1
    for t in "${toks[@]}"; do
      case "_${k}_" in *"_${t}_"*) ;; *) ok=0 ;; esac
    done
    for b in "$@"; do [ -x "$d/bin/$b" ] || ok=0; done
    [ "$ok" = 1 ] || continue
    for b in "$@"; do
      ln -f "$d/bin/$b" "$bin/$b" 2>/dev/null || cp -p "$d/bin/$b" "$bin/$b"
    done
    log "$*: reused from $k"
    echo "$(date -u +%FT%TZ) $* reused from $k" >>"$root/timings.txt"
    return 0
  done
  return 1
}

k8s_part() {
  local dir="$src/kubernetes" minor="${K8S_VERSION#v1.}"
  local staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go
    cloud-provider cluster-bootstrap code-generator component-base component-helpers
    controller-manager cri-api cri-client csi-translation-lib dynamic-resource-allocation
    endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy
    kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission
    sample-apiserver sample-cli-plugin sample-controller)
  mkdir -p "$dir"
  {
    echo "module rds-reconcile.invalid/k8s-e2e/kubernetes"
    echo
    echo "go 1.24.0"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    local m
    for m in "${staging[@]}"; do echo "replace k8s.io/$m => k8s.io/$m v0.$minor"; done
  } >"$dir/go.mod"
  # Check that every staging module Kubernetes replaces locally is in our list: a new
  # one in another version would otherwise fail far down the build.
  local want
  want=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  local missing
  missing=$(sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p' "$want" | while read -r m; do
    grep -q "^replace $m " "$dir/go.mod" || echo "$m"
  done)
  if [ -n "$missing" ]; then
    log "k8s.io/kubernetes $K8S_VERSION replaces staging modules this script does not: $missing"
    exit 1
  fi
  local cmds=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
    k8s.io/kubernetes/cmd/kubectl go.etcd.io/etcd/server/v3)
  (cd "$dir" && go get -tool "${cmds[0]}@$K8S_VERSION" "${cmds[1]}@$K8S_VERSION" "${cmds[2]}@$K8S_VERSION" "${cmds[3]}@$ETCD_VERSION")
  # etcd must be the version Kubernetes was released with; go get must not have
  # moved it (or Kubernetes) to satisfy the other.
  local got
  got=$(cd "$dir" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3 k8s.io/kubernetes | tr '\n' ' ')
  if [ "$got" != "$ETCD_VERSION $K8S_VERSION " ]; then
    log "version drift in the Kubernetes module: got etcd/kubernetes $got"
    exit 1
  fi
  local date x ld=""
  date=$(date -u +%FT%TZ)
  local major=1 kminor=${minor%%.*}
  for x in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $x.gitVersion=$K8S_VERSION -X $x.gitMajor=$major -X $x.gitMinor=$kminor"
    ld+=" -X $x.gitTreeState=clean -X $x.buildDate=$date"
  done
  ld+=" -X go.etcd.io/etcd/api/v3/version.GitSHA=${ETCD_VERSION}"
  local out="$dir/out"
  rm -rf "$out" && mkdir -p "$out"
  (cd "$dir" && go build -trimpath -ldflags "-s -w$ld" -o "$out/" "${cmds[@]}")
  # go names etcd's binary after its package directory (server/v3 -> server).
  mv "$out/server" "$bin/etcd"
  mv "$out/kube-apiserver" "$out/kube-controller-manager" "$out/kubectl" "$bin/"
}

# scratch_module <dir> <name> <module> <version>: a module requiring the sidecar,
# with the sidecar's non-local replace lines (both the one-line and the block
# form) copied: they pin the k8s.io modules it was released with and apply only
# in the main module. Prints the path of the sidecar's own go.mod.
scratch_module() {
  local dir=$1 name=$2 mod=$3 ver=$4
  mkdir -p "$dir"
  {
    echo "module rds-reconcile.invalid/k8s-e2e/$name"
    echo
    echo "go 1.26.0"
    echo
    echo "require $mod $ver"
  } >"$dir/go.mod"
  local gomod
  gomod=$(cd "$dir" && go mod download -json "$mod@$ver" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  awk '
    { sub(/[[:space:]]*\/\/.*$/, "") }
    /^replace[[:space:]]*\($/ { block = 1; next }
    block && /^\)/ { block = 0; next }
    block { line = $0 }
    !block && /^replace[[:space:]]/ { line = $0; sub(/^replace[[:space:]]+/, "", line) }
    line ~ /=>/ {
      sub(/^[[:space:]]+/, "", line)
      n = split(line, f, /[[:space:]]+/)
      # f: old [oldver] => new [newver]; keep only module => module version
      for (i = 1; i <= n; i++) if (f[i] == "=>") break
      target = f[i + 1]
      if (target !~ /^\.|^\//) print "replace " line
    }
    { line = "" }' "$gomod" >>"$dir/go.mod"
  echo "$gomod"
}

sidecar_part() { # sidecar_part <binary> <module> <version>
  local name=$1 mod=$2 ver=$3 dir="$src/$1"
  scratch_module "$dir" "$name" "$mod" "$ver" >/dev/null
  (cd "$dir" && go get -tool "$mod/cmd/$name@$ver")
  rm -rf "$dir/out" && mkdir -p "$dir/out"
  (cd "$dir" && go build -trimpath -ldflags "-s -w -X main.version=$ver" -o "$dir/out/$name" "$mod/cmd/$name")
  mv "$dir/out/$name" "$bin/$name"
}

# csi-snapshotter and snapshot-controller: one module, one go build (they share
# the client and the controller libraries). The sidecar's go.mod replaces its
# client module (API types, clientset, CRDs) with ./client, the client/v8 module
# of the same tag, which a dependant cannot see; here it is that module from the
# proxy, at the same version.
snapshotter_part() {
  local mod=github.com/kubernetes-csi/external-snapshotter/v8 ver=$SNAPSHOTTER_VERSION
  local client=github.com/kubernetes-csi/external-snapshotter/client/v8
  local dir="$src/external-snapshotter" gomod
  gomod=$(scratch_module "$dir" external-snapshotter "$mod" "$ver")
  if ! grep -Eq "^replace[[:space:]]+$client[[:space:]]+=>[[:space:]]+\./client[[:space:]]*$" "$gomod"; then
    log "$mod $ver no longer replaces $client with ./client; check how its client module is pinned"
    exit 1
  fi
  echo "replace $client => $client $ver" >>"$dir/go.mod"
  (cd "$dir" && go get -tool "$mod/cmd/csi-snapshotter@$ver" "$mod/cmd/snapshot-controller@$ver")
  local got
  got=$(cd "$dir" && go list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' "$mod" "$client" | tr '\n' ' ')
  if [ "$got" != "$ver $ver " ]; then
    log "version drift in the snapshotter module: got external-snapshotter/client $got, want $ver $ver"
    exit 1
  fi
  rm -rf "$dir/out" && mkdir -p "$dir/out"
  (cd "$dir" && go build -trimpath -ldflags "-s -w -X main.version=$ver" -o "$dir/out/" "$mod/cmd/csi-snapshotter" "$mod/cmd/snapshot-controller")
  mv "$dir/out/csi-snapshotter" "$dir/out/snapshot-controller" "$bin/"
}

t_all=$(date +%s)
if have etcd kube-apiserver kube-controller-manager kubectl; then
  log "etcd, kube-apiserver, kube-controller-manager, kubectl: cached"
elif ! reuse "k8s-$K8S_VERSION" "etcd-$ETCD_VERSION" -- etcd kube-apiserver kube-controller-manager kubectl; then
  timed "kubernetes-$K8S_VERSION+etcd-$ETCD_VERSION" k8s_part
fi
if have csi-provisioner; then log "csi-provisioner: cached"; elif ! reuse "provisioner-$PROVISIONER_VERSION" -- csi-provisioner; then
  timed "csi-provisioner-$PROVISIONER_VERSION" sidecar_part csi-provisioner github.com/kubernetes-csi/external-provisioner/v5 "$PROVISIONER_VERSION"
fi
if have csi-attacher; then log "csi-attacher: cached"; elif ! reuse "attacher-$ATTACHER_VERSION" -- csi-attacher; then
  timed "csi-attacher-$ATTACHER_VERSION" sidecar_part csi-attacher github.com/kubernetes-csi/external-attacher/v4 "$ATTACHER_VERSION"
fi
if have csi-resizer; then log "csi-resizer: cached"; elif ! reuse "resizer-$RESIZER_VERSION" -- csi-resizer; then
  timed "csi-resizer-$RESIZER_VERSION" sidecar_part csi-resizer github.com/kubernetes-csi/external-resizer/v2 "$RESIZER_VERSION"
fi
if have csi-snapshotter snapshot-controller; then log "csi-snapshotter, snapshot-controller: cached"; elif ! reuse "snapshotter-$SNAPSHOTTER_VERSION" -- csi-snapshotter snapshot-controller; then
  timed "external-snapshotter-$SNAPSHOTTER_VERSION" snapshotter_part
fi
log "all parts ready in $(($(date +%s) - t_all)) s: $bin"
echo "$bin"
