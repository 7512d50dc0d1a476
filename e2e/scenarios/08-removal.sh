# removal: a volume set `state: absent` is disconnected, then deleted with its
# file; a `protect: true` volume is not, and the plan says why.
start_sim
make_state /tmp/state.yaml <<'EOT'
volumes:
  - name: e2e-keep
    size: 16Mi
    protect: true
    attachments: [vm]
  - name: e2e-gone
    size: 16Mi
    attachments: [vm]
EOT
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
for v in e2e-keep e2e-gone; do nqn_state_is "$NQNP$v" live || fail "$v not live"; done

step "e2e-gone: state absent"
make_state /tmp/state.yaml <<'EOT'
volumes:
  - name: e2e-keep
    size: 16Mi
    protect: true
    attachments: [vm]
  - name: e2e-gone
    state: absent
EOT
rr_rc 2 plan --detailed-exitcode -f /tmp/state.yaml
grep e2e-gone /tmp/rr.out | grep -qi 'disconnect' || fail "plan does not disconnect e2e-gone"
grep -E '^ *-[^/]' /tmp/rr.out | grep -q e2e-gone || fail "plan does not delete (-) e2e-gone"
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
wait_for 30 "e2e-gone disconnected" no_ctrl "${NQNP}e2e-gone"
wait_for 10 "e2e-gone no longer exported" not_exported "${NQNP}e2e-gone"
[ -z "$(backing_file e2e-gone)" ] || fail "e2e-gone.img still there"
nqn_state_is "${NQNP}e2e-keep" live || fail "e2e-keep lost its controller"
rr_rc 0 plan --detailed-exitcode -f /tmp/state.yaml

step "e2e-keep (protect: true) set absent: refused, nothing deleted, and it says why"
make_state /tmp/state.yaml <<'EOT'
volumes:
  - name: e2e-keep
    state: absent
    protect: true
EOT
# spec refuses this state outright (a protected volume is never deleted), so
# neither plan nor apply touches anything.
rr_rc 1 plan --detailed-exitcode -f /tmp/state.yaml
grep -q 'protected volume is never deleted' /tmp/rr.out || fail "plan does not say the volume is protected"
rr_rc 1 apply --auto-approve -f /tmp/state.yaml
[ -n "$(backing_file e2e-keep)" ] || fail "protected e2e-keep.img deleted"
exported "${NQNP}e2e-keep" || fail "protected e2e-keep no longer exported"
nqn_state_is "${NQNP}e2e-keep" live || fail "protected e2e-keep disconnected by a refused state"

step "an empty state never prunes, even with --prune"
make_state /tmp/state.yaml <<'EOT'
volumes: []
EOT
log "\$ rds-reconcile --host vm apply --auto-approve --prune -f /tmp/state.yaml"
rr apply --auto-approve --prune -f /tmp/state.yaml >/tmp/rr.out 2>&1
cat /tmp/rr.out
[ -n "$(backing_file e2e-keep)" ] || fail "e2e-keep.img deleted by --prune of an empty state"
exported "${NQNP}e2e-keep" || fail "e2e-keep no longer exported after --prune of an empty state"
