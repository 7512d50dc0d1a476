# apply: apply creates the volumes on the RDS (real nvmet exports), connects
# each with its own timeouts (read back from sysfs), the block device exists,
# and data written is read back.
start_sim
make_state /tmp/state.yaml <<'EOT'
volumes:
  - name: e2e-a
    size: 64Mi
    connection: {ctrlLossTmo: 30, reconnectDelay: 2, keepAliveTmo: 5}
    attachments: [vm]
  - name: e2e-b
    size: 32Mi
    connection: {ctrlLossTmo: -1, reconnectDelay: 3, keepAliveTmo: 10}
    attachments: [vm]
EOT

step "apply"
rr_rc 0 apply --auto-approve -f /tmp/state.yaml

step "the RDS exports each volume through nvmet"
for v in e2e-a e2e-b; do
	wait_for 10 "$v exported" exported "$NQNP$v"
	[ -n "$(backing_file $v)" ] || fail "no backing file $v.img under $SIM_DIR"
done

step "one live controller per volume, with its own timeouts"
for v in e2e-a e2e-b; do
	assert_eq 1 "$(ctrl_count "$NQNP$v")" "controllers of $v"
	wait_for 30 "$v live" nqn_state_is "$NQNP$v" live
done
assert_timeouts "${NQNP}e2e-a" 30 2 5
assert_timeouts "${NQNP}e2e-b" -1 3 10
assert_eq "$HOSTNQN" "$(ctrl_attr "$(ctrl "${NQNP}e2e-a")" hostnqn)" "host NQN presented"

step "block devices with the declared sizes"
assert_eq 67108864 "$(dev_size "$(vol_dev e2e-a)")" "size of e2e-a"
assert_eq 33554432 "$(dev_size "$(vol_dev e2e-b)")" "size of e2e-b"

step "data written is read back"
mkfs_mount "$(vol_dev e2e-a)" /mnt/a
write_data /mnt/a
umount /mnt/a
mount -t ext4 "$(vol_dev e2e-a)" /mnt/a || fail "mount again"
verify_data /mnt/a
