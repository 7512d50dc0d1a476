# grow: a larger size grows the backing file, the target revalidates, the
# host rescans, and the new size is visible on the host (mounted, data kept).
start_sim
make_state /tmp/state.yaml <<'EOT'
volumes:
  - name: e2e-a
    size: 32Mi
    attachments: [vm]
EOT
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
dev=$(vol_dev e2e-a)
assert_eq 33554432 "$(dev_size "$dev")" "size before"
mkfs_mount "$dev" /mnt/a
write_data /mnt/a

step "size 32Mi -> 48Mi"
sed -i 's/size: 32Mi/size: 48Mi/' /tmp/state.yaml
rr_rc 2 plan --detailed-exitcode -f /tmp/state.yaml
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
assert_eq 50331648 "$(stat -c %s "$(backing_file e2e-a)")" "backing file size"
size_is() { [ "$(dev_size "$1")" = "$2" ]; }
wait_for 30 "$dev shows 48Mi" size_is "$dev" 50331648
assert_eq "$dev" "$(vol_dev e2e-a)" "same block device"
verify_data /mnt/a
rr_rc 0 plan --detailed-exitcode -f /tmp/state.yaml

step "shrink is refused"
sed -i 's/size: 48Mi/size: 16Mi/' /tmp/state.yaml
log "\$ rds-reconcile --host vm plan --detailed-exitcode -f /tmp/state.yaml"
rr plan --detailed-exitcode -f /tmp/state.yaml >/tmp/rr.out 2>&1
rc=$?
cat /tmp/rr.out
[ "$rc" = 0 ] || [ "$rc" = 2 ] && fail "plan accepted a shrink (exit $rc)"
assert_eq 50331648 "$(dev_size "$dev")" "size after a refused shrink"
