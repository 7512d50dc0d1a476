#!/usr/bin/env bash
# End-to-end harness: boots a Debian kernel under QEMU (TCG) and runs the
# scenarios in e2e/scenarios/ inside it, against the real kernel NVMe/TCP
# target (nvmet) and host (nvme-tcp) over loopback. See docs/e2e.md.
#
# Needs root on Debian 12 (it installs what is missing with apt-get).
# Environment:
#   E2E_SCENARIOS   space/comma separated scenario names (default: all, in order)
#   E2E_VM_TIMEOUT  seconds the whole VM run may take (default 1200)
#   E2E_CACHE       kernel cache (default ${XDG_CACHE_HOME:-$HOME/.cache}/rds-reconcile-e2e)
#   E2E_WORK        build/work folder (default e2e/work, gitignored)
#   E2E_STRICT=1    count SKIP as failure
#   E2E_VERBOSE=1   stream the whole serial console, not only the markers
#   E2E_EXTRA_DIR   debugging: a folder copied to /extra in the VM; its NN-name.sh
#                   files become scenarios too
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
# go needs HOME for its caches; a bare CI environment may not set it.
export HOME=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
E2E="$REPO/e2e"
CACHE=${E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rds-reconcile-e2e}
WORK=${E2E_WORK:-$E2E/work}
VM_TIMEOUT=${E2E_VM_TIMEOUT:-1200}
export PATH="/usr/local/go/bin:$PATH:/usr/sbin:/sbin"

