# replan: after a successful apply, a second plan is empty
# (`plan --detailed-exitcode` exits 0), and status says Ready. The timeouts
# are the ones where the kernel does not print back what was asked:
# ctrl_loss_tmo 7 with reconnect_delay 2 reads back as 8, keep_alive_tmo 0
# means the kernel default (5).
require status; start_sim
make_state /tmp/state.yaml <<'EOT'
volumes:
  - name: e2e-a
    size: 32Mi
    connection: {ctrlLossTmo: 7, reconnectDelay: 2, keepAliveTmo: 0}
    attachments: [vm]
  - name: e2e-b
    size: 32Mi
    attachments: [vm]
EOT

step "plan before apply has changes (exit 2)"
rr_rc 2 plan --detailed-exitcode -f /tmp/state.yaml
step "apply"
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
assert_timeouts "${NQNP}e2e-a" 8 2 5
step "second plan is empty (exit 0)"
rr_rc 0 plan --detailed-exitcode -f /tmp/state.yaml
step "a second apply changes nothing"
ca=$(ctrl "${NQNP}e2e-a")
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
assert_eq "$ca" "$(ctrl "${NQNP}e2e-a")" "controller of e2e-a unchanged"
assert_eq 1 "$(ctrl_count "${NQNP}e2e-a")" "controllers of e2e-a"
step "status -o json: Ready"
rr status -o json -f /tmp/state.yaml >/tmp/status.json || { cat /tmp/status.json; fail "status"; }
cat /tmp/status.json
for v in e2e-a e2e-b; do
	assert_eq Ready "$(e2etool json "volumes[name=$v].condition" /tmp/status.json)" "condition of $v"
done
