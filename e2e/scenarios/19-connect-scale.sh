# connect-scale (a measurement, issue 14): 20 volumes connected by one
# `apply` against 20 bare connects (one write to /dev/nvme-fabrics each, as
# nvme-cli does), in the same VM and the same run. The kernel serialises
# writes to /dev/nvme-fabrics, so apply's host parallelism cannot beat the
# bare sequence by much; the figure says how much apply adds on top (listing,
# the wait for each block device, verification). It fails only when a volume
# does not connect; the timings are reported by `measure` (docs/e2e.md).
N=20
start_sim

vols() { # vols ATTACH: the volumes: section, each attached to ATTACH ("" = none)
	echo "volumes:"
	i=1
	while [ $i -le $N ]; do
		printf '  - name: e2e-s%02d\n    size: 16Mi\n    attachments: [%s]\n' $i "$1"
		i=$((i + 1))
	done
}

step "create $N volumes on the RDS, none attached"
vols "" | make_state /tmp/create.yaml
rr_rc 0 apply --auto-approve -f /tmp/create.yaml
# One pass over configfs (a per-volume helper costs seconds each under TCG).
exports() { ls "$CFG/subsystems" | grep -c "^${NQNP}e2e-s"; }
assert_eq $N "$(exports)" "subsystems exported"

step "apply connects all $N (timed)"
vols vm | make_state /tmp/attach.yaml
t0=$(now)
rr_rc 0 apply --auto-approve -f /tmp/attach.yaml
apply_s=$(elapsed "$t0")
# apply returns once every block device exists; count both in one pass.
live() { grep -l "^${NQNP}e2e-s" /sys/class/nvme/nvme*/subsysnqn 2>/dev/null | wc -l; }
devs() { ls /dev | grep -c '^nvme[0-9]*n1$'; }
assert_eq $N "$(live)" "controllers of the $N volumes after apply"
assert_eq $N "$(devs)" "namespace block devices after apply"

step "disconnect all $N again (apply, mass detach allowed on purpose)"
rr_rc 0 apply --auto-approve --allow-mass-detach -f /tmp/create.yaml
wait_for 60 "no controllers left" sh -c '! ls /sys/class/nvme/ | grep -q nvme'

step "$N bare connects, one after the other (timed), until every block device exists"
all_devs() { [ "$(devs)" = $N ]; }
t0=$(now)
i=1
while [ $i -le $N ]; do
	connect_by_hand "${NQNP}e2e-s$(printf %02d $i)" 4420 >/dev/null || fail "bare connect e2e-s$i"
	i=$((i + 1))
done
wait_for 60 "$N block devices" all_devs
bare_s=$(elapsed "$t0")
assert_eq $N "$(live)" "controllers after bare connects"

ratio=$(awk -v a="$apply_s" -v b="$bare_s" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
measure "apply connected $N volumes in ${apply_s}s; $N bare connects took ${bare_s}s (ratio ${ratio})"
