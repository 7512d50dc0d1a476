package fabric

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxOpenersShown bounds the processes named per device in InUseBy.
const maxOpenersShown = 3

// statRdevFunc returns the device number of the block device path refers to
// (symlinks, including /proc/PID/fd/N, are followed); ok is false for
// anything that is not a block device or cannot be stat'ed.
type statRdevFunc func(path string) (major, minor uint32, ok bool)

// statBlockRdev is the real statRdevFunc: the device number of a block
// device. It asks statx for the file type only and AT_STATX_DONT_SYNC, so a
// process holding a file open on an unresponsive NFS or FUSE mount cannot
// make the scan wait for that server (a plain stat revalidates the
// attributes there). Where statx is missing (before Linux 4.11) or blocked
// (some seccomp profiles) it falls back to stat(2) and st_rdev.
func statBlockRdev(path string) (uint32, uint32, bool) {
	var stx unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, path, unix.AT_STATX_DONT_SYNC, unix.STATX_TYPE, &stx)
	if err == nil {
		if stx.Mask&unix.STATX_TYPE == 0 || uint32(stx.Mode)&unix.S_IFMT != unix.S_IFBLK {
			return 0, 0, false
		}
		return stx.Rdev_major, stx.Rdev_minor, true
	}
	if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM) {
		return 0, 0, false
	}
	return statRdev(path)
}

// statRdev is statBlockRdev through stat(2): st_rdev split the kernel's way.
func statRdev(path string) (uint32, uint32, bool) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, 0, false
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, 0, false
	}
	rdev := uint64(st.Rdev) // uint32 on some architectures
	return unix.Major(rdev), unix.Minor(rdev), true
}

// majMin is the "major:minor" key sysfs `dev` attributes and mountinfo use.
func majMin(major, minor uint32) string {
	return strconv.FormatUint(uint64(major), 10) + ":" + strconv.FormatUint(uint64(minor), 10)
}

// opener is a process holding a block device open.
type opener struct {
	pid  int
	comm string
}

func (o opener) String() string {
	if o.comm == "" {
		return "pid " + strconv.Itoa(o.pid)
	}
	return "pid " + strconv.Itoa(o.pid) + " (" + o.comm + ")"
}

// usageTable is what one scan says about block devices beyond mounts and
// sysfs holders: which processes hold each one open (/proc/PID/fd), which
// are active swap (/proc/swaps) and which back a loop device (loop does not
// link itself under holders/).
type usageTable struct {
	open  map[string][]opener // "major:minor" -> openers, by pid
	swap  pathRefs
	loops pathRefs // values: the loop devices' names
}

// openedBy describes the processes holding mm open ("" when none): at most
// maxOpenersShown by pid, then "and N more".
func (u *usageTable) openedBy(mm string) string {
	ops := u.open[mm]
	if len(ops) == 0 || mm == "" {
		return ""
	}
	shown := ops
	if len(shown) > maxOpenersShown {
		shown = shown[:maxOpenersShown]
	}
	parts := make([]string, len(shown))
	for i, o := range shown {
		parts[i] = o.String()
	}
	s := strings.Join(parts, ", ")
	if n := len(ops) - len(shown); n > 0 {
		s += " and " + strconv.Itoa(n) + " more"
	}
	return s
}

// pathRefs records block devices named by a path (a swap area, a loop
// device's backing file): by major:minor when the path, or the device of
// the same name under DevRoot, can be stat'ed; else by the device's name.
type pathRefs struct {
	byNum  map[string][]string
	byName map[string][]string
}

// add records path for who. byNameOK allows the fallbacks by name (the
// path is known to name a device node).
func (r *pathRefs) add(path, dev, who string, byNameOK bool, stat statRdevFunc) {
	if r.byNum == nil {
		r.byNum, r.byName = map[string][]string{}, map[string][]string{}
	}
	if major, minor, ok := stat(path); ok {
		mm := majMin(major, minor)
		r.byNum[mm] = append(r.byNum[mm], who)
		return
	}
	if !byNameOK {
		return
	}
	base := filepath.Base(path)
	if major, minor, ok := stat(filepath.Join(dev, base)); ok {
		mm := majMin(major, minor)
		r.byNum[mm] = append(r.byNum[mm], who)
		return
	}
	r.byName[base] = append(r.byName[base], who)
}

