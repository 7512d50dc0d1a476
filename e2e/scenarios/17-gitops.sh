# gitops: `run --git` follows a repository (a bare repository in the VM,
# file:// URL): it connects the volume of the first commit, then the one a
# pushed commit adds without waiting for its interval, names the synced
# revision in /status and /metrics, and refuses a force-push (the volumes
# stay, the error is in /status).
require run
command -v git >/dev/null || skip "no git in the VM image (e2e/run.sh build_initramfs copies it)"
rds-reconcile run --help 2>&1 | grep -q -- --git || skip "rds-reconcile run has no --git"
start_sim
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 \
	GIT_AUTHOR_NAME=e2e GIT_AUTHOR_EMAIL=e2e@vm GIT_COMMITTER_NAME=e2e GIT_COMMITTER_EMAIL=e2e@vm
G=/tmp/gitops
rm -rf "$G"
mkdir -p "$G"
git init -q --bare --template= -b main "$G/state.git" || fail "git init --bare"
git init -q --template= -b main "$G/work" || fail "git init"
git -C "$G/work" remote add origin "$G/state.git"
mkdir -p "$G/work/targets"
# commit [git push flags]: commit the work tree, push it to main, print the
# short revision run reports.
commit() {
	git -C "$G/work" add -A && git -C "$G/work" commit -q -m change &&
		git -C "$G/work" push -q "$@" origin HEAD:refs/heads/main >&2 || fail "commit and push"
	git -C "$G/work" rev-parse --short=12 HEAD
}
make_state "$G/work/targets/rds-1.yaml" <<'EOT'
volumes:
  - name: e2e-a
    size: 16Mi
    attachments: [vm]
EOT
A=$(commit)
log "first commit $A"

# A long interval: what happens within the deadlines below is caused by
# the fetch (every second), not by the loop's timer.
log "\$ rds-reconcile --host vm run --git file://$G/state.git --ref main --path targets --state-dir $G/var --interval 120s --git-interval 1s --settle 200ms --listen 127.0.0.1:9100"
bg run rds-reconcile --host vm run --git "file://$G/state.git" --ref main --path targets --state-dir "$G/var" \
	--interval 120s --git-interval 1s --settle 200ms --listen 127.0.0.1:9100
wait_for 60 "e2e-a Ready in /status" status_condition_is e2e-a Ready
assert_eq "$A" "$(e2etool json revision /tmp/status.json)" "/status revision"
assert_eq "$A" "$(e2etool json git.short /tmp/status.json)" "/status git.short"

step "a pushed commit adding a volume is connected at once"
cat >>"$G/work/targets/rds-1.yaml" <<'EOT'
  - name: e2e-b
    size: 16Mi
    attachments: [vm]
EOT
B=$(commit)
log "second commit $B"
t0=$(now)
wait_for 30 "e2e-b connected after the push" nqn_state_is "${NQNP}e2e-b" live
log "connected $(elapsed "$t0")s after the push"
revision_is() { http_status && [ "$(e2etool json revision /tmp/status.json)" = "$1" ]; }
wait_for 30 "/status at revision $B" revision_is "$B"
wait_for 30 "e2e-b Ready in /status" status_condition_is e2e-b Ready
e2etool http -o /tmp/metrics.txt http://127.0.0.1:9100/metrics || fail "/metrics"
grep -E '^rds_reconcile_(git_|state_info)' /tmp/metrics.txt
grep -qx "rds_reconcile_git_sync_info{ref=\"main\",revision=\"$B\"} 1" /tmp/metrics.txt || fail "/metrics: no git_sync_info for $B"
grep -q "revision=$B" /tmp/run.err || fail "the log does not name revision $B"

step "a force-push is refused; the volumes stay"
git -C "$G/work" reset -q --hard HEAD~1
echo "# rewritten" >>"$G/work/targets/rds-1.yaml"
F=$(commit --force)
log "force-pushed $F over $B"
git_reason_is() { http_status && [ "$(e2etool json git.reason /tmp/status.json)" = "$1" ]; }
wait_for 30 "/status git.reason rewritten" git_reason_is rewritten
e2etool json git.error /tmp/status.json
assert_eq "$B" "$(e2etool json revision /tmp/status.json)" "/status revision after the force-push"
grep -q "remote history was rewritten" /tmp/run.err || fail "the log does not say the history was rewritten"
for v in e2e-a e2e-b; do nqn_state_is "$NQNP$v" live || fail "$v lost its controller after the force-push"; done
