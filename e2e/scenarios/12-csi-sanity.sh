# e2e-timeout: 420
# csi-sanity: kubernetes-csi's csi-sanity (csi-test, the version go.mod pins)
# against `rds-reconcile csi --mode all` on the real kernel: nvmet target
# through the sim, nvme-tcp host, real /dev/nvmeXnY, mkfs.ext4, mount(2),
# blkid -p, resize2fs; mount then block access type. Then an online grow of a
# mounted volume holding data (csi package's TestExternalOnlineGrow), which
# csi-sanity does not do. Afterwards nothing is left: no controller, no disk,
# no backing file, and the layered state plans to nothing.
require csi
blkid --version 2>&1 | grep -q util-linux || fail "blkid is not util-linux's (the CSI node needs blkid -p): $(blkid --version 2>&1 | head -1)"
start_sim
# No volumes in the base state: every volume comes from CSI requests. The VM is
# host "vm", the --node-id, so ControllerPublish accepts it.
make_state /tmp/base.yaml </dev/null
C=/tmp/csi
# K stands in for /var/lib/kubelet: the node mounts, unmounts and removes
# only below --kubelet-dir, so every staging and target path goes there.
K=$C/kubelet
mkdir -p "$C/state" "$K/gotmp"
EP="unix://$C/csi.sock"
log "\$ rds-reconcile --host vm csi --mode all --node-id vm --endpoint $EP --state-dir $C/state --kubelet-dir $K -f /tmp/base.yaml"
bg csi rds-reconcile --host vm csi --mode all --node-id vm --fabric linux \
	--endpoint "$EP" --state-dir "$C/state" --kubelet-dir "$K" -f /tmp/base.yaml --log-level debug
csi_up() {
	kill -0 "$(cat /tmp/csi.pid)" 2>/dev/null || { tail -20 /tmp/csi.err; fail "the csi driver exited"; }
	test -S "$C/csi.sock"
}
wait_for 30 "csi socket $C/csi.sock" csi_up

# sanity ACCESS: csi-sanity with volumes of ACCESS type (mount or block); it
# skips by itself what the driver does not advertise (modify, group
# snapshots, ...); snapshots, restores and clones run since issue 13.
sanity() {
	step "csi-sanity, access type $1"
	_out=$C/sanity-$1.out
	_t0=$(now)
	csi-sanity --csi.endpoint "$EP" --csi.testvolumesize 16777216 \
		--csi.testvolumeexpandsize 33554432 --csi.testvolumeaccesstype "$1" \
		--csi.mountdir "$K/mount-$1" --csi.stagingdir "$K/staging-$1" \
		--ginkgo.no-color --ginkgo.v >"$_out" 2>&1
	_rc=$?
	log "csi-sanity $1: exit $_rc after $(elapsed "$_t0")s"
	grep -E '^Ran [0-9]+ of [0-9]+ Specs|Passed \|' "$_out"
	if [ "$_rc" != 0 ] || ! grep -qE '(SUCCESS|FAIL)! .* [1-9][0-9]* Passed \| 0 Failed' "$_out"; then
		grep -B2 -A30 '\[FAILED\]' "$_out" | head -150
		tail -20 "$_out"
		fail "csi-sanity $1: exit $_rc, want 0 failed and some passed"
	fi
	log "ok: csi-sanity $1: $(grep -oE '[0-9]+ Passed \| [0-9]+ Failed' "$_out")"
	# What was skipped, and why (capabilities the driver does not advertise).
	grep -E '^ +\[SKIPPED\] ' "$_out" | grep -v '\[SKIPPED\] in \[' | sed 's/^ *//' | sort | uniq -c
	csi_up || fail "the driver died during csi-sanity $1"
}
sanity mount
sanity block

step "online grow of a published ext4 volume holding data"
log "\$ csi.test -test.run '^TestExternalOnlineGrow\$' -test.v"
TMPDIR=$K/gotmp RDS_CSI_TEST_ENDPOINT=$EP csi.test -test.run '^TestExternalOnlineGrow$' -test.v >"$C/grow.out" 2>&1
rc=$?
cat "$C/grow.out"
[ "$rc" = 0 ] || fail "TestExternalOnlineGrow: exit $rc"
grep -q '^--- PASS: TestExternalOnlineGrow' "$C/grow.out" || fail "TestExternalOnlineGrow did not run (skipped?)"

step "nothing is left behind"
no_ctrls() { ! ls /sys/class/nvme/ 2>/dev/null | grep -q nvme; }
wait_for 30 "no NVMe controller left" no_ctrls
assert_eq "" "$(backing_files)" "backing files left in the sim"
assert_eq "" "$(ls "$CFG/subsystems" 2>/dev/null)" "nvmet subsystems left"
assert_eq "" "$(grep -E " $C/" /proc/mounts)" "mounts left under $C"
rr_rc 0 plan --detailed-exitcode -f /tmp/base.yaml -f "$C/state/csi-volumes.yaml"
