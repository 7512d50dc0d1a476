# inuse: a namespace a process holds open read-write (a VM's raw disk) or
# that is active swap is in use like a mounted one: once the state no longer
# attaches the volumes here, the plan shows both disconnects blocked (!,
# exit 3) with the pid and "active swap", and apply leaves the controllers,
# the process and the swap alone. Once the process is gone and swap is off,
# apply disconnects both and the next plan is empty.
start_sim
# vols ATTACHMENTS: e2e-open and e2e-swap with ATTACHMENTS; two more volumes
# stay attached so that dropping two of four is not a mass detach.
vols() {
	cat <<EOT
volumes:
  - name: e2e-open
    size: 16Mi
    attachments: $1
  - name: e2e-swap
    size: 16Mi
    attachments: $1
  - name: e2e-keep-a
    size: 16Mi
    attachments: [vm]
  - name: e2e-keep-b
    size: 16Mi
    attachments: [vm]
EOT
}
vols "[vm]" | make_state /tmp/state.yaml
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
OPEN=$(vol_dev e2e-open) || fail "no block device for e2e-open"
SWAP=$(vol_dev e2e-swap) || fail "no block device for e2e-swap"
log "e2e-open is $OPEN, e2e-swap is $SWAP"
# Never leave swap on a controller the reset deletes.
trap 'swapoff "$SWAP" 2>/dev/null' EXIT

step "a process holds $OPEN open read-write; $SWAP is active swap"
# One process, fd 3 read-write on the device (a shell loop would move fd 3
# around its builtins; exec keeps it in place).
bg opener sh -c "exec 3<>$OPEN; exec sleep 3600"
PID=$(cat /tmp/opener.pid)
holds_open() { [ "$(readlink "/proc/$PID/fd/3")" = "$OPEN" ]; }
wait_for 10 "pid $PID holds $OPEN on fd 3" holds_open
mkswap "$SWAP" >/tmp/mkswap.log 2>&1 || { cat /tmp/mkswap.log; fail "mkswap $SWAP"; }
swapon "$SWAP" || fail "swapon $SWAP"
swap_active() { grep -q "^$SWAP " /proc/swaps; }
swap_active || fail "$SWAP not in /proc/swaps"
cat /proc/swaps

step "the state no longer attaches them to vm: both disconnects blocked (exit 3)"
vols "[]" | make_state /tmp/state.yaml
rr_rc 3 plan --detailed-exitcode -f /tmp/state.yaml
grep -E "^ *! .*e2e-open" /tmp/rr.out || fail "plan does not show e2e-open's disconnect as blocked (!)"
grep -E "^ *! .*e2e-swap" /tmp/rr.out || fail "plan does not show e2e-swap's disconnect as blocked (!)"
grep -E "# e2e-open: .*open by pid $PID( |,|$)" /tmp/rr.out || fail "plan does not say e2e-open is open by pid $PID"
grep -E "# e2e-swap: .*active swap" /tmp/rr.out || fail "plan does not say e2e-swap is active swap"

step "apply leaves both controllers, the process and the swap alone"
log "\$ rds-reconcile --host vm apply --auto-approve -f /tmp/state.yaml"
rr apply --auto-approve -f /tmp/state.yaml >/tmp/rr.out 2>&1
rc=$?
cat /tmp/rr.out
[ "$rc" = 0 ] || [ "$rc" = 3 ] || fail "apply: exit $rc"
nqn_state_is "${NQNP}e2e-open" live || fail "e2e-open's controller is gone while open"
nqn_state_is "${NQNP}e2e-swap" live || fail "e2e-swap's controller is gone while swap"
kill -0 "$PID" || fail "pid $PID is gone"
holds_open || fail "pid $PID no longer holds $OPEN"
swap_active || fail "$SWAP no longer active swap"
# A block written through the process's open file reads back from the device.
dd if=/dev/urandom of=/tmp/blk bs=4096 count=1 2>/dev/null
dd if=/tmp/blk of="/proc/$PID/fd/3" bs=4096 seek=1 count=1 conv=notrunc,fsync 2>/dev/null || fail "write through pid $PID's $OPEN"
echo 3 >/proc/sys/vm/drop_caches
dd if="$OPEN" of=/tmp/blk.back bs=4096 skip=1 count=1 2>/dev/null || fail "read $OPEN"
cmp /tmp/blk /tmp/blk.back || fail "block written to $OPEN does not read back"
log "ok: a 4 KiB block written through /proc/$PID/fd/3 reads back from $OPEN"

step "the process ends and swap goes off: apply disconnects both"
kill "$PID"
wait "$PID" 2>/dev/null
swapoff "$SWAP" || fail "swapoff $SWAP"
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
wait_for 30 "e2e-open disconnected" no_ctrl "${NQNP}e2e-open"
wait_for 30 "e2e-swap disconnected" no_ctrl "${NQNP}e2e-swap"
nqn_state_is "${NQNP}e2e-keep-a" live || fail "e2e-keep-a was touched"
nqn_state_is "${NQNP}e2e-keep-b" live || fail "e2e-keep-b was touched"
rr_rc 0 plan --detailed-exitcode -f /tmp/state.yaml
