# rwx-block (issue 13, live migration): a volume with access:
# multi-writer-block attached to two hosts has both host NQNs connected at
# once in the real kernel, and removing one attachment leaves the other
# controller live and untouched (same name, still reads the same bytes).
# The VM is one machine, so host "other" is a second host NQN on the same
# kernel, connected by hand as other's node would; the reconciler runs as
# host vm and must treat other's controller as other's (foreign: "its host
# NQN is another declared host's"), never as a duplicate or an orphan.
start_sim
OTHER=nqn.2014-08.org.nvmexpress:uuid:0e2e0000-0000-4000-8000-0000000a7b02
N=${NQNP}rwx-a
SUB=$CFG/subsystems/$N
rwx_state() { # rwx_state ATTACHMENTS
	make_state /tmp/state.yaml <<EOT
volumes:
  - name: rwx-a
    size: 16Mi
    access: multi-writer-block
    attachments: [$1]
EOT
	awk -v o="$OTHER" '{ print } /^  orphans: disconnect$/ { print "  exportACL: attached" }
		/^hosts:$/ { print "  other: {hostNQN: \"" o "\"}" }' /tmp/state.yaml >/tmp/state.new && mv /tmp/state.new /tmp/state.yaml
	grep -q '^  other: ' /tmp/state.yaml || { cat /tmp/state.yaml; fail "state without host other"; }
}
allowed() { ls "$SUB/allowed_hosts" 2>/dev/null | sort | tr '\n' ' ' | sed 's/ $//'; }
both=$(printf '%s\n%s\n' "$HOSTNQN" "$OTHER" | sort | tr '\n' ' ' | sed 's/ $//')
gone() { [ ! -e "/sys/class/nvme/$1" ]; }
# sum_of CTRL: md5 of the first MiB of CTRL's namespace, read from the device.
sum_of() {
	echo 3 >/proc/sys/vm/drop_caches
	dd if="$(ns_dev "$1")" bs=64k count=16 2>/dev/null | md5sum | cut -d' ' -f1
}

step "attached to vm and other: apply connects vm; the disk admits both host NQNs"
rwx_state "vm, other"
rr_rc 0 validate -f /tmp/state.yaml
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
wait_for 30 "rwx-a live" nqn_state_is "$N" live
A=$(ctrl "$N")
assert_eq "$HOSTNQN" "$(ctrl_attr "$A" hostnqn)" "host NQN of $A"
assert_eq "$both" "$(allowed)" "allowed_hosts of rwx-a"

step "host other connects too (its own host NQN): two controllers of one volume at once"
B=$(e2etool connect -nqn "$N" -addr 127.0.0.1 -port 4420 -hostnqn "$OTHER" -ctrl-loss-tmo -1 -reconnect-delay 2 -keep-alive-tmo 5) ||
	fail "second host NQN refused"
wait_for 30 "$B live (as other)" ctrl_state_is "$B" live
assert_eq "$OTHER" "$(ctrl_attr "$B" hostnqn)" "host NQN of $B"
assert_eq 2 "$(ctrl_count "$N")" "controllers of rwx-a"
ctrl_state_is "$A" live || fail "$A is $(ctrl_attr "$A" state) after $B connected"
log "devices: $A -> $(ns_dev "$A"), $B -> $(ns_dev "$B") (one device under native multipath, two without)"
dd if=/dev/urandom of=/tmp/rwx.bin bs=64k count=16 2>/dev/null
dd if=/tmp/rwx.bin of="$(ns_dev "$A")" bs=64k count=16 conv=fsync 2>/dev/null || fail "write through $A"
want=$(md5sum </tmp/rwx.bin | cut -d' ' -f1)
assert_eq "$want" "$(sum_of "$B")" "bytes written through $A, read through $B"
# vm's reconciler sees other's controller and leaves it alone.
rr_rc 0 plan --detailed-exitcode -v -f /tmp/state.yaml
grep -q "$B.*its host NQN is another declared host's" /tmp/rr.out || fail "plan -v does not list $B as other's"

step "vm's attachment removed: vm's controller goes, other's stays live and untouched"
rwx_state "other"
# vm is left with no volume: the guard for a state that suddenly declares
# nothing for a host holds the disconnect back (!) without the switch.
rr_rc 3 plan --detailed-exitcode -f /tmp/state.yaml
grep -E "^ *! +would disconnect $A " /tmp/rr.out || fail "plan does not hold back the disconnect of $A"
rr_rc 2 plan --detailed-exitcode --allow-mass-detach -f /tmp/state.yaml
grep -E "^ *x +disconnect $A " /tmp/rr.out || fail "plan does not disconnect $A"
grep -E "disconnect $B " /tmp/rr.out && fail "plan disconnects other's controller $B"
rr_rc 0 apply --auto-approve --allow-mass-detach -f /tmp/state.yaml
wait_for 30 "$A gone" gone "$A"
assert_eq "$B" "$(ctrl "$N")" "rwx-a's controller after vm let go"
assert_eq "$OTHER" "$(allowed)" "allowed_hosts after vm let go"
# Through two keep-alive periods (kato 5 s): still live, same bytes.
sleep 12
ctrl_state_is "$B" live || fail "$B is $(ctrl_attr "$B" state) after vm's attachment was removed"
assert_eq "$want" "$(sum_of "$B")" "bytes read through $B after vm let go"
rr_rc 0 plan --detailed-exitcode --allow-mass-detach -f /tmp/state.yaml

step "vm attached again, other detached: vm connects beside other's live controller, which vm leaves alone"
rwx_state "vm"
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
wait_for 30 "a controller of vm" sh -c "for c in \$(ls /sys/class/nvme); do [ \"\$(cat /sys/class/nvme/\$c/hostnqn)\" = '$HOSTNQN' ] && [ \"\$(cat /sys/class/nvme/\$c/state)\" = live ] && exit 0; done; exit 1"
assert_eq 2 "$(ctrl_count "$N")" "controllers of rwx-a (vm's new one and other's)"
ctrl_state_is "$B" live || fail "$B not live after vm connected again"
assert_eq "$HOSTNQN" "$(allowed)" "allowed_hosts with vm alone attached"
for c in $(ctrls "$N"); do
	[ "$c" = "$B" ] && continue
	assert_eq "$want" "$(sum_of "$c")" "bytes read through vm's new controller $c"
done
rr_rc 0 plan --detailed-exitcode -f /tmp/state.yaml
echo 1 >"/sys/class/nvme/$B/delete_controller" # other's node lets go: its business, not vm's
wait_for 30 "$B gone" gone "$B"
rr_rc 0 plan --detailed-exitcode -f /tmp/state.yaml
