# ownership: only controllers that are provably this state's are touched.
# Two simulated RDS on one host (127.0.0.1 and 127.0.0.2, both port 4420,
# both with MikroTik's default NQN prefix), one state file each: applying
# one never changes the other's controllers and both plans stay empty.
# Controllers of disks made by hand on the same RDS, and the same NQN
# reached at a second address, are foreign too. A state that declares no
# volume for this host disconnects nothing without --allow-mass-detach.
start_sim
SIMB_DIR=/run/simb
SIMB_SSH=127.0.0.1:2223
mkdir -p "$SIMB_DIR"
log "\$ rds-reconcile sim --backend nvmet --listen $SIMB_SSH --dir $SIMB_DIR --nvmet-addr 127.0.0.2"
bg simb rds-reconcile sim --backend nvmet --listen "$SIMB_SSH" --dir "$SIMB_DIR" --nvmet-addr 127.0.0.2
simb_ready() {
	kill -0 "$(cat /tmp/simb.pid)" 2>/dev/null || { cat /tmp/simb.err; fail "second sim exited"; }
	listening "${SIMB_SSH##*:}" && grep -q '^target:' /tmp/simb.out
}
wait_for 60 "second sim listening" simb_ready
sed -n '/^target:/,/^[^ ]/p' /tmp/simb.out | sed '/^target:/!{/^[^ ]/d}' >/tmp/targetb.block
grep -q 'address: 127.0.0.2' /tmp/targetb.block || { cat /tmp/targetb.block; fail "second sim's target is not 127.0.0.2"; }

mkdir -p /tmp/a /tmp/b
make_state /tmp/a/state.yaml <<'EOT'
volumes:
  - name: own-a1
    size: 16Mi
    attachments: [vm]
  - name: own-a2
    size: 16Mi
    attachments: [vm]
EOT
TARGET_BLOCK=/tmp/targetb.block make_state /tmp/b/state.yaml <<'EOT'
volumes:
  - name: own-b1
    size: 16Mi
    attachments: [vm]
EOT
# addr_of CTRL: its traddr:trsvcid.
addr_of() { ctrl_attr "$1" address | sed 's/.*traddr=\([^,]*\),trsvcid=\([0-9]*\).*/\1:\2/'; }

step "two RDS, default prefix: apply A, apply B, both plans empty"
rr_rc 0 apply --auto-approve -f /tmp/a/state.yaml
rr_rc 0 apply --auto-approve -f /tmp/b/state.yaml
for v in own-a1 own-a2 own-b1; do nqn_state_is "$NQNP$v" live || fail "$v not live"; done
assert_eq 127.0.0.2:4420 "$(addr_of "$(ctrl "${NQNP}own-b1")")" "own-b1 is connected to the second RDS"
B1=$(ctrl "${NQNP}own-b1") A1=$(ctrl "${NQNP}own-a1") A2=$(ctrl "${NQNP}own-a2")
rr_rc 0 plan --detailed-exitcode -f /tmp/a/state.yaml
grep -q "1 controller(s) on this host under the managed NQN prefix are not this state's" /tmp/rr.out ||
	fail "plan A does not count B's controller as foreign"
rr_rc 0 plan --detailed-exitcode -v -f /tmp/a/state.yaml
grep -E "^ +$B1 +${NQNP}own-b1 +127.0.0.2:4420 .*not this state's target" /tmp/rr.out || fail "plan -v does not list $B1 as foreign"
rr_rc 0 plan --detailed-exitcode -f /tmp/b/state.yaml
grep -q "2 controller(s) on this host" /tmp/rr.out || fail "plan B does not count A's two controllers as foreign"

step "no flap: applying each again changes nothing of the other"
for i in 1 2; do
	rr_rc 0 apply --auto-approve -f /tmp/a/state.yaml
	rr_rc 0 apply --auto-approve -f /tmp/b/state.yaml
done
assert_eq "$B1" "$(ctrl "${NQNP}own-b1")" "own-b1's controller after A and B applied twice"
assert_eq "$A1 $A2" "$(ctrl "${NQNP}own-a1") $(ctrl "${NQNP}own-a2")" "A's controllers after A and B applied twice"
rr_rc 0 plan --detailed-exitcode -f /tmp/a/state.yaml
rr_rc 0 plan --detailed-exitcode -f /tmp/b/state.yaml

step "status of A: B's controller is foreign, not an orphan"
rr_rc 0 status -o json -f /tmp/a/state.yaml
cp /tmp/rr.out /tmp/status.json
assert_eq 0 "$(e2etool json 'orphans.#' /tmp/status.json)" "orphans in A's status"
assert_eq "$B1" "$(e2etool json 'foreign[0].controller' /tmp/status.json)" "foreign controller in A's status"

step "disks made by hand on RDS A (slotPrefix empty): their controllers are foreign"
out=$(routeros '/disk add type=file file-path=storage-pool/hand-x.img file-size=16M slot=hand-x nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn="'"$NQNP"'hand-x"') ||
	fail "routeros: $out"
