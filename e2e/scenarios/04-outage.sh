# outage: the target goes away (its nvmet port link is removed) for less than
# ctrl_loss_tmo: the controller goes connecting, comes back live when the
# target returns, and the data is intact.
start_sim
make_state /tmp/state.yaml <<'EOT'
volumes:
  - name: e2e-a
    size: 32Mi
    connection: {ctrlLossTmo: 60, reconnectDelay: 1, keepAliveTmo: 5}
    attachments: [vm]
EOT
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
N=${NQNP}e2e-a
c=$(ctrl "$N") || fail "no controller"
dev=$(vol_dev e2e-a)
mkfs_mount "$dev" /mnt/a
write_data /mnt/a

step "outage shorter than ctrl_loss_tmo (60 s)"
t0=$(now)
outage_begin "$N"
wait_for 40 "$c connecting" ctrl_state_is "$c" connecting
outage_end "$N"
wait_for 40 "$c live again" ctrl_state_is "$c" live
log "outage lasted $(elapsed "$t0")s"
assert_eq "$c" "$(ctrl "$N")" "same controller"
assert_eq "$dev" "$(vol_dev e2e-a)" "same block device"
verify_data /mnt/a
echo more >/mnt/a/after || fail "write after the outage"
sync

step "the reconciler has nothing to do"
rr_rc 0 plan --detailed-exitcode -f /tmp/state.yaml
