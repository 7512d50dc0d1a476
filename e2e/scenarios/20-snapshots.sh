# snapshots (issue 13): through the real kernel, a snapshot keeps a
# volume's data as it was: write, snapshot, overwrite, restore the snapshot
# into a new volume, mount it and read the ORIGINAL bytes back; a clone of a
# volume reads the volume's bytes; deleting the snapshot while the restored
# volume is mounted works (copies are independent) and the restored volume
# still reads. The simulator's nvmet backend copies the backing file (no
# reflink on the VM's file system: the extents are read one after the
# other), so the source is unmounted before each copy: the copy is then the
# filesystem as written, not a crash-consistent image (docs/reconcile.md).
start_sim
# snap_state SNAPSHOT_STATE EXTRA_VOLUMES: the state with the source
# volume, snapshot snap-e2e-1 (present or absent) and more volumes.
snap_state() {
	make_state /tmp/state.yaml <<EOT
volumes:
  - name: e2e-src
    size: 32Mi
    attachments: [vm]
$2
snapshots:
  - name: snap-e2e-1
    volume: e2e-src
    state: $1
EOT
}
# md5_of DIR: the checksum of DIR/data.bin read from the device.
md5_of() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	md5sum <"$1/data.bin" | cut -d' ' -f1
}

step "a volume with data"
make_state /tmp/state.yaml <<'EOT'
volumes:
  - name: e2e-src
    size: 32Mi
    attachments: [vm]
EOT
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
src=$(vol_dev e2e-src) || fail "no device for e2e-src"
mkfs_mount "$src" /mnt/src
dd if=/dev/urandom of=/mnt/src/data.bin bs=64k count=16 2>/dev/null || fail "write"
orig=$(md5_of /mnt/src)
umount /mnt/src || fail "umount /mnt/src"

step "snapshot: a disk of its own, not exported; the plan says the volume is in use"
snap_state present ""
rr_rc 2 plan --detailed-exitcode -f /tmp/state.yaml
grep -q '+   snapshot volume e2e-src into disk snap-e2e-1' /tmp/rr.out || fail "plan does not show the snapshot"
grep -q 'crash-consistent copy of a volume in use' /tmp/rr.out || fail "plan does not note the volume in use"
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
[ -n "$(backing_file snap-e2e-1)" ] || fail "no backing file for snap-e2e-1: $(backing_files)"
not_exported "${NQNP}snap-e2e-1" || fail "snap-e2e-1 is exported"
rr_rc 0 plan --detailed-exitcode -f /tmp/state.yaml

step "overwrite the volume"
mount -t ext4 "$src" /mnt/src || fail "mount $src"
dd if=/dev/urandom of=/mnt/src/data.bin bs=64k count=16 conv=notrunc 2>/dev/null || fail "overwrite"
now_sum=$(md5_of /mnt/src)
[ "$now_sum" != "$orig" ] || fail "the overwrite changed nothing"
umount /mnt/src || fail "umount /mnt/src"

step "restore the snapshot into a new volume and a clone of the volume: the plan shows their sources"
snap_state present "  - name: e2e-restored
    size: 32Mi
    attachments: [vm]
    source: {snapshot: snap-e2e-1}
  - name: e2e-clone
    size: 48Mi
    attachments: [vm]
    source: {volume: e2e-src}"
rr_rc 2 plan --detailed-exitcode -f /tmp/state.yaml
grep -q '+   create disk e2e-restored from snapshot snap-e2e-1' /tmp/rr.out || fail "plan does not show the restore's source"
grep -q '+   create disk e2e-clone from volume e2e-src: 48Mi grown from 32Mi' /tmp/rr.out || fail "plan does not show the clone's source"
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
rdev=$(vol_dev e2e-restored) || fail "no device for e2e-restored"
cdev=$(vol_dev e2e-clone) || fail "no device for e2e-clone"
assert_eq 50331648 "$(dev_size "$cdev")" "clone size"
mkdir -p /mnt/restored /mnt/clone
mount -t ext4 "$rdev" /mnt/restored || fail "mount the restored volume"
assert_eq "$orig" "$(md5_of /mnt/restored)" "restored data (the snapshot's, not the overwrite)"
mount -t ext4 "$cdev" /mnt/clone || fail "mount the clone"
assert_eq "$now_sum" "$(md5_of /mnt/clone)" "clone data (the volume's at clone time)"
rr_rc 0 plan --detailed-exitcode -f /tmp/state.yaml

step "delete the snapshot while the restored volume is mounted: the copy stays"
snap_state absent "  - name: e2e-restored
    size: 32Mi
    attachments: [vm]
    source: {snapshot: snap-e2e-1}
  - name: e2e-clone
    size: 48Mi
    attachments: [vm]
    source: {volume: e2e-src}"
rr_rc 2 plan --detailed-exitcode -f /tmp/state.yaml
grep -q -e '-   delete snapshot snap-e2e-1' /tmp/rr.out || fail "plan does not delete the snapshot"
rr_rc 0 apply --auto-approve -f /tmp/state.yaml
[ -z "$(backing_file snap-e2e-1)" ] || fail "snap-e2e-1's file is still there"
assert_eq "$orig" "$(md5_of /mnt/restored)" "restored data after the snapshot is gone"
echo more >/mnt/restored/after.txt && sync || fail "write to the restored volume"
nqn_state_is "${NQNP}e2e-restored" live || fail "e2e-restored's controller is not live"
rr_rc 0 plan --detailed-exitcode -f /tmp/state.yaml
umount /mnt/restored /mnt/clone
