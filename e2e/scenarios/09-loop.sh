# loop: the `run` loop heals a controller disconnected by hand (on SIGHUP),
# follows an edit of the state file without waiting for its interval
# (fsnotify), serves /metrics and /healthz, and stops cleanly on SIGTERM.
require run
start_sim
make_state /tmp/state.yaml <<'EOT'
volumes:
  - name: e2e-a
    size: 16Mi
    attachments: [vm]
EOT
# A long interval: whatever happens within the deadlines below is caused by
# the signal or the file change, not by the timer.
log "\$ rds-reconcile --host vm run --interval 120s --listen 127.0.0.1:9100 -f /tmp/state.yaml"
bg run rds-reconcile --host vm run --interval 120s --listen 127.0.0.1:9100 -f /tmp/state.yaml
RUN=$(cat /tmp/run.pid)
wait_for 60 "e2e-a Ready in /status" status_condition_is e2e-a Ready
c=$(ctrl "${NQNP}e2e-a") || fail "no controller"

step "a controller disconnected by hand comes back on SIGHUP"
echo 1 >"/sys/class/nvme/$c/delete_controller"
wait_for 30 "$c gone" no_ctrl "${NQNP}e2e-a"
kill -HUP "$RUN"
wait_for 30 "e2e-a reconnected" nqn_state_is "${NQNP}e2e-a" live

step "an edit of the state file is applied at once"
cat >>/tmp/state.yaml <<'EOT'
  - name: e2e-b
    size: 16Mi
    connection: {ctrlLossTmo: 20, reconnectDelay: 4, keepAliveTmo: 7}
    attachments: [vm]
EOT
wait_for 30 "e2e-b connected after the file change" nqn_state_is "${NQNP}e2e-b" live
assert_timeouts "${NQNP}e2e-b" 20 4 7
wait_for 30 "e2e-b Ready in /status" status_condition_is e2e-b Ready

step "/metrics and /healthz"
e2etool http -o /tmp/metrics.txt http://127.0.0.1:9100/metrics || fail "/metrics"
grep -E '^rds_reconcile_(reconciles_total|controllers|actions_total)' /tmp/metrics.txt
grep -qE '^rds_reconcile_reconciles_total' /tmp/metrics.txt || fail "no reconciles_total in /metrics"
grep -qE '^rds_reconcile_controllers\{state="live"\} 2$' /tmp/metrics.txt || fail "/metrics does not count 2 live controllers"
e2etool http http://127.0.0.1:9100/healthz || fail "/healthz"

step "SIGTERM stops the loop cleanly"
kill -TERM "$RUN"
gone() { ! kill -0 "$RUN" 2>/dev/null; }
wait_for 30 "run loop exited" gone
wait "$RUN"
rc=$?
assert_eq 0 "$rc" "exit status of run after SIGTERM"
for v in e2e-a e2e-b; do nqn_state_is "$NQNP$v" live || fail "$v lost its controller when the loop stopped"; done
