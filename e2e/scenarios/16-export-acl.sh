# export-acl: with policy.exportACL: attached, each managed disk admits only
# the host NQNs of its attachments, enforced by the kernel target (nvmet
# allowed_hosts) the simulator configures. The attached host connects, a
# host NQN that is not attached is refused; an allow list changed by hand is
# drift fixed in place (the live controller stays); moving the attachment to
# another declared host moves the admission.
start_sim
OTHER=nqn.2014-08.org.nvmexpress:uuid:0e2e0000-0000-4000-8000-00000000a0c1
STRANGER=nqn.2014-08.org.nvmexpress:uuid:0e2e0000-0000-4000-8000-0000000057a2
acl_state() { # acl_state ATTACHMENTS_OF_ACL_A
	make_state /tmp/state.yaml <<EOT
volumes:
  - name: acl-a
    size: 16Mi
    attachments: [$1]
  - name: acl-keep
    size: 16Mi
    attachments: [vm]
EOT
	awk -v o="$OTHER" '{ print } /^  orphans: disconnect$/ { print "  exportACL: attached" }
		/^hosts:$/ { print "  other: {hostNQN: \"" o "\"}" }' /tmp/state.yaml >/tmp/state.new && mv /tmp/state.new /tmp/state.yaml
	grep -q '^  exportACL: attached$' /tmp/state.yaml || { cat /tmp/state.yaml; fail "state without exportACL"; }
}
N=${NQNP}acl-a
SUB=$CFG/subsystems/$N
allowed() { ls "$SUB/allowed_hosts" 2>/dev/null | tr '\n' ' ' | sed 's/ $//'; }
# try_connect HOSTNQN: a new controller for acl-a as that host; prints it.
try_connect() { e2etool connect -nqn "$N" -addr 127.0.0.1 -port 4420 -hostnqn "$1" -ctrl-loss-tmo 0 -reconnect-delay 1 2>/tmp/connect.err; }
# refused HOSTNQN: a new connect as HOSTNQN fails, and the target is the one
# that refused it (nvmet logs "connect by host H for subsystem S not allowed").
refused() {
	dmesg -c >/dev/null 2>&1
	if c=$(try_connect "$1"); then
		echo 1 >"/sys/class/nvme/$c/delete_controller"
		fail "host $1 connected to $N ($c) though it is not attached"
	fi
	log "refused as expected: $(cat /tmp/connect.err)"
	dmesg | grep -q "connect by host $1 for subsystem $N not allowed" || { dmesg | tail -5; fail "nvmet did not log the refusal of $1"; }
}

step "exportACL attached: the disk admits the attached host only"
acl_state vm
rr_rc 0 validate -f /tmp/state.yaml
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
grep -E "create disk acl-a: .*admits $HOSTNQN" /tmp/rr.out || fail "create does not admit the attached host"
wait_for 30 "acl-a live" nqn_state_is "$N" live
A=$(ctrl "$N")
assert_eq 0 "$(cat "$SUB/attr_allow_any_host")" "attr_allow_any_host of acl-a"
assert_eq "$HOSTNQN" "$(allowed)" "allowed_hosts of acl-a"
refused "$STRANGER"
rr_rc 0 plan --detailed-exitcode -f /tmp/state.yaml

step "the allow list changed by hand: the live controller stays; drift fixed in place"
out=$(routeros '/disk set [find slot="acl-a"] nvme-tcp-server-allow-host-name="'"$OTHER"'"') || fail "routeros: $out"
[ -z "$out" ] || fail "RouterOS answered: $out"
assert_eq "$OTHER" "$(allowed)" "allowed_hosts after the hand change"
# nvmet checks allowed_hosts at connect only: the controller of the host
# just removed stays live through several keep-alive periods (kato 5 s)
# and still reads.
sleep 12
ctrl_state_is "$A" live || fail "$A is $(ctrl_attr "$A" state) after its host was removed from allowed_hosts"
echo 3 >/proc/sys/vm/drop_caches
dd if="$(ns_dev "$A")" of=/dev/null bs=4096 skip=2000 count=16 2>/dev/null || fail "read from $A after its host was removed"
log "nvmet kept the live controller $A after its host left allowed_hosts (no new connect as $HOSTNQN tried: the host kernel would refuse it as a duplicate of $A)"
rr_rc 2 plan --detailed-exitcode -f /tmp/state.yaml
grep -E "acl-a .*rds allow-hosts: *want $HOSTNQN, got $OTHER" /tmp/rr.out || fail "plan does not report the allow-hosts drift"
grep -E "^ *~ +fix export of disk acl-a: .*admits $HOSTNQN" /tmp/rr.out || fail "plan does not fix the allow list in place (~)"
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
assert_eq "$HOSTNQN" "$(allowed)" "allowed_hosts after the fix"
assert_eq "$A" "$(ctrl "$N")" "acl-a's controller after the fix (not re-exported)"
ctrl_state_is "$A" live || fail "$A not live after the fix"
rr_rc 0 plan --detailed-exitcode -f /tmp/state.yaml

step "the attachment moves to host other: other is admitted, vm is dropped and disconnected"
acl_state other
rr_rc 2 plan --detailed-exitcode -f /tmp/state.yaml
grep -E "^ *~ +fix export of disk acl-a: .*admits $OTHER" /tmp/rr.out || fail "plan does not admit the new host"
grep -E "^ *x +disconnect $A " /tmp/rr.out || fail "plan does not disconnect $A"
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
wait_for 30 "acl-a disconnected here" no_ctrl "$N"
assert_eq "$OTHER" "$(allowed)" "allowed_hosts after the move"
B=$(try_connect "$OTHER") || fail "the newly attached host NQN is refused: $(cat /tmp/connect.err)"
wait_for 30 "$B live (as $OTHER)" ctrl_state_is "$B" live
echo 1 >"/sys/class/nvme/$B/delete_controller" # host other is not this VM: its controller is not ours to keep
wait_for 30 "$B gone" no_ctrl "$N"
refused "$HOSTNQN"
refused "$STRANGER"
nqn_state_is "${NQNP}acl-keep" live || fail "acl-keep was touched"

step "attached nowhere: closed to every host"
acl_state ""
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
assert_eq 0 "$(cat "$SUB/attr_allow_any_host")" "attr_allow_any_host of a volume attached nowhere"
refused "$OTHER"
refused "$HOSTNQN"
rr_rc 0 plan --detailed-exitcode -f /tmp/state.yaml
