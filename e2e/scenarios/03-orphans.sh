# orphans: a controller connected by hand under the managed NQN prefix, at
# the state's target (address and port), is disconnected; one outside the
# prefix is untouched; a mounted orphan is reported blocked, not
# disconnected. (Other addresses and ports: the ownership scenario.)
start_sim
make_state /tmp/state.yaml <<'EOT'
volumes:
  - name: e2e-a
    size: 32Mi
    attachments: [vm]
EOT
rr_rc 0 apply --auto-approve -f /tmp/state.yaml

step "subsystems the state does not know, exported by hand on the target's port 4420"
ORPHAN=${NQNP}e2e-orphan
MOUNTED=${NQNP}e2e-orphan-busy
FOREIGN=nqn.2000-02.com.example:foreign
mkdir -p /tmp/data
i=0
for n in "$ORPHAN" "$MOUNTED" "$FOREIGN"; do
	i=$((i + 1))
	dd if=/dev/zero of=/tmp/data/o$i.img bs=1M count=0 seek=16 2>/dev/null
	nvmet_export "$n" /tmp/data/o$i.img 4420 4420 || fail "export $n"
done
step "connected by hand, as an admin with nvme-cli would"
for n in "$ORPHAN" "$MOUNTED" "$FOREIGN"; do
	c=$(connect_by_hand "$n" 4420 -ctrl-loss-tmo 60 -reconnect-delay 2) || fail "connect $n"
	wait_for 30 "$n live" nqn_state_is "$n" live
	wait_for 30 "$n block device" dev_ready "$c"
done
mkfs_mount "$(ns_dev "$(ctrl "$MOUNTED")")" /mnt/orphan
write_data /mnt/orphan
show_nvme

step "plan: the mounted orphan is blocked (exit 3), the other is disconnected"
rr_rc 3 plan --detailed-exitcode -f /tmp/state.yaml
# Marks (docs/format.md): x disconnect, ! blocked by a safety rule.
grep -E '^ *! .*e2e-orphan-busy' /tmp/rr.out || fail "plan does not show the mounted orphan as blocked (!)"
grep -q 'mounted on /mnt/orphan' /tmp/rr.out || fail "plan does not say the orphan is mounted on /mnt/orphan"
grep -E "^ *x .*orphan.*e2e-orphan\)" /tmp/rr.out || fail "plan does not disconnect (x) the orphan"
grep -q "com.example:foreign" /tmp/rr.out && fail "plan names the controller outside the managed prefix"

step "apply"
log "\$ rds-reconcile --host vm apply --auto-approve -f /tmp/state.yaml"
rr apply --auto-approve -f /tmp/state.yaml >/tmp/rr.out 2>&1
rc=$?
cat /tmp/rr.out
# A blocked action is not a failure of the others; apply may still say so in its code.
[ "$rc" = 0 ] || [ "$rc" = 3 ] || fail "apply: exit $rc"

step "orphan disconnected, foreign and mounted kept"
wait_for 30 "orphan $ORPHAN disconnected" no_ctrl "$ORPHAN"
nqn_state_is "$FOREIGN" live || fail "controller outside the prefix was touched"
nqn_state_is "$MOUNTED" live || fail "mounted orphan was disconnected"
grep -q " /mnt/orphan " /proc/mounts || fail "mounted orphan no longer mounted"
verify_data /mnt/orphan
nqn_state_is "${NQNP}e2e-a" live || fail "declared volume lost its controller"
assert_eq 1 "$(ctrl_count "${NQNP}e2e-a")" "controllers of e2e-a"

step "after unmounting, the orphan is disconnected too"
umount /mnt/orphan
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
wait_for 30 "orphan $MOUNTED disconnected" no_ctrl "$MOUNTED"
nqn_state_is "$FOREIGN" live || fail "controller outside the prefix was touched"
rr_rc 0 plan --detailed-exitcode -f /tmp/state.yaml
