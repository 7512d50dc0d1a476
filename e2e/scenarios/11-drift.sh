# drift: an operator turns the NVMe/TCP export off on the RDS behind the
# reconciler's back (RouterOS over SSH); the host controller loses its target;
# plan reports the drift and a fix of the export; apply restores it, the
# kernel's controller is live again and the data is intact.
start_sim
make_state /tmp/state.yaml <<'EOT'
volumes:
  - name: e2e-a
    size: 32Mi
    connection: {ctrlLossTmo: -1, reconnectDelay: 1, keepAliveTmo: 5}
    attachments: [vm]
EOT
N=${NQNP}e2e-a
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
c=$(ctrl "$N") || fail "no controller"
mkfs_mount "$(vol_dev e2e-a)" /mnt/a
write_data /mnt/a
umount /mnt/a

step "export turned off on the RDS by hand"
out=$(routeros '/disk set [find slot="e2e-a"] nvme-tcp-export=no') || fail "routeros: $out"
[ -z "$out" ] || fail "RouterOS answered: $out"
wait_for 20 "nvmet export of e2e-a gone" not_exported "$N"
wait_for 30 "$c connecting (target gone)" ctrl_state_is "$c" connecting

step "plan shows the drift and a fix of the export"
rr_rc 2 plan --detailed-exitcode -f /tmp/state.yaml
grep -E 'e2e-a .*rds nvme-tcp-export: *want yes, got no' /tmp/rr.out || fail "plan does not report the export drift"
grep -E '^ *~ +fix export of disk e2e-a' /tmp/rr.out || fail "plan does not fix the export (~)"

step "apply restores the export; the kernel reconnects"
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
wait_for 20 "e2e-a exported again" exported "$N"
wait_for 60 "a live controller for e2e-a" nqn_state_is "$N" live
assert_eq 1 "$(ctrl_count "$N")" "controllers of e2e-a"
# The sim keeps the namespace's device_uuid stable across re-exports, as a
# target should (RouterOS itself is not verified here), so the kernel keeps the namespace. Should it drop
# it anyway ("identifiers changed"), the controller is live without a block
# device, and the reconciler must plan a rescan (exit 2), not call it Ready.
c=$(ctrl "$N")
if ! poll 10 dev_ready "$c"; then
	log "controller $c is live without a namespace"
	rr plan --detailed-exitcode -f /tmp/state.yaml >/tmp/rr.out 2>&1
	rc=$?
	cat /tmp/rr.out
	[ "$rc" = 2 ] || fail "plan exit $rc for a live controller without a namespace, want 2 (rescan)"
	grep -q rescan /tmp/rr.out || fail "the plan does not rescan $c"
	rr_rc 0 apply --auto-approve -f /tmp/state.yaml
fi
wait_for 30 "block device of e2e-a" dev_ready "$c"
mount -t ext4 "$(vol_dev e2e-a)" /mnt/a || fail "mount after the repair"
verify_data /mnt/a
rr_rc 0 plan --detailed-exitcode -f /tmp/state.yaml
