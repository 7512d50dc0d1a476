# Shell helpers for the e2e scenarios, sourced by /init and by each scenario
# (busybox sh). Waits poll with generous deadlines: the VM runs under TCG on a
# shared machine, so a fixed sleep is never used to decide correctness.

CFG=/sys/kernel/config/nvmet
HOSTNQN=$(cat /etc/nvme/hostnqn 2>/dev/null)
SIM_DIR=/run/sim
SIM_SSH=127.0.0.1:2222
PIDS=/tmp/e2e.pids

now() { cut -d' ' -f1 /proc/uptime; }
# elapsed T0: seconds since T0 (a now() value), one decimal.
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "[$(now)] $*"; }
step() { echo; echo "[$(now)] == $*"; }
fail() { echo "[$(now)] FAIL: $*"; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }

# wait_for SECS DESC CMD...: poll CMD every 0.2 s until it succeeds; fail after SECS.
wait_for() {
	_secs=$1 _desc=$2
	shift 2
	_t0=$(now)
	while ! "$@" >/dev/null 2>&1; do
		if awk -v a="$_t0" -v b="$(now)" -v s="$_secs" 'BEGIN { exit !(b - a > s) }'; then
			echo "[$(now)] last try of: $*"
			"$@" 2>&1 | tail -20
			fail "timed out after ${_secs}s waiting for: $_desc"
		fi
		sleep 0.2
	done
	log "ok after $(elapsed "$_t0")s: $_desc"
}

# poll SECS CMD...: like wait_for, but returns 1 on timeout instead of failing.
poll() {
	_psecs=$1
	shift
	_pt0=$(now)
	while ! "$@" >/dev/null 2>&1; do
		awk -v a="$_pt0" -v b="$(now)" -v s="$_psecs" 'BEGIN { exit !(b - a > s) }' && return 1
		sleep 0.2
	done
	return 0
}

# known_bug TEXT: the scenario worked around a bug in the product; the note
# is printed with the results so the workaround is never silent.
known_bug() {
	log "KNOWN BUG, worked around: $*"
	echo "$*" >>/tmp/e2e.notes
}

# measure TEXT: a figure the run reports apart from pass/fail (docs/e2e.md).
measure() {
	log "MEASURE $*"
	echo "$*" >>/tmp/e2e.measure
}

# assert_eq WANT GOT DESC
assert_eq() {
	[ "$1" = "$2" ] || fail "$3: want '$1', got '$2'"
	log "ok: $3 = '$2'"
}

# --- kernel NVMe host view ----------------------------------------------------

# ctrls NQN: controller names (nvmeN) whose subsystem NQN is NQN.
ctrls() {
	for _c in /sys/class/nvme/nvme*; do
		[ -e "$_c/subsysnqn" ] || continue
		[ "$(cat "$_c/subsysnqn" 2>/dev/null)" = "$1" ] && basename "$_c"
	done
	return 0
}
ctrl_count() { ctrls "$1" | wc -l | tr -d ' '; }
# ctrl NQN: the one controller of NQN (fails if none).
ctrl() { ctrls "$1" | head -1 | grep .; }
ctrl_attr() { cat "/sys/class/nvme/$1/$2" 2>/dev/null; }
ctrl_state_is() { [ "$(ctrl_attr "$1" state)" = "$2" ]; }
nqn_state_is() { _c=$(ctrl "$1") && ctrl_state_is "$_c" "$2"; }
no_ctrl() { [ "$(ctrl_count "$1")" = 0 ]; }

# ns_dev CTRL: the block device of its first namespace (/dev/nvmeXnY). Under
# native multipath sysfs shows the path nvmeXcYnZ; the disk is nvmeXnZ.
ns_dev() {
	for _n in /sys/class/nvme/"$1"/nvme*; do
		[ -e "$_n" ] || continue
		_b=$(basename "$_n")
		case "$_b" in
		nvme*c*n*) echo "/dev/$(echo "$_b" | sed 's/c[0-9]*n/n/')"; return 0 ;;
		nvme*n*) echo "/dev/$_b"; return 0 ;;
		esac
	done
	return 1
}
dev_ready() { _d=$(ns_dev "$1") && [ -b "$_d" ]; }
dev_size() { blockdev --getsize64 "$1"; }