T0=$(date +%s)
log() { printf 'e2e: [%3ds] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and builds an initramfs)"

# --- packages ----------------------------------------------------------------
APT_UPDATED=0
apt_update_once() {
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    apt-get update -qq
    APT_UPDATED=1
  fi
}

install_missing() {
  local need=()
  command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
  # Only the static busybox works in an initramfs without libc.
  dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
  command -v cpio >/dev/null || need+=(cpio)
  command -v depmod >/dev/null || need+=(kmod)
  command -v mkfs.ext4 >/dev/null && command -v resize2fs >/dev/null || need+=(e2fsprogs)
  # The CSI node probes devices with `blkid -p` (busybox has no such flag).
  command -v blkid >/dev/null || need+=(util-linux)
  command -v gzip >/dev/null || need+=(gzip)
  # run --git (scenario gitops) drives the git CLI.
  command -v git >/dev/null || need+=(git)
  if [ ${#need[@]} -gt 0 ]; then
    apt_update_once
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

# --- kernel (cached outside the repo) ----------------------------------------
# Sets KVER and KROOT (the dpkg -x tree with modules.dep).
fetch_kernel() {
  mkdir -p "$CACHE"
  if [ -z "${E2E_KERNEL_REFRESH:-}" ] && [ -s "$CACHE/current" ]; then
    KVER=$(cat "$CACHE/current")
    KROOT="$CACHE/kernel-$KVER"
    if [ -f "$KROOT/boot/vmlinuz-$KVER" ] && [ -f "$KROOT/lib/modules/$KVER/modules.dep" ]; then
      return
    fi
  fi
  apt_update_once
  local pkg
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  [ -n "$pkg" ] || die "cannot resolve the kernel package linux-image-amd64 depends on"
  KVER=${pkg#linux-image-}
  KROOT="$CACHE/kernel-$KVER"
  log "fetching $pkg into $CACHE"
  local dl="$CACHE/download"
  rm -rf "$dl" "$KROOT.tmp" && mkdir -p "$dl" "$KROOT.tmp"
  chmod 777 "$dl"  # lets apt's _apt user write there (no sandbox warning)
  (cd "$dl" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null)
  dpkg -x "$dl"/"$pkg"_*.deb "$KROOT.tmp"
  depmod -b "$KROOT.tmp" "$KVER"
  rm -rf "$KROOT" "$dl"
  mv "$KROOT.tmp" "$KROOT"
  echo "$KVER" >"$CACHE/current"
}

# --- modules in load order -----------------------------------------------------
# Prints the .ko paths (relative to lib/modules/KVER) needed for the wanted
# modules, dependencies first, each once, from modules.dep.
module_order() {
  local dep="$1"; shift
  awk -v want="$*" '
    BEGIN { n = split(want, w, " ") }
    {
      key = $1; sub(/:$/, "", key)
      name = key; sub(/.*\//, "", name); sub(/\.ko(\.[a-z]+)?$/, "", name)
      gsub(/_/, "-", name)
      path[name] = key
      deps[key] = ""
      for (i = NF; i >= 2; i--) deps[key] = deps[key] " " $i  # reverse: deepest first
    }
    function load(k,   d, m, i) {
      if (k in done) return
      done[k] = 1
      m = split(deps[k], d, " ")
      for (i = 1; i <= m; i++) load(d[i])
      print k
    }
    END {
      for (i = 1; i <= n; i++) {
        nm = w[i]; gsub(/_/, "-", nm)
        if (!(nm in path)) { print "missing module " w[i] > "/dev/stderr"; exit 1 }
        load(path[nm])
      }
    }' "$dep"
}

# --- build -----------------------------------------------------------------------
build_binaries() {
  mkdir -p "$WORK/bin"
  log "building rds-reconcile and e2etool (CGO_ENABLED=0)"
  (cd "$REPO" && CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags '-s -w' -o "$WORK/bin/rds-reconcile" ./cmd/rds-reconcile)
  (cd "$REPO" && CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags '-s -w' -o "$WORK/bin/e2etool" ./e2e/tools/e2etool)
  # The csi-sanity scenario: kubernetes-csi's csi-sanity from the module cache
  # (csi-test is a module dependency, so the version is the one go.mod pins),
  # and the csi package's tests for TestExternalOnlineGrow, which csi-sanity
  # does not cover (it grows a volume only before staging it).
  log "building csi-sanity and csi.test (CGO_ENABLED=0)"
  (cd "$REPO" && CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags '-s -w' -o "$WORK/bin/csi-sanity" github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity)
  (cd "$REPO" && CGO_ENABLED=0 go test -c -trimpath -buildvcs=false -ldflags '-s -w' -o "$WORK/bin/csi.test" ./csi)
}

copy_with_libs() { # copy_with_libs ROOT BINARY...: the binaries and every library ldd lists
  local root="$1"; shift
  local b lib
  for b in "$@"; do
    install -D -m 0755 "$b" "$root$b"
    for lib in $(ldd "$b" 2>/dev/null | grep -oE '/[^ ]+\.so[^ ]*' | sort -u); do
      [ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
    done
  done
}

build_initramfs() {
  local root="$WORK/root"
  rm -rf "$root"
  mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,mnt,e2e,lib/modules/"$KVER"}
  install -m 0755 /bin/busybox "$root/bin/busybox"
  install -m 0755 "$WORK/bin/rds-reconcile" "$WORK/bin/e2etool" "$WORK/bin/csi-sanity" "$WORK/bin/csi.test" "$root/bin/"
  # mkfs.ext4, resize2fs (online grow) and util-linux blkid (the CSI node's
  # `blkid -p`) are dynamic: their libraries come along.
  copy_with_libs "$root" "$(command -v mkfs.ext4)" "$(command -v resize2fs)" "$(command -v blkid)"
  [ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$root/etc/"
  # run --git (scenario gitops): git (libpcre2, libz) and, in its exec path,
  # the dashed names a local fetch and push spawn (upload-pack,
  # receive-pack: builtins of the same binary). Everything else a file://
  # sync runs is a builtin; the scenario and gitsync pass --template=, so no
  # templates folder. About +2.2 MiB compressed.
  local gitbin gitexec
  gitbin=$(command -v git)
  gitexec=$(git --exec-path)
  copy_with_libs "$root" "$gitbin"
  mkdir -p "$root$gitexec"
  ln -sf "$gitbin" "$root$gitexec/git-upload-pack"
  ln -sf "$gitbin" "$root$gitexec/git-receive-pack"
  local mods
  # crc32c_generic is not a modules.dep dependency of ext4, but ext4 cannot
  # mount without it (see shared/reference/vm-kernel.md).
  mods=$(module_order "$KROOT/lib/modules/$KVER/modules.dep" \
    configfs nvme-tcp nvmet-tcp crc32c_generic ext4) || die "module resolution failed"
  : >"$root/e2e/modules.list"
  local m
  for m in $mods; do
    install -D -m 0644 "$KROOT/lib/modules/$KVER/$m" "$root/lib/modules/$KVER/$m"
    echo "/lib/modules/$KVER/$m" >>"$root/e2e/modules.list"
  done
  install -m 0755 "$E2E/vm/init" "$root/init"
  install -m 0644 "$E2E/vm/lib.sh" "$root/e2e/lib.sh"
  cp -r "$E2E/scenarios" "$root/e2e/scenarios"
  if [ -n "${E2E_EXTRA_DIR:-}" ]; then
    cp -r "$E2E_EXTRA_DIR" "$root/extra"
    cp "$E2E_EXTRA_DIR"/[0-9]*.sh "$root/e2e/scenarios/" 2>/dev/null || true
  fi
  printf '%s\n' "${SCENARIOS[@]}" >"$root/e2e/scenarios.list"
  (cd "$root" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1 >"$WORK/initrd.gz")
  log "initramfs $(du -h "$WORK/initrd.gz" | cut -f1), modules: $(echo $mods | wc -w)"
}

# --- scenarios -------------------------------------------------------------------
select_scenarios() {
  local all=() f n
  for f in "$E2E"/scenarios/[0-9]*.sh ${E2E_EXTRA_DIR:+"$E2E_EXTRA_DIR"/[0-9]*.sh}; do
    [ -f "$f" ] || continue
    n=$(basename "$f" .sh)
    all+=("${n#*-}")
  done
  if [ -z "${E2E_SCENARIOS:-}" ] || [ "${E2E_SCENARIOS}" = all ]; then
    SCENARIOS=("${all[@]}")
    return
  fi
  SCENARIOS=()
  for n in ${E2E_SCENARIOS//,/ }; do
    printf '%s\n' "${all[@]}" | grep -qx -- "$n" || die "no scenario '$n' (have: ${all[*]})"
    SCENARIOS+=("$n")
  done
}

# --- VM --------------------------------------------------------------------------
boot_vm() {
  local console="$WORK/console.log"
  log "booting $KVER under QEMU (TCG), scenarios: ${SCENARIOS[*]}, bound ${VM_TIMEOUT}s"
  local filter=(grep --line-buffered -E '^E2E-(RESULT|START|DONE|FATAL|NOTE)')
  [ -n "${E2E_VERBOSE:-}" ] && filter=(cat)
  set +e
  timeout -k 10 "$VM_TIMEOUT" qemu-system-x86_64 \
    -accel tcg -cpu max -smp 2 -m 1024 -nographic -no-reboot \
    -kernel "$KROOT/boot/vmlinuz-$KVER" -initrd "$WORK/initrd.gz" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1" </dev/null 2>&1 |
    tr -d '\r' | sed -u 's/\x1b\[[0-9;?]*[A-Za-z]//g' | tee "$console" | "${filter[@]}"
  local rcs=("${PIPESTATUS[@]}")
  set -e
  VM_RC=${rcs[0]}
}

report() {
  local console="$WORK/console.log" fails=0 skips=0 passes=0 n line status secs
  mkdir -p "$WORK/logs"
  echo
  echo "== e2e results (kernel $KVER)"
  for n in "${SCENARIOS[@]}"; do
    line=$(grep -E "^E2E-RESULT $n (PASS|FAIL|SKIP) " "$console" | tail -1 || true)
    # Each scenario's log, between markers, is kept for reading afterwards.
    sed -n "/^E2E-LOG-BEGIN $n\$/,/^E2E-LOG-END $n\$/p" "$console" | sed '1d;$d' >"$WORK/logs/$n.log"
    if [ -z "$line" ]; then
      printf '  %-12s %-4s %s\n' "$n" "FAIL" "(no result: VM timed out or crashed)"
      fails=$((fails + 1))
      continue
    fi
    status=$(echo "$line" | awk '{print $3}')
    secs=$(echo "$line" | awk '{print $4}')
    case "$status" in
      PASS) passes=$((passes + 1)); printf '  %-12s %-4s %6ss\n' "$n" PASS "$secs" ;;
      SKIP) skips=$((skips + 1)); printf '  %-12s %-4s %6ss  %s\n' "$n" SKIP "$secs" "$(echo "$line" | cut -d' ' -f5-)" ;;
      *) fails=$((fails + 1)); printf '  %-12s %-4s %6ss\n' "$n" FAIL "$secs" ;;
    esac
  done
  local vmsecs
  vmsecs=$(grep -E '^E2E-DONE' "$console" | awk '{print $2}' || true)
  echo "  vm: exit $VM_RC, scenarios ran ${vmsecs:-?}s of VM uptime; total $(( $(date +%s) - T0 ))s"
  if grep -q '^E2E-NOTE ' "$console"; then
    echo "  worked around in the harness (product bugs; see the scenario logs):"
    grep '^E2E-NOTE ' "$console" | cut -d' ' -f2- | sed 's/^/    /'
  fi
  if grep -q '^E2E-MEASURE ' "$console"; then
    echo "  measurements (not pass/fail):"
    grep '^E2E-MEASURE ' "$console" | cut -d' ' -f2- | sed 's/^/    /'
  fi
  echo "$passes passed, $fails failed, $skips skipped"
  for n in "${SCENARIOS[@]}"; do
    if ! grep -qE "^E2E-RESULT $n (PASS|SKIP) " "$console"; then
      echo
      echo "== log of failed scenario $n ($WORK/logs/$n.log)"
      if [ -s "$WORK/logs/$n.log" ]; then cat "$WORK/logs/$n.log"; else
        echo "(no log markers; last 60 console lines:)"; tail -60 "$console"; fi
    fi
  done
  if ! grep -q '^E2E-DONE' "$console"; then
    echo "e2e: the VM did not finish (exit $VM_RC; 124 = timeout after ${VM_TIMEOUT}s); console: $console"
    fails=$((fails + 1))
  fi
  [ "$fails" = 0 ] || return 1
  if [ "$skips" -gt 0 ] && [ -n "${E2E_STRICT:-}" ]; then
    echo "e2e: E2E_STRICT is set and $skips scenario(s) skipped"
    return 1
  fi
  return 0
}

main() {
  select_scenarios
  install_missing
  fetch_kernel
  build_binaries
  build_initramfs
  boot_vm
  report
}

main "$@"