// lookup returns who refers to the device name with major:minor mm.
func (r *pathRefs) lookup(name, mm string) []string {
	var out []string
	if mm != "" {
		out = append(out, r.byNum[mm]...)
	}
	return append(out, r.byName[name]...)
}

// readUsage reads, once per scan: every process's open block devices (self,
// our own pid, not counted), /proc/swaps and the loop devices' backing files.
func readUsage(proc, sysfs, dev string, self int, stat statRdevFunc) (*usageTable, error) {
	open, err := scanOpeners(proc, self, stat)
	if err != nil {
		return nil, err
	}
	u := &usageTable{open: open}
	if err := readSwaps(&u.swap, filepath.Join(proc, "swaps"), dev, stat); err != nil {
		return nil, err
	}
	readLoops(&u.loops, sysfs, dev, stat)
	return u, nil
}

// scanOpeners reads /proc/PID/fd/* of every process but self and maps each
// open block device's "major:minor" to its openers, sorted by pid. A
// readlink first skips sockets, pipes and anonymous inodes without a stat.
// Processes that vanish mid-scan or whose fds are unreadable are skipped.
// A missing proc is an empty table.
func scanOpeners(proc string, self int, stat statRdevFunc) (map[string][]opener, error) {
	names, err := readDirNames(proc)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string][]opener{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("scan open devices: %w", err)
	}
	out := map[string][]opener{}
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid <= 0 || pid == self {
			continue // self, thread-self, sys, ...: not a process
		}
		fdDir := proc + "/" + name + "/fd"
		fds, err := readDirNames(fdDir)
		if err != nil {
			continue // gone (ENOENT, ESRCH), a kernel thread, or not ours to read (EACCES)
		}
		var (
			seen map[string]bool
			comm string
		)
		for _, fd := range fds {
			p := fdDir + "/" + fd
			target, err := os.Readlink(p)
			if err != nil || !strings.HasPrefix(target, "/") {
				continue // closed meanwhile, or socket:[..], pipe:[..], anon_inode:..
			}
			major, minor, ok := stat(p)
			if !ok {
				continue
			}
			mm := majMin(major, minor)
			if seen[mm] {
				continue // one process, several fds on one device
			}
			if seen == nil {
				seen = map[string]bool{}
				comm = readAttr(proc+"/"+name, "comm")
			}
			seen[mm] = true
			out[mm] = append(out[mm], opener{pid: pid, comm: comm})
		}
	}
	for _, ops := range out {
		sort.Slice(ops, func(i, j int) bool { return ops[i].pid < ops[j].pid })
	}
	return out, nil
}

// readDirNames lists a directory's names unsorted (cheaper than os.ReadDir
// for /proc/PID/fd).
func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// readSwaps parses /proc/swaps into r: each active swap area of type
// "partition" (a swap file lives on a mounted file system, which the mount
// check sees). The kernel names the device node it opened, escaped like
// mountinfo. A missing file is no swap.
func readSwaps(r *pathRefs, path, dev string, stat statRdevFunc) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read swaps: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[1] != "partition" {
			continue // the header, a swap file, a malformed line
		}
		name := strings.TrimSuffix(UnescapeMountInfo(f[0]), " (deleted)")
		r.add(name, dev, "swap", true, stat)
	}
	return nil
}

// readLoops records the backing file of every bound loop device in r. A
// loop device keeps its backing block device open from the kernel and does
// not appear under the device's holders/. A backing path that cannot be
// stat'ed is matched by name only under /dev (a regular file elsewhere may
// have any name).
func readLoops(r *pathRefs, sysfs, dev string, stat statRdevFunc) {
	blocks, _ := readDirNames(filepath.Join(sysfs, "block"))
	for _, b := range blocks {
		if !strings.HasPrefix(b, "loop") {
			continue
		}
		bf := readAttr(filepath.Join(sysfs, "block", b, "loop"), "backing_file")
		if bf == "" {
			continue // not bound
		}
		bf = strings.TrimSuffix(bf, " (deleted)")
		r.add(bf, dev, b, strings.HasPrefix(bf, "/dev/"), stat)
	}
}
