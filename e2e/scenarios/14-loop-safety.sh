# loop-safety: the `run` loop never acts on a half-written state file, and
# an emptied state disconnects nothing without --allow-mass-detach.
# (a) With policy.prune: true, the state file is rewritten in place in two
# chunks 0.3 s apart, the first of which only declares e2e-a (on its own it
# would disconnect e2e-b and delete its disk and file): e2e-b keeps its
# controller (same name), its disk, export and data for several seconds, and
# /status is Ready again. (b) A state with `volumes: []`: both controllers
# stay for several seconds and the log names mass-detach; run restarted with
# --allow-mass-detach disconnects both (on its second pass, after one settle
# interval) and, the state declaring no volume, deletes nothing.
require run
start_sim

# stays SECS DESC CMD...: CMD holds at every poll (0.2 s) for SECS seconds.
stays() {
	_secs=$1 _desc=$2
	shift 2
	_t0=$(now)
	while awk -v a="$_t0" -v b="$(now)" -v s="$_secs" 'BEGIN { exit !(b - a < s) }'; do
		if ! "$@" >/dev/null 2>&1; then
			echo "[$(now)] last try of: $*"
			"$@" 2>&1 | tail -20
			fail "after $(elapsed "$_t0")s, no longer true: $_desc"
		fi
		sleep 0.2
	done
	log "ok for ${_secs}s: $_desc"
}

make_state /tmp/made.yaml <<'EOT'
volumes:
  - name: e2e-a
    size: 16Mi
    attachments: [vm]
  - name: e2e-b
    size: 16Mi
    attachments: [vm]
EOT
awk '{ print } /^  orphans: disconnect$/ { print "  prune: true" }' /tmp/made.yaml >/tmp/state.yaml
grep -q '^  prune: true$' /tmp/state.yaml || fail "no policy.prune in /tmp/state.yaml"

SETTLE=700ms
start_run() {
	log "\$ rds-reconcile --host vm run --interval 120s --settle $SETTLE --listen 127.0.0.1:9100 -f /tmp/state.yaml $*"
	bg run rds-reconcile --host vm run --interval 120s --settle "$SETTLE" --listen 127.0.0.1:9100 -f /tmp/state.yaml "$@"
	RUN=$(cat /tmp/run.pid)
}
stop_run() {
	kill -TERM "$RUN"
	gone() { ! kill -0 "$RUN" 2>/dev/null; }
	wait_for 30 "run loop exited" gone
	wait "$RUN"
	assert_eq 0 "$?" "exit status of run after SIGTERM"
}
start_run
wait_for 60 "e2e-a Ready in /status" status_condition_is e2e-a Ready
wait_for 30 "e2e-b Ready in /status" status_condition_is e2e-b Ready
CA=$(ctrl "${NQNP}e2e-a") || fail "no controller for e2e-a"
CB=$(ctrl "${NQNP}e2e-b") || fail "no controller for e2e-b"
DEVB=$(ns_dev "$CB") || fail "no block device on $CB"
log "e2e-a on $CA, e2e-b on $CB ($DEVB)"
# Data on e2e-b, to tell a kept disk from one deleted and created again empty.
dd if=/dev/urandom of=/tmp/sum.mark bs=64k count=1 2>/dev/null
dd if=/tmp/sum.mark of="$DEVB" bs=64k count=1 conv=fsync 2>/dev/null || fail "write $DEVB"
MARK=$(md5sum </tmp/sum.mark)
data_kept() { [ "$(head -c 65536 "$(backing_file e2e-b)" | md5sum)" = "$MARK" ]; }
wait_for 10 "e2e-b's backing file holds the data written to $DEVB" data_kept

# intact: both controllers live under the same names, both disks exported,
# both backing files there, e2e-b's data in its file.
intact() {
	[ "$(ctrls "${NQNP}e2e-a")" = "$CA" ] && [ "$(ctrls "${NQNP}e2e-b")" = "$CB" ] &&
		ctrl_state_is "$CA" live && ctrl_state_is "$CB" live &&
		exported "${NQNP}e2e-a" && exported "${NQNP}e2e-b" &&
		[ -n "$(backing_file e2e-a)" ] && [ -n "$(backing_file e2e-b)" ] && data_kept
}

