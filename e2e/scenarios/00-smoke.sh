# smoke: the VM's kernel NVMe/TCP stack works without the project's code.
# nvmet export over loopback by hand in configfs -> connect with one write to
# /dev/nvme-fabrics (e2etool) -> mkfs.ext4 -> mount -> write -> read back.
NQN=nqn.2000-02.com.example:smoke
mkdir -p /tmp/data
dd if=/dev/zero of=/tmp/data/smoke.img bs=1M count=0 seek=64 2>/dev/null || fail "sparse file"

step "export $NQN on 127.0.0.1:4420 through configfs"
nvmet_export "$NQN" /tmp/data/smoke.img 1 4420 || fail "nvmet export"

step "connect by hand"
c=$(connect_by_hand "$NQN" 4420 -ctrl-loss-tmo 30 -reconnect-delay 2 -keep-alive-tmo 7) || fail "connect"
log "controller $c"
wait_for 30 "$c live" ctrl_state_is "$c" live
wait_for 30 "block device of $c" dev_ready "$c"
dev=$(ns_dev "$c")
assert_eq 2 "$(ctrl_attr "$c" reconnect_delay)" "reconnect_delay"
assert_eq 30 "$(ctrl_attr "$c" ctrl_loss_tmo)" "ctrl_loss_tmo"
assert_eq 7 "$(ctrl_attr "$c" kato)" "kato"
assert_eq 67108864 "$(dev_size "$dev")" "size of $dev"

step "mkfs, mount, write, read back"
mkfs_mount "$dev" /mnt/smoke
write_data /mnt/smoke
verify_data /mnt/smoke
umount /mnt/smoke
echo 1 >"/sys/class/nvme/$c/delete_controller"
wait_for 30 "$c gone" no_ctrl "$NQN"