show_nvme() {
	for _c in /sys/class/nvme/nvme*; do
		[ -e "$_c/state" ] || continue
		echo "$(basename "$_c") state=$(cat "$_c/state") nqn=$(cat "$_c/subsysnqn") addr=$(cat "$_c/address" 2>/dev/null) ctrl_loss_tmo=$(cat "$_c/ctrl_loss_tmo" 2>/dev/null) reconnect_delay=$(cat "$_c/reconnect_delay" 2>/dev/null) kato=$(cat "$_c/kato" 2>/dev/null) dev=$(ns_dev "$(basename "$_c")")"
	done
	echo "nvmet ports: $(ls $CFG/ports 2>/dev/null | tr '\n' ' ')"
	for _p in $CFG/ports/*; do
		[ -d "$_p" ] && echo "  port $(basename "$_p") $(cat "$_p/addr_traddr"):$(cat "$_p/addr_trsvcid") -> $(ls "$_p/subsystems" | tr '\n' ' ')"
	done
	echo "nvmet subsystems: $(ls $CFG/subsystems 2>/dev/null | tr '\n' ' ')"
	echo "mounts: $(grep nvme /proc/mounts | tr '\n' ';')"
}

# connect_by_hand NQN PORT [e2etool connect flags...]: what an admin running
# nvme-cli would do; prints the controller name.
connect_by_hand() {
	_nqn=$1 _port=$2
	shift 2
	e2etool connect -nqn "$_nqn" -addr 127.0.0.1 -port "$_port" -hostnqn "$HOSTNQN" "$@"
}

# --- nvmet by hand (smoke and faults) ------------------------------------------

# nvmet_export NQN FILE PORTID TRSVCID: export FILE as namespace 1 of NQN.
nvmet_export() {
	_s=$CFG/subsystems/$1 _p=$CFG/ports/$3
	mkdir -p "$_s" || return 1
	echo 1 >"$_s/attr_allow_any_host"
	mkdir -p "$_s/namespaces/1"
	echo "$2" >"$_s/namespaces/1/device_path"
	echo 1 >"$_s/namespaces/1/buffered_io" # tmpfs has no O_DIRECT
	echo 1 >"$_s/namespaces/1/enable" || return 1
	if [ ! -d "$_p" ]; then
		mkdir "$_p"
		echo ipv4 >"$_p/addr_adrfam"
		echo tcp >"$_p/addr_trtype"
		echo 127.0.0.1 >"$_p/addr_traddr"
		echo "$4" >"$_p/addr_trsvcid"
	fi
	ln -s "$_s" "$_p/subsystems/$1"
}

# port_of NQN: the nvmet port folder(s) exporting NQN.
ports_of() {
	for _p in $CFG/ports/*; do
		[ -e "$_p/subsystems/$1" ] && echo "$_p"
	done
	return 0
}
# outage_begin NQN: remove NQN's port links (the target goes away for the host).
outage_begin() {
	: >/tmp/outage.$$
	for _p in $(ports_of "$1"); do
		rm "$_p/subsystems/$1" && echo "$_p" >>/tmp/outage.$$
	done
	[ -s /tmp/outage.$$ ] || fail "no nvmet port exports $1"
	log "outage: unlinked $1 from $(cat /tmp/outage.$$ | tr '\n' ' ')"
}
outage_end() {
	for _p in $(cat /tmp/outage.$$); do
		ln -s "$CFG/subsystems/$1" "$_p/subsystems/$1" || fail "relink $1 to $_p"
	done
	log "outage over: $1 linked again"
}

# --- data ------------------------------------------------------------------------

# mkfs_mount DEV DIR
mkfs_mount() {
	mkfs.ext4 -q -F "$1" >/tmp/mkfs.log 2>&1 || { cat /tmp/mkfs.log; fail "mkfs.ext4 $1"; }
	mkdir -p "$2"
	mount -t ext4 "$1" "$2" || fail "mount $1 $2"
}
# write_data DIR: a random 1 MiB file and its checksum next to it (outside DIR).
write_data() {
	dd if=/dev/urandom of="$1/data.bin" bs=64k count=16 2>/dev/null || fail "write $1/data.bin"
	sync
	md5sum <"$1/data.bin" >"/tmp/sum.$(echo "$1" | tr / _)"
}
# verify_data DIR: checksum matches what write_data wrote, read from the device
# (page cache dropped first).
verify_data() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	_want=$(cat "/tmp/sum.$(echo "$1" | tr / _)")
	_got=$(md5sum <"$1/data.bin") || fail "read $1/data.bin"
	assert_eq "$_want" "$_got" "checksum of $1/data.bin"
}

# --- the product -----------------------------------------------------------------

# bg NAME CMD...: run CMD in the background, output in /tmp/NAME.out/.err;
# its pid is remembered so e2e_reset can stop it.
bg() {
	_name=$1
	shift
	"$@" >"/tmp/$_name.out" 2>"/tmp/$_name.err" &
	echo $! >>"$PIDS"
	echo $! >"/tmp/$_name.pid"
}

# rr ARGS...: the reconciler CLI as host "vm", output to the log.
rr() { rds-reconcile --host vm "$@"; }

# rr_rc WANT ARGS...: run the CLI (output logged), assert its exit code.
rr_rc() {
	_want=$1
	shift
	log "\$ rds-reconcile --host vm $*"
	rr "$@" >/tmp/rr.out 2>&1
	_rc=$?
	cat /tmp/rr.out
	[ "$_rc" = "$_want" ] || fail "rds-reconcile $*: exit $_rc, want $_want"
}

# --- cleanup between scenarios ------------------------------------------------------

e2e_reset() {
	if [ -s "$PIDS" ]; then
		for _p in $(cat "$PIDS"); do kill -9 "$_p" 2>/dev/null; done
		: >"$PIDS"
	fi
	killall -9 rds-reconcile csi-sanity csi.test 2>/dev/null
	# Scenarios mount under /mnt; the CSI driver under /tmp/csi (staging, targets).
	for _m in $(grep -E ' /(mnt|tmp/csi)/' /proc/mounts | cut -d' ' -f2 | sort -r); do umount -l "$_m"; done
	for _c in /sys/class/nvme/nvme*; do
		[ -e "$_c/delete_controller" ] && echo 1 >"$_c/delete_controller" 2>/dev/null
	done
	_t0=$(now)
	while ls /sys/class/nvme/ 2>/dev/null | grep -q nvme; do
		awk -v a="$_t0" -v b="$(now)" 'BEGIN { exit !(b - a > 30) }' && { echo "reset: controllers left: $(ls /sys/class/nvme)"; break; }
		sleep 0.2
	done
	for _p in $CFG/ports/*; do
		[ -d "$_p" ] || continue
		for _l in "$_p"/subsystems/*; do [ -L "$_l" ] && rm "$_l"; done
		rmdir "$_p"
	done
	for _s in $CFG/subsystems/*; do
		[ -d "$_s" ] || continue
		for _n in "$_s"/namespaces/*; do
			[ -d "$_n" ] || continue
			echo 0 >"$_n/enable"
			rmdir "$_n"
		done
		for _h in "$_s"/allowed_hosts/*; do [ -L "$_h" ] && rm "$_h"; done
		rmdir "$_s"
	done
	for _h in $CFG/hosts/*; do [ -d "$_h" ] && rmdir "$_h"; done
	rm -rf "$SIM_DIR" /tmp/.rds-reconcile.applied.json /tmp/csi /tmp/e2e.notes /tmp/e2e.measure /tmp/*.out /tmp/*.err /tmp/*.pid /tmp/*.yaml /tmp/data /tmp/sum.* /tmp/outage.*
	return 0
}

# require CMD...: skip the scenario when a CLI command is still a placeholder.
require() {
	for _cmd in "$@"; do
		if rds-reconcile "$_cmd" --help 2>&1 | grep -q 'not yet available'; then
			skip "rds-reconcile $_cmd is not implemented yet"
		fi
	done
}

# --- the simulated RDS (rds-reconcile sim --backend nvmet) -------------------------

NQNP="nqn.2000-02.com.mikrotik:"

# listening PORT: something listens on TCP PORT (from /proc/net/tcp).
listening() {
	_hex=$(printf ':%04X ' "$1")
	grep -q "$_hex[0-9A-F:]* 0A " /proc/net/tcp 2>/dev/null
}

# start_sim [FLAGS...]: the RDS simulator with the nvmet backend, waited for
# until it listens and has printed its target: block.
start_sim() {
	require sim plan apply
	rds-reconcile sim --help 2>&1 | grep -q -- --nvmet-addr || skip "rds-reconcile sim has no --nvmet-addr (nvmet backend not landed)"
	mkdir -p "$SIM_DIR"
	log "\$ rds-reconcile sim --backend nvmet --listen $SIM_SSH --dir $SIM_DIR --nvmet-addr 127.0.0.1 $*"
	bg sim rds-reconcile sim --backend nvmet --listen "$SIM_SSH" --dir "$SIM_DIR" --nvmet-addr 127.0.0.1 "$@"
	wait_for 60 "sim listening on $SIM_SSH and printing target:" sim_ready
	sed -n '/^target:/,/^[^ ]/p' /tmp/sim.out | sed '/^target:/!{/^[^ ]/d}' >/tmp/target.block
	log "sim target block:"
	cat /tmp/target.block
}
sim_ready() {
	kill -0 "$(cat /tmp/sim.pid)" 2>/dev/null || { cat /tmp/sim.err; fail "sim exited"; }
	listening "${SIM_SSH##*:}" && grep -q '^target:' /tmp/sim.out
}

# make_state FILE: a state file made of the sim's target block ($TARGET_BLOCK, default /tmp/target.block), the e2e
# defaults, this VM as host "vm", and the volumes: section read from stdin.
make_state() {
	{
		echo "apiVersion: rds-reconcile/v1"
		echo "kind: State"
		cat "${TARGET_BLOCK:-/tmp/target.block}"
		cat <<EOT
defaults:
  connection: {ctrlLossTmo: -1, reconnectDelay: 2, keepAliveTmo: 5}
  retry: {attempts: 4, initialDelay: 500ms, maxDelay: 4s, multiplier: 2, jitter: 0.1}
policy:
  orphans: disconnect
hosts:
  vm: {hostNQN: "$HOSTNQN"}
EOT
		cat
	} >"$1"
}

# backing_files: the .img files under the sim's folder (relative, sorted).
backing_files() { (cd "$SIM_DIR" && find . -name '*.img' | sed 's|^\./||' | sort); }
backing_file() { find "$SIM_DIR" -name "$1.img" | head -1; }
# exported NQN: the subsystem exists, namespace enabled, linked to a port.
exported() {
	[ "$(cat "$CFG/subsystems/$1/namespaces/1/enable" 2>/dev/null)" = 1 ] && [ -n "$(ports_of "$1")" ]
}
not_exported() { [ ! -e "$CFG/subsystems/$1" ]; }

# assert_timeouts NQN CTRL_LOSS RECONNECT KATO: the live controller's sysfs values
# (ctrl_loss_tmo -1 reads back as "off").
assert_timeouts() {
	_c=$(ctrl "$1") || fail "no controller for $1"
	_want=$2
	[ "$_want" = -1 ] && _want=off
	assert_eq "$_want" "$(ctrl_attr "$_c" ctrl_loss_tmo)" "$_c ($1) ctrl_loss_tmo"
	assert_eq "$3" "$(ctrl_attr "$_c" reconnect_delay)" "$_c ($1) reconnect_delay"
	assert_eq "$4" "$(ctrl_attr "$_c" kato)" "$_c ($1) kato"
}

# vol_dev NAME: the block device of volume NAME's controller.
vol_dev() { _c=$(ctrl "$NQNP$1") && ns_dev "$_c"; }

# http_status: the run loop's /status JSON into /tmp/status.json.
http_status() { e2etool http -o /tmp/status.json http://127.0.0.1:9100/status; }
# status_condition_is NAME COND: /status (or status -o json) says NAME is COND.
status_condition_is() {
	http_status || return 1
	[ "$(e2etool json "volumes[name=$1].condition" /tmp/status.json)" = "$2" ]
}

# routeros CMD: run a RouterOS command on the simulated RDS over SSH, as an
# operator would, behind the reconciler's back.
routeros() {
	log "routeros> $1" >&2
	e2etool ssh -addr "$SIM_SSH" -user admin -key "$SIM_DIR/client_key" -known-hosts "$SIM_DIR/known_hosts" "$1"
}