out=$(routeros '/disk add type=file file-path=storage-pool/volumes/hand-y.img file-size=16M slot=hand-y nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn="'"$NQNP"'custom-hand-y"') ||
	fail "routeros: $out"
wait_for 20 "hand-x exported" exported "${NQNP}hand-x"
wait_for 20 "hand-y exported" exported "${NQNP}custom-hand-y"
HX=$(connect_by_hand "${NQNP}hand-x" 4420 -ctrl-loss-tmo 60 -reconnect-delay 2) || fail "connect hand-x"
HY=$(connect_by_hand "${NQNP}custom-hand-y" 4420 -ctrl-loss-tmo 60 -reconnect-delay 2) || fail "connect hand-y"
wait_for 30 "hand-x live" nqn_state_is "${NQNP}hand-x" live
wait_for 30 "hand-y live" nqn_state_is "${NQNP}custom-hand-y" live
rr_rc 0 plan --detailed-exitcode -f /tmp/a/state.yaml
grep -E "^ *x .*hand" /tmp/rr.out && fail "plan disconnects a hand-made disk's controller"
rr_rc 0 apply --auto-approve -f /tmp/a/state.yaml
nqn_state_is "${NQNP}hand-x" live || fail "hand-x's controller was touched"
nqn_state_is "${NQNP}custom-hand-y" live || fail "hand-y's controller was touched"
echo 1 >"/sys/class/nvme/$HX/delete_controller"
echo 1 >"/sys/class/nvme/$HY/delete_controller"

step "same NQN at two addresses: the one at the other address is foreign"
# RDS B's nvmet port (127.0.0.2:4420) also exports own-a1's subsystem.
PB=$(for p in $CFG/ports/*; do [ "$(cat "$p/addr_traddr")" = 127.0.0.2 ] && echo "$p"; done | head -1)
[ -n "$PB" ] || fail "no nvmet port on 127.0.0.2"
ln -s "$CFG/subsystems/${NQNP}own-a1" "$PB/subsystems/${NQNP}own-a1" || fail "link own-a1 to $PB"
echo 1 >"/sys/class/nvme/$A1/delete_controller"
wait_for 30 "$A1 gone" no_ctrl "${NQNP}own-a1"
# The other address's controller comes first (a lower instance).
OTHER=$(e2etool connect -nqn "${NQNP}own-a1" -addr 127.0.0.2 -port 4420 -hostnqn "$HOSTNQN") || fail "connect own-a1 at 127.0.0.2"
wait_for 30 "own-a1 at 127.0.0.2 live" ctrl_state_is "$OTHER" live
show_nvme
rr_rc 2 plan --detailed-exitcode -f /tmp/a/state.yaml
grep -E "^ *\+ +connect ${NQNP}own-a1 at 127.0.0.1:4420" /tmp/rr.out || fail "plan does not connect own-a1 at its own target"
grep -E "^ *(x|-/\+) " /tmp/rr.out && fail "plan disconnects or reconnects something"
rr_rc 0 apply --auto-approve -f /tmp/a/state.yaml
ours=0
for c in $(ctrls "${NQNP}own-a1"); do
	[ "$(addr_of "$c")" = 127.0.0.1:4420 ] && ctrl_state_is "$c" live && ours=$((ours + 1))
done
assert_eq 1 "$ours" "live controllers of own-a1 at 127.0.0.1:4420"
ctrl_state_is "$OTHER" live || fail "the controller at the other address was touched"
rr_rc 0 plan --detailed-exitcode -f /tmp/a/state.yaml
echo 1 >"/sys/class/nvme/$OTHER/delete_controller"
rm "$PB/subsystems/${NQNP}own-a1"

step "a state that declares no volume for this host disconnects nothing without --allow-mass-detach"
make_state /tmp/a/state.yaml <<'EOT'
volumes:
  - name: own-a1
    size: 16Mi
  - name: own-a2
    size: 16Mi
EOT
rr_rc 3 plan --detailed-exitcode -f /tmp/a/state.yaml
grep -q "mass-detach" /tmp/rr.out || fail "plan does not name the mass-detach rule"
rr_rc 0 apply --auto-approve -f /tmp/a/state.yaml
for v in own-a1 own-a2 own-b1; do nqn_state_is "$NQNP$v" live || fail "$v disconnected without --allow-mass-detach"; done
rr_rc 0 apply --auto-approve --allow-mass-detach -f /tmp/a/state.yaml
wait_for 30 "own-a1 disconnected" no_ctrl "${NQNP}own-a1"
wait_for 30 "own-a2 disconnected" no_ctrl "${NQNP}own-a2"
assert_eq "$B1" "$(ctrl "${NQNP}own-b1")" "own-b1's controller after A detached everything"
rr_rc 0 plan --detailed-exitcode -f /tmp/b/state.yaml
