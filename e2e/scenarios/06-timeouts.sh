# timeouts: a timeout change in the YAML changes the live controller in
# place where the kernel can (ctrl_loss_tmo, reconnect_delay: same
# controller, still mounted), by a reconnect where it cannot (keep_alive_tmo),
# as the plan said.
start_sim
make_state /tmp/state.yaml <<'EOT'
volumes:
  - name: e2e-a
    size: 32Mi
    connection: {ctrlLossTmo: 30, reconnectDelay: 2, keepAliveTmo: 5}
    attachments: [vm]
  - name: e2e-b
    size: 32Mi
    connection: {ctrlLossTmo: 30, reconnectDelay: 2, keepAliveTmo: 5}
    attachments: [vm]
EOT
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
assert_timeouts "${NQNP}e2e-a" 30 2 5
ca=$(ctrl "${NQNP}e2e-a")
mkfs_mount "$(vol_dev e2e-a)" /mnt/a
write_data /mnt/a

step "ctrlLossTmo and reconnectDelay of e2e-a change: in place"
sed -i '/name: e2e-a/,/attachments/ s/{ctrlLossTmo: 30, reconnectDelay: 2, keepAliveTmo: 5}/{ctrlLossTmo: -1, reconnectDelay: 4, keepAliveTmo: 5}/' /tmp/state.yaml
grep -A3 'e2e-a' /tmp/state.yaml
rr_rc 2 plan --detailed-exitcode -f /tmp/state.yaml
grep -E "^ *~ .*timeouts of $ca:" /tmp/rr.out || fail "plan does not show an in-place change (~) of $ca"
grep -E '^ *-/\+' /tmp/rr.out && fail "plan reconnects for an in-place change"
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
assert_timeouts "${NQNP}e2e-a" -1 4 5
assert_eq "$ca" "$(ctrl "${NQNP}e2e-a")" "same controller"
grep -q " /mnt/a " /proc/mounts || fail "e2e-a no longer mounted"
verify_data /mnt/a
rr_rc 0 plan --detailed-exitcode -f /tmp/state.yaml

step "keepAliveTmo of e2e-b changes: the kernel cannot, so a reconnect"
sed -i '/name: e2e-b/,/attachments/ s/keepAliveTmo: 5}/keepAliveTmo: 12}/' /tmp/state.yaml
grep -A3 'e2e-b' /tmp/state.yaml
rr_rc 2 plan --detailed-exitcode -f /tmp/state.yaml
grep -E '^ *-/\+' /tmp/rr.out | grep -q e2e-b || fail "plan does not show a reconnect (-/+) of e2e-b"
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
assert_eq 1 "$(ctrl_count "${NQNP}e2e-b")" "controllers of e2e-b"
wait_for 30 "e2e-b live" nqn_state_is "${NQNP}e2e-b" live
assert_timeouts "${NQNP}e2e-b" 30 2 12
rr_rc 0 plan --detailed-exitcode -f /tmp/state.yaml
