package csi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"golang.org/x/sys/unix"
)

// Mounter is everything the node does to filesystems and mount points. The
// Linux implementation calls mount(2) and the e2fsprogs/xfsprogs tools;
// tests may substitute a fake, but the csi-sanity test runs the real one.
type Mounter interface {
	// Mount mounts the filesystem on source at target with CSI mount flags.
	Mount(ctx context.Context, source, target, fsType string, flags []string) error
	// BindMount makes source (a directory or a device file) visible at
	// target, read-only when ro.
	BindMount(ctx context.Context, source, target string, ro bool) error
	// Unmount unmounts target; a target that is not mounted is not an error.
	Unmount(ctx context.Context, target string) error
	// IsMountPoint reports whether target is a mount point (bind mounts of
	// files included).
	IsMountPoint(target string) (bool, error)
	// BlkidType is the filesystem type on device, "" when blkid finds none.
	BlkidType(ctx context.Context, device string) (string, error)
	// Format makes a filesystem of fsType on device.
	Format(ctx context.Context, device, fsType string) error
	// Resize grows the filesystem on device (mounted at mountPath) to the
	// size of the device.
	Resize(ctx context.Context, device, mountPath, fsType string) error
}

// LinuxMounter is the Mounter of a real Linux host.
type LinuxMounter struct{}

var _ Mounter = LinuxMounter{}

// mountFlagBits are the CSI mount flags that are mount(2) flags; any other
// flag is passed to the filesystem as data ("discard", "data=ordered").
var mountFlagBits = map[string]uintptr{
	"ro":         unix.MS_RDONLY,
	"rw":         0,
	"defaults":   0,
	"noatime":    unix.MS_NOATIME,
	"nodiratime": unix.MS_NODIRATIME,
	"relatime":   unix.MS_RELATIME,
	"nosuid":     unix.MS_NOSUID,
	"nodev":      unix.MS_NODEV,
	"noexec":     unix.MS_NOEXEC,
	"sync":       unix.MS_SYNCHRONOUS,
	"dirsync":    unix.MS_DIRSYNC,
}

// splitMountFlags turns CSI mount flags into mount(2) flags and data.
func splitMountFlags(flags []string) (uintptr, string, error) {
	var bits uintptr
	var data []string
	for _, f := range flags {
		for _, o := range strings.Split(f, ",") {
			o = strings.TrimSpace(o)
			if o == "" {
				continue
			}
			if strings.ContainsAny(o, " \t\n\x00") {
				return 0, "", fmt.Errorf("mount flag %q contains whitespace", o)
			}
			if b, ok := mountFlagBits[o]; ok {
				bits |= b
				continue
			}
			data = append(data, o)
		}
	}
	return bits, strings.Join(data, ","), nil
}

// Mount implements Mounter.
func (LinuxMounter) Mount(_ context.Context, source, target, fsType string, flags []string) error {
	bits, data, err := splitMountFlags(flags)
	if err != nil {
		return err
	}
	if err := unix.Mount(source, target, fsType, bits, data); err != nil {
		return fmt.Errorf("mount %s on %s (%s): %w", source, target, fsType, err)
	}
	return nil
}

// BindMount implements Mounter. A read-only bind needs a second remount
// call: the kernel ignores MS_RDONLY on the first MS_BIND.
func (LinuxMounter) BindMount(_ context.Context, source, target string, ro bool) error {
	if err := unix.Mount(source, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind mount %s on %s: %w", source, target, err)
	}
	if ro {
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			_ = unix.Unmount(target, 0)
			return fmt.Errorf("remount %s read-only: %w", target, err)
		}
	}
	return nil
}

// Unmount implements Mounter.
func (m LinuxMounter) Unmount(_ context.Context, target string) error {
	mounted, err := m.IsMountPoint(target)
	if err != nil || !mounted {
		return err
	}
	if err := unix.Unmount(target, 0); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	return nil
}

// IsMountPoint implements Mounter by reading /proc/self/mountinfo: comparing
// device numbers with the parent misses bind mounts of the same filesystem.
func (LinuxMounter) IsMountPoint(target string) (bool, error) {
	p, err := filepath.EvalSymlinks(target)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("checking mount point %s: %w", target, err)
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, fmt.Errorf("reading mountinfo: %w", err)
	}
	return mountInfoHas(data, p), nil
}

// mountInfoHas reports whether mountinfo lists path as a mount point.
func mountInfoHas(mountinfo []byte, path string) bool {
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && fabric.UnescapeMountInfo(fields[4]) == path {
			return true
		}
	}
	return false
}

// BlkidType implements Mounter. blkid -p probes the device itself (not the
// cache); exit status 2 means it found nothing, which is the only case in
// which the node formats.
func (LinuxMounter) BlkidType(ctx context.Context, device string) (string, error) {
	out, err := exec.CommandContext(ctx, "blkid", "-p", "-s", "TYPE", "-o", "value", device).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 2 {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("blkid %s: %w%s", device, err, stderrOf(err))
	}
	t := strings.TrimSpace(string(out))
	if t == "" {
		// Something (a partition table, RAID member) is there but has no
		// TYPE; refuse to treat that as blank.
		return "unknown", nil
	}
	return t, nil
}

// Format implements Mounter.
func (LinuxMounter) Format(ctx context.Context, device, fsType string) error {
	var cmd *exec.Cmd
	switch fsType {
	case "ext4":
		// Lazy init keeps formatting a large volume fast; the kernel
		// finishes the inode tables in the background.
		cmd = exec.CommandContext(ctx, "mkfs.ext4", "-F", "-q", "-E", "lazy_itable_init=1,lazy_journal_init=1", device)
	case "xfs":
		cmd = exec.CommandContext(ctx, "mkfs.xfs", "-q", device)
	default:
		return fmt.Errorf("cannot format %s: filesystem %q is not supported", device, fsType)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.%s %s: %w: %s", fsType, device, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Resize implements Mounter: resize2fs grows ext4 online by device,
// xfs_growfs by mount point.
func (LinuxMounter) Resize(ctx context.Context, device, mountPath, fsType string) error {
	var cmd *exec.Cmd
	switch fsType {
	case "ext2", "ext3", "ext4":
		cmd = exec.CommandContext(ctx, "resize2fs", device)
	case "xfs":
		cmd = exec.CommandContext(ctx, "xfs_growfs", mountPath)
	default:
		return fmt.Errorf("cannot grow filesystem %q on %s", fsType, device)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("growing %s on %s: %w: %s", fsType, device, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return ": " + strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}