step "(a) the state file rewritten in place in two chunks 0.3 s apart; the first declares only e2e-a"
# The same state plus a comment: the second chunk completes it.
cp /tmp/state.yaml /tmp/new.yaml
echo "# reviewed" >>/tmp/new.yaml
N=$(awk '/^  - name: e2e-b$/ { print n; exit } { n += length($0) + 1 }' /tmp/new.yaml)
[ -n "$N" ] || fail "no e2e-b in /tmp/new.yaml"
head -c "$N" /tmp/new.yaml >/tmp/chunk1.yaml
log "the first chunk ($N bytes) on its own:"
rr_rc 2 plan --detailed-exitcode -f /tmp/chunk1.yaml
grep -qE '^ *x +disconnect.*e2e-b' /tmp/rr.out || fail "the first chunk alone does not plan e2e-b's disconnect"
grep -qE '^ *- +delete.*e2e-b' /tmp/rr.out || fail "the first chunk alone does not plan e2e-b's delete"
log "rewriting /tmp/state.yaml in place"
head -c "$N" /tmp/new.yaml >/tmp/state.yaml
sleep 0.3
tail -c +$((N + 1)) /tmp/new.yaml >>/tmp/state.yaml
cmp /tmp/new.yaml /tmp/state.yaml || fail "the rewrite did not produce /tmp/new.yaml"
stays 6 "both controllers (same names), disks, exports, files and data intact" intact
wait_for 30 "e2e-a Ready in /status" status_condition_is e2e-a Ready
wait_for 30 "e2e-b Ready in /status" status_condition_is e2e-b Ready
intact || fail "not intact after /status Ready"
if grep -q "waiting for the state files to settle" /tmp/run.err; then
	log "the loop waited for the file to settle:"
	grep "waiting for the state files to settle" /tmp/run.err
fi
if grep -q "waits for confirmation" /tmp/run.err; then
	log "a pass saw the half-written file and held its actions:"
	grep "waits for confirmation" /tmp/run.err
fi
grep -E 'msg=action .*kind=(disconnect|delete)' /tmp/run.err && fail "the loop ran a disconnect or delete"

step "(b) a state with volumes: []: nothing disconnected without --allow-mass-detach"
awk '/^volumes:$/ { print "volumes: []"; exit } { print }' /tmp/state.yaml >/tmp/empty.yaml
grep -q '^volumes: \[\]$' /tmp/empty.yaml || fail "no empty volumes list in /tmp/empty.yaml"
mv /tmp/empty.yaml /tmp/state.yaml
both_live() {
	[ "$(ctrls "${NQNP}e2e-a")" = "$CA" ] && [ "$(ctrls "${NQNP}e2e-b")" = "$CB" ] &&
		ctrl_state_is "$CA" live && ctrl_state_is "$CB" live
}
blocked_logged() { grep -E 'action blocked.*wanted=disconnect.*mass-detach' /tmp/run.err; }
wait_for 30 "the log says the disconnects are blocked by mass-detach" blocked_logged
stays 5 "both controllers live under the same names" both_live
grep -E 'action blocked.*mass-detach' /tmp/run.err | tail -2
http_status || fail "/status"
log "/status: $(e2etool json 'orphans.#' /tmp/status.json) orphans, plan $(e2etool json plan /tmp/status.json)"
stop_run

step "run --allow-mass-detach disconnects both, on its second pass"
T0=$(now)
start_run --allow-mass-detach
wait_for 30 "e2e-a disconnected" no_ctrl "${NQNP}e2e-a"
wait_for 30 "e2e-b disconnected" no_ctrl "${NQNP}e2e-b"
log "both disconnected $(elapsed "$T0")s after the start of run"
grep -q "waits for confirmation by the next pass" /tmp/run.err || fail "the first pass did not hold the disconnects for confirmation"
grep "waits for confirmation by the next pass" /tmp/run.err | tail -2
# The state declares no volume: nothing is pruned (empty-state).
for v in e2e-a e2e-b; do
	[ -n "$(backing_file $v)" ] || fail "$v's backing file deleted by an empty state"
done
data_kept || fail "e2e-b's data changed"
stop_run
