# saved-plan: a plan saved with --out applies as it is; one whose live state
# changed since it was made is refused ("plan is stale") and changes nothing.
start_sim
make_state /tmp/state.yaml <<'EOT'
volumes:
  - name: e2e-a
    size: 16Mi
    attachments: [vm]
  - name: e2e-b
    size: 16Mi
    attachments: [vm]
EOT

step "plan --out, then apply the saved plan"
rr_rc 2 plan --detailed-exitcode --out /tmp/plan1.json -f /tmp/state.yaml
rr_rc 0 apply --auto-approve /tmp/plan1.json
for v in e2e-a e2e-b; do wait_for 30 "$v live" nqn_state_is "$NQNP$v" live; done
rr_rc 0 plan --detailed-exitcode -f /tmp/state.yaml

step "a saved plan is refused once the live state changed"
sed -i 's/size: 16Mi/size: 24Mi/' /tmp/state.yaml
rr_rc 2 plan --detailed-exitcode --out /tmp/plan2.json -f /tmp/state.yaml
cb=$(ctrl "${NQNP}e2e-b")
echo 1 >"/sys/class/nvme/$cb/delete_controller"
wait_for 30 "e2e-b disconnected by hand" no_ctrl "${NQNP}e2e-b"
rr_rc 1 apply --auto-approve /tmp/plan2.json
grep -q 'plan is stale' /tmp/rr.out || fail "apply of a stale plan does not say it is stale"
assert_eq 16777216 "$(dev_size "$(vol_dev e2e-a)")" "e2e-a not grown by a refused plan"
no_ctrl "${NQNP}e2e-b" || fail "a refused plan reconnected e2e-b"

step "a fresh plan repairs both"
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
wait_for 30 "e2e-b live" nqn_state_is "${NQNP}e2e-b" live
size_is() { [ "$(dev_size "$1")" = "$2" ]; }
wait_for 30 "e2e-a shows 24Mi" size_is "$(vol_dev e2e-a)" 25165824
rr_rc 0 plan --detailed-exitcode -f /tmp/state.yaml
