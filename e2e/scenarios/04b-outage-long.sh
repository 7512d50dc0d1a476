# outage-long: the target is away longer than ctrl_loss_tmo: the kernel drops
# the controller; the `run` loop shows Degraded while the kernel reconnects,
# and reconnects the volume itself once the target is back (self-healing),
# then Ready.
require run
start_sim
make_state /tmp/state.yaml <<'EOT'
volumes:
  - name: e2e-a
    size: 32Mi
    connection: {ctrlLossTmo: 10, reconnectDelay: 2, keepAliveTmo: 5}
    attachments: [vm]
  - name: e2e-b
    size: 32Mi
    connection: {ctrlLossTmo: -1, reconnectDelay: 2, keepAliveTmo: 5}
    attachments: [vm]
EOT
N=${NQNP}e2e-a
cond() { http_status && e2etool json "volumes[name=$1].condition" /tmp/status.json; }
# dropped_not_ready NAME: /status already shows the controller gone (not
# "connecting" any more), and the volume is not Ready.
dropped_not_ready() {
	http_status || return 1
	[ "$(e2etool json "volumes[name=$1].host.state" /tmp/status.json 2>/dev/null)" != connecting ] &&
		[ "$(e2etool json "volumes[name=$1].condition" /tmp/status.json)" != Ready ]
}
# hup: ask the loop for a pass now (SIGHUP), rather than wait for its interval.
hup() { kill -HUP "$(cat /tmp/run.pid)"; }

step "run loop"
log "\$ rds-reconcile --host vm run --interval 2s --listen 127.0.0.1:9100 -f /tmp/state.yaml"
bg run rds-reconcile --host vm run --interval 2s --listen 127.0.0.1:9100 -f /tmp/state.yaml
wait_for 60 "e2e-a Ready in /status" status_condition_is e2e-a Ready
wait_for 10 "e2e-b Ready in /status" status_condition_is e2e-b Ready
c=$(ctrl "$N") || fail "no controller"
assert_timeouts "$N" 10 2 5
cb=$(ctrl "${NQNP}e2e-b")

step "outage longer than ctrl_loss_tmo (10 s)"
outage_begin "$N"
wait_for 30 "$c connecting" ctrl_state_is "$c" connecting
hup
wait_for 30 "e2e-a Degraded in /status (kernel reconnecting)" status_condition_is e2e-a Degraded
e2etool json "volumes[name=e2e-a]" /tmp/status.json
wait_for 60 "kernel dropped $c" no_ctrl "$N"
hup
wait_for 30 "e2e-a dropped and not Ready in /status while the target is away" dropped_not_ready e2e-a
e2etool json "volumes[name=e2e-a]" /tmp/status.json
assert_eq Ready "$(cond e2e-b)" "e2e-b during e2e-a's outage"
backed_off() { grep -q 'volume backs off.*volume=e2e-a' /tmp/run.err; }
wait_for 60 "the loop tried to reconnect e2e-a, failed and backs off" backed_off
grep 'e2e-a' /tmp/run.err | grep -iE 'WARN|ERROR' | tail -3
no_ctrl "$N" || fail "e2e-a connected while its target is away"
http_status && e2etool json "volumes[name=e2e-a]" /tmp/status.json
outage_end "$N"

step "the run loop reconnects"
wait_for 60 "e2e-a reconnected by the loop" nqn_state_is "$N" live
wait_for 30 "e2e-a Ready in /status" status_condition_is e2e-a Ready
assert_eq 1 "$(ctrl_count "$N")" "controllers of e2e-a"
assert_timeouts "$N" 10 2 5
assert_eq "$cb" "$(ctrl "${NQNP}e2e-b")" "e2e-b's controller untouched"
kill -0 "$(cat /tmp/run.pid)" || fail "run loop died"
grep -i "reconcile pass" /tmp/run.err | tail -5
