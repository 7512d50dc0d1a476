# crash: kill -9 the reconciler in the middle of an apply (the sim answers
# each command slowly to widen the window); a rerun converges with no
# duplicate controller and no leftover file.
start_sim --latency 300ms
make_state /tmp/state.yaml <<'EOT'
volumes:
  - name: e2e-a
    size: 16Mi
    attachments: [vm]
  - name: e2e-b
    size: 16Mi
    attachments: [vm]
  - name: e2e-c
    size: 16Mi
    attachments: [vm]
  - name: e2e-d
    size: 16Mi
    attachments: [vm]
EOT
some_file() { [ -n "$(backing_files)" ]; }
some_ctrl() { ls /sys/class/nvme/ 2>/dev/null | grep -q nvme; }

step "apply, killed with SIGKILL once the first disk exists"
bg apply1 rds-reconcile --host vm apply --auto-approve -f /tmp/state.yaml
wait_for 60 "a first backing file" some_file
kill -9 "$(cat /tmp/apply1.pid)"
log "killed; files: $(backing_files | tr '\n' ' ') controllers: $(ls /sys/class/nvme | tr '\n' ' ')"
cat /tmp/apply1.out /tmp/apply1.err

step "apply, killed with SIGKILL once the first controller exists"
bg apply2 rds-reconcile --host vm apply --auto-approve -f /tmp/state.yaml
wait_for 90 "a first controller" some_ctrl
kill -9 "$(cat /tmp/apply2.pid)"
log "killed; files: $(backing_files | tr '\n' ' ') controllers: $(ls /sys/class/nvme | tr '\n' ' ')"
cat /tmp/apply2.out /tmp/apply2.err

step "rerun converges"
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
rr_rc 0 plan --detailed-exitcode -f /tmp/state.yaml

step "exactly one live controller per volume, exactly the declared files and exports"
for v in e2e-a e2e-b e2e-c e2e-d; do
	assert_eq 1 "$(ctrl_count "$NQNP$v")" "controllers of $v"
	wait_for 30 "$v live" nqn_state_is "$NQNP$v" live
	exported "$NQNP$v" || fail "$v not exported"
done
assert_eq 4 "$(ls /sys/class/nvme | grep -c nvme)" "controllers in all"
files=$(backing_files | sed 's|.*/||' | tr '\n' ' ')
assert_eq "e2e-a.img e2e-b.img e2e-c.img e2e-d.img " "$files" "backing files"
assert_eq 4 "$(ls $CFG/subsystems | wc -l | tr -d ' ')" "nvmet subsystems"
