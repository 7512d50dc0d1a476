# old-routeros: the simulator plays RouterOS 7.12 (no :serialize, the NQN
# property is nvme-tcp-name, print detail only): apply creates and exports
# through the real kernel target, connects, a grow reaches the host, and
# plans are empty after each apply. The client picks all this from the
# version it reads once per connection.
start_sim --routeros-version 7.12
make_state /tmp/state.yaml <<'EOT'
volumes:
  - name: e2e-old-a
    size: 32Mi
    attachments: [vm]
  - name: e2e-old-b
    size: 16Mi
    connection: {ctrlLossTmo: 60, reconnectDelay: 3}
    attachments: [vm]
EOT
rr_rc 0 plan -f /tmp/state.yaml
grep -q "7.12" /tmp/rr.out || fail "the plan does not name the RDS release 7.12"

step "apply against RouterOS 7.12"
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
for v in e2e-old-a e2e-old-b; do
	wait_for 10 "$v exported" exported "$NQNP$v"
	wait_for 30 "$v live" nqn_state_is "$NQNP$v" live
	assert_eq 1 "$(ctrl_count "$NQNP$v")" "controllers of $v"
done
assert_timeouts "${NQNP}e2e-old-b" 60 3 5
routeros '/disk print detail where slot="e2e-old-a"' >/tmp/old.detail || fail "routeros print"
grep -q 'nvme-tcp-name=' /tmp/old.detail || { cat /tmp/old.detail; fail "7.12 disk does not carry nvme-tcp-name"; }
rr_rc 0 plan --detailed-exitcode -f /tmp/state.yaml

step "grow on 7.12 reaches the host"
sed -i 's/size: 32Mi/size: 48Mi/' /tmp/state.yaml
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
assert_eq 50331648 "$(dev_size "$(vol_dev e2e-old-a)")" "size of e2e-old-a after the grow"
rr_rc 0 plan --detailed-exitcode -f /tmp/state.yaml
