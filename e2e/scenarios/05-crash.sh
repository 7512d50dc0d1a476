# crash: kill -9 the reconciler in the middle of an apply (the sim answers
# each command slowly to widen the window), once as soon as the RDS batch of
# creates ran (one command for the 8 creates: the answer is on its way or
# just read, no connect done) and once during the connects; a rerun
# converges with no duplicate controller and no leftover file.
start_sim --latency 1s
VOLS="e2e-a e2e-b e2e-c e2e-d e2e-e e2e-f e2e-g e2e-h"
for v in $VOLS; do
	printf '  - name: %s\n    size: 16Mi\n    attachments: [vm]\n' "$v"
done >/tmp/vols.yaml
{ echo "volumes:"; cat /tmp/vols.yaml; } | make_state /tmp/state.yaml
nfiles() { backing_files | wc -l | tr -d ' '; }
nctrls() { ls /sys/class/nvme/ 2>/dev/null | grep -c nvme; }
some_file() { [ "$(nfiles)" -ge 1 ]; }
ctrls_at_least() { [ "$(nctrls)" -ge "$1" ]; }

step "apply, killed with SIGKILL once the first disks exist (RDS creates: one batch, 1 s per command)"
bg apply1 rds-reconcile --host vm apply --auto-approve -f /tmp/state.yaml
wait_for 60 "a first backing file" some_file
kill -9 "$(cat /tmp/apply1.pid)"
n=$(nfiles)
log "killed with $n of 8 files, $(nctrls) controllers: $(backing_files | sed 's|.*/||' | tr '\n' ' ')"
[ "$(nctrls)" -lt 8 ] || fail "the kill came after every controller was made: not mid-apply"
cat /tmp/apply1.out /tmp/apply1.err

step "apply (one connect at a time), killed with SIGKILL once 2 controllers exist"
bg apply2 rds-reconcile --host vm apply --auto-approve --parallelism 1 -f /tmp/state.yaml
wait_for 90 "2 controllers" ctrls_at_least 2
kill -9 "$(cat /tmp/apply2.pid)"
log "killed with $(nfiles) of 8 files, $(nctrls) of 8 controllers"
cat /tmp/apply2.out /tmp/apply2.err

step "rerun converges"
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
rr_rc 0 plan --detailed-exitcode -f /tmp/state.yaml

step "exactly one live controller per volume, exactly the declared files and exports"
for v in $VOLS; do
	assert_eq 1 "$(ctrl_count "$NQNP$v")" "controllers of $v"
	wait_for 30 "$v live" nqn_state_is "$NQNP$v" live
	exported "$NQNP$v" || fail "$v not exported"
done
assert_eq 8 "$(nctrls)" "controllers in all"
files=$(backing_files | sed 's|.*/||' | tr '\n' ' ')
assert_eq "e2e-a.img e2e-b.img e2e-c.img e2e-d.img e2e-e.img e2e-f.img e2e-g.img e2e-h.img " "$files" "backing files"
assert_eq 8 "$(ls $CFG/subsystems | wc -l | tr -d ' ')" "nvmet subsystems"
