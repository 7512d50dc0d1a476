package fabric

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// inUseTree is a fake sys/dev/proc tree with one managed controller nvme0:
// namespace nvme0n1 (259:0) with partition nvme0n1p1 (259:1), plus
// processes that must never count: one with sockets, pipes, an anonymous
// inode and a regular file open, one with another disk (8:0) open.
type inUseTree struct {
	t    *testing.T
	root string
}

func newInUseTree(t *testing.T) *inUseTree {
	tr := &inUseTree{t: t, root: t.TempDir()}
	ctrl := filepath.Join(tr.root, "sys", "class", "nvme", "nvme0")
	for a, v := range map[string]string{"subsysnqn": managed[0] + "vol-a", "transport": "tcp", "state": "live",
		"address": "traddr=10.42.68.1,trsvcid=4420", "delete_controller": ""} {
		writeFile(t, filepath.Join(ctrl, a), v+"\n")
	}
	writeFile(t, filepath.Join(ctrl, "nvme0n1", "dev"), "259:0\n")
	blk := filepath.Join(tr.root, "sys", "block", "nvme0n1")
	writeFile(t, filepath.Join(blk, "size"), "2048\n")
	writeFile(t, filepath.Join(blk, "dev"), "259:0\n")
	tr.mkdir(blk, "holders")
	writeFile(t, filepath.Join(blk, "nvme0n1p1", "dev"), "259:1\n")
	tr.mkdir(blk, "nvme0n1p1", "holders")
	tr.device("nvme0n1", "259:0")
	tr.device("nvme0n1p1", "259:1")
	tr.device("sda", "8:0")
	writeFile(t, filepath.Join(tr.root, "dev", "nvme-fabrics"), "")
	writeFile(t, filepath.Join(tr.root, "proc", "self", "mountinfo"),
		"22 1 8:1 / / rw - ext4 /dev/sda1 rw\n")
	tr.mkdir(tr.root, "proc", "sys") // not a process
	writeFile(t, filepath.Join(tr.root, "var", "log", "app.log"), "")
	tr.process(100, "sshd", "socket:[1234]", "pipe:[99]", "anon_inode:[eventfd]", filepath.Join(tr.root, "var", "log", "app.log"))
	tr.process(101, "smartd", filepath.Join(tr.root, "dev", "sda"))
	return tr
}

func (tr *inUseTree) mkdir(elem ...string) {
	if err := os.MkdirAll(filepath.Join(elem...), 0o755); err != nil {
		tr.t.Fatal(err)
	}
}

// device makes the fake node dev/NAME for block device majmin.
func (tr *inUseTree) device(name, majmin string) string {
	p := filepath.Join(tr.root, "dev", name)
	writeFile(tr.t, p, majmin+"\n")
	return p
}

func (tr *inUseTree) dev(name string) string { return filepath.Join(tr.root, "dev", name) }

// process adds proc/PID with comm and one fd per target (numbered from 3),
// symlinks the way the kernel shows them.
func (tr *inUseTree) process(pid int, comm string, targets ...string) {
	dir := filepath.Join(tr.root, "proc", strconv.Itoa(pid))
	tr.mkdir(dir, "fd")
	writeFile(tr.t, filepath.Join(dir, "comm"), comm+"\n")
	for i, target := range targets {
		if err := os.Symlink(target, filepath.Join(dir, "fd", strconv.Itoa(3+i))); err != nil {
			tr.t.Fatal(err)
		}
	}
}

// loop adds sys/block/NAME, bound to backing (unbound when "").
func (tr *inUseTree) loop(name, backing string) {
	dir := filepath.Join(tr.root, "sys", "block", name)
	writeFile(tr.t, filepath.Join(dir, "dev"), "7:"+strings.TrimPrefix(name, "loop")+"\n")
	tr.mkdir(dir, "holders")
	if backing != "" {
		writeFile(tr.t, filepath.Join(dir, "loop", "backing_file"), backing+"\n")
	}
}

func (tr *inUseTree) mountinfo(line string) {
	p := filepath.Join(tr.root, "proc", "self", "mountinfo")
	b, _ := os.ReadFile(p)
	writeFile(tr.t, p, string(b)+line+"\n")
}

func (tr *inUseTree) swaps(lines ...string) {
	writeFile(tr.t, filepath.Join(tr.root, "proc", "swaps"),
		"Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"+strings.Join(lines, "\n")+"\n")
}

func (tr *inUseTree) linux() *Linux {
	k := newFakeKernel(tr.t, tr.root)
	return k.linux(LinuxOptions{ManagedPrefixes: managed})
}

func (tr *inUseTree) namespace() Namespace {
	tr.t.Helper()
	list, err := tr.linux().List(context.Background())
	if err != nil {
		tr.t.Fatal(err)
	}
	if len(list) != 1 || len(list[0].Namespaces) != 1 {
		tr.t.Fatalf("list = %+v", list)
	}
	return list[0].Namespaces[0]
}

func TestInUse(t *testing.T) {
	self := os.Getpid()
	cases := []struct {
		name  string
		setup func(tr *inUseTree)
		want  string // InUseBy; "" means not in use
	}{
		{"nothing in use", func(tr *inUseTree) {}, ""},
		{"mounted", func(tr *inUseTree) {
			tr.mountinfo(`30 22 259:0 / /data rw - ext4 /dev/nvme0n1 rw`)
		}, "nvme0n1 mounted on /data"},
		{"partition mounted", func(tr *inUseTree) {
			tr.mountinfo(`30 22 259:1 / /srv/my\040data rw - xfs /dev/nvme0n1p1 rw`)
		}, "nvme0n1p1 mounted on /srv/my data"},
		{"holder", func(tr *inUseTree) {
			tr.mkdir(tr.root, "sys", "block", "nvme0n1", "holders", "dm-0")
		}, "nvme0n1 held by dm-0"},
		{"partition holder", func(tr *inUseTree) {
			tr.mkdir(tr.root, "sys", "block", "nvme0n1", "nvme0n1p1", "holders", "md127")
		}, "nvme0n1p1 held by md127"},
		{"open by a process", func(tr *inUseTree) {
			tr.process(1234, "qemu-system-x86", "socket:[5]", tr.dev("nvme0n1"))
		}, "nvme0n1 open by pid 1234 (qemu-system-x86)"},
		{"open on a partition", func(tr *inUseTree) {
			tr.process(4321, "postgres", tr.dev("nvme0n1p1"))
		}, "nvme0n1p1 open by pid 4321 (postgres)"},
		{"open through another node of the same device", func(tr *inUseTree) {
			// A container's own /dev node, a by-id link: compared by major:minor, not by path.
			tr.process(555, "dd", tr.device("container-disk", "259:0"))
		}, "nvme0n1 open by pid 555 (dd)"},
		{"several fds of one process count once", func(tr *inUseTree) {
			tr.process(77, "fio", tr.dev("nvme0n1"), tr.dev("nvme0n1"), tr.dev("nvme0n1"))
		}, "nvme0n1 open by pid 77 (fio)"},
		{"many processes: three named, the rest counted", func(tr *inUseTree) {
			for _, pid := range []int{40, 10, 50, 30, 20} {
				tr.process(pid, "worker"+strconv.Itoa(pid), tr.dev("nvme0n1"))
			}
		}, "nvme0n1 open by pid 10 (worker10), pid 20 (worker20), pid 30 (worker30) and 2 more"},
		{"process without a readable comm", func(tr *inUseTree) {
			tr.process(88, "x", tr.dev("nvme0n1"))
			os.Remove(filepath.Join(tr.root, "proc", "88", "comm"))
		}, "nvme0n1 open by pid 88"},
		{"active swap", func(tr *inUseTree) {
			tr.swaps(tr.dev("nvme0n1") + "\tpartition\t1020\t0\t-2")
		}, "nvme0n1 active swap"},
		{"active swap on a partition, found under DevRoot", func(tr *inUseTree) {
			// /dev/nvme0n1p1 is not this tree's: the name is looked up under DevRoot.
			tr.swaps("/dev/nvme0n1p1\tpartition\t1020\t0\t-2")
		}, "nvme0n1p1 active swap"},
		{"active swap by name when no node can be stat'ed", func(tr *inUseTree) {
			writeFile(t, tr.dev("nvme0n1"), "")
			tr.swaps("/nonexistent/nvme0n1\tpartition\t1020\t0\t-2")
		}, "nvme0n1 active swap"},
		{"swap on another disk and a swap file", func(tr *inUseTree) {
			tr.swaps(tr.dev("sda")+"\tpartition\t1020\t0\t-2", tr.dev("nvme0n1")+"\tfile\t1020\t0\t-3")
		}, ""},
		{"backing a loop device", func(tr *inUseTree) {
			// losetup /dev/loop0 /dev/nvme0n1: the kernel holds it, holders/ stays empty.
			tr.loop("loop0", tr.dev("nvme0n1"))
		}, "nvme0n1 held by loop0"},
		{"partition backing a loop device, found under DevRoot", func(tr *inUseTree) {
			tr.loop("loop3", "/dev/nvme0n1p1")
		}, "nvme0n1p1 held by loop3"},
		{"loop devices on a file of the same name, on another disk, unbound", func(tr *inUseTree) {
			writeFile(t, filepath.Join(tr.root, "images", "nvme0n1"), "")
			tr.loop("loop0", filepath.Join(tr.root, "images", "nvme0n1"))
			tr.loop("loop1", tr.dev("sda"))
			tr.loop("loop2", "")
		}, ""},
		{"our own pid ignored", func(tr *inUseTree) {
			tr.process(self, "rds-reconcile", tr.dev("nvme0n1"), tr.dev("nvme0n1p1"))
		}, ""},
		{"vanished and unreadable processes ignored", func(tr *inUseTree) {
			tr.mkdir(tr.root, "proc", "900") // exited: no fd folder left
			tr.process(901, "gone", tr.dev("vanished-node"))
			writeFile(t, filepath.Join(tr.root, "proc", "902", "fd"), "") // fd not a folder (unreadable)
		}, ""},
		{"several reasons joined", func(tr *inUseTree) {
			tr.mountinfo(`30 22 259:1 / /data rw - ext4 /dev/nvme0n1p1 rw`)
			tr.process(1234, "qemu-system-x86", tr.dev("nvme0n1"))
			tr.swaps("/dev/nvme0n1\tpartition\t1020\t0\t-2")
			tr.mkdir(tr.root, "sys", "block", "nvme0n1", "holders", "dm-3")
		}, "nvme0n1 held by dm-3, nvme0n1 open by pid 1234 (qemu-system-x86), nvme0n1 active swap, nvme0n1p1 mounted on /data"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := newInUseTree(t)
			c.setup(tr)
			ns := tr.namespace()
			if ns.InUse != (c.want != "") || ns.InUseBy != c.want {
				t.Errorf("InUse %v, InUseBy %q; want %q", ns.InUse, ns.InUseBy, c.want)
			}
			err := tr.linux().Disconnect(context.Background(), "nvme0", false)
			if c.want != "" {
				if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), c.want) {
					t.Errorf("Disconnect = %v, want ErrInUse naming %q", err, c.want)
				}
			} else if err != nil {
				t.Errorf("Disconnect of an unused namespace = %v", err)
			}
		})
	}
}

// TestInUseOneProcScan: one List stats each fd of each process once,
// however many controllers and namespaces there are.
func TestInUseOneProcScan(t *testing.T) {
	tr := newInUseTree(t)
	for i := 1; i <= 3; i++ {
		ctrl := filepath.Join(tr.root, "sys", "class", "nvme", fmt.Sprintf("nvme%d", i))
		for a, v := range map[string]string{"subsysnqn": managed[0] + "vol" + strconv.Itoa(i), "transport": "tcp", "state": "live"} {
			writeFile(t, filepath.Join(ctrl, a), v+"\n")
		}
		dev := fmt.Sprintf("nvme%dn1", i)
		writeFile(t, filepath.Join(ctrl, dev, "dev"), fmt.Sprintf("259:%d\n", 10+i))
		writeFile(t, filepath.Join(tr.root, "sys", "block", dev, "dev"), fmt.Sprintf("259:%d\n", 10+i))
		tr.device(dev, fmt.Sprintf("259:%d", 10+i))
	}
	tr.process(500, "vm", tr.dev("nvme2n1"), tr.dev("nvme3n1"))
	l := tr.linux()
	calls := 0
	l.statRdev = func(p string) (uint32, uint32, bool) {
		calls++
		return fakeStatRdev(p)
	}
	list, err := l.List(context.Background())
	if err != nil || len(list) != 4 {
		t.Fatal(list, err)
	}
	// Path fds: app.log (pid 100), sda (101), nvme2n1 and nvme3n1 (500);
	// sockets, pipes and anonymous inodes are never stat'ed.
	if calls != 4 {
		t.Errorf("statRdev called %d times for one List, want 4", calls)
	}
	var busy []string
	for _, c := range list {
		for _, ns := range c.Namespaces {
			if ns.InUse {
				busy = append(busy, ns.InUseBy)
			}
		}
	}
	if want := "nvme2n1 open by pid 500 (vm)|nvme3n1 open by pid 500 (vm)"; strings.Join(busy, "|") != want {
		t.Errorf("in use: %q, want %q", busy, want)
	}
}

func TestInUseProcErrors(t *testing.T) {
	// No /proc at all: nothing open, no swap.
	none := filepath.Join(t.TempDir(), "none")
	u, err := readUsage(none, none, "/dev", os.Getpid(), fakeStatRdev)
	if err != nil || len(u.open) != 0 || len(u.swap.byNum)+len(u.swap.byName)+len(u.loops.byNum)+len(u.loops.byName) != 0 {
		t.Errorf("missing proc: %+v, %v", u, err)
	}
	// A /proc that is not a folder cannot be scanned: an error, not "unused".
	f := filepath.Join(t.TempDir(), "proc")
	writeFile(t, f, "")
	if _, err := readUsage(f, none, "/dev", os.Getpid(), fakeStatRdev); err == nil {
		t.Error("proc that is a file: no error")
	}
}

// TestOpenersRealProc scans the real /proc: a child holding a (fake)
// device open is found by pid and comm, our own process is not.
func TestOpenersRealProc(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("no /proc")
	}
	devPath := filepath.Join(t.TempDir(), "fake-dev")
	writeFile(t, devPath, "259:77\n")
	f, err := os.OpenFile(devPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep")
	}
	cmd := exec.Command(sleep, "30")
	cmd.ExtraFiles = []*os.File{f}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	key := majMin(259, 77)
	open, err := scanOpeners("/proc", os.Getpid(), fakeStatRdev)
	if err != nil {
		t.Fatal(err)
	}
	if ops := open[key]; len(ops) != 1 || ops[0].pid != cmd.Process.Pid || ops[0].comm != "sleep" {
		t.Errorf("openers of the fake device = %+v, want only the child %d (sleep)", ops, cmd.Process.Pid)
	}
	open, _ = scanOpeners("/proc", -1, fakeStatRdev)
	found := false
	for _, o := range open[key] {
		found = found || o.pid == os.Getpid()
	}
	if !found {
		t.Errorf("without skipping ourselves our own fd is not found: %+v", open[key])
	}
}

func TestStatBlockRdev(t *testing.T) {
	for _, stat := range []statRdevFunc{statBlockRdev, statRdev} {
		if _, _, ok := stat(os.DevNull); ok {
			t.Error("/dev/null (a character device) taken for a block device")
		}
		if _, _, ok := stat(filepath.Join(t.TempDir(), "missing")); ok {
			t.Error("missing path taken for a block device")
		}
	}
	entries, _ := os.ReadDir("/dev")
	for _, e := range entries {
		if e.Type()&os.ModeDevice == 0 || e.Type()&os.ModeCharDevice != 0 {
			continue
		}
		major, minor, ok := statBlockRdev(filepath.Join("/dev", e.Name()))
		if !ok {
			t.Fatalf("/dev/%s: not seen as a block device", e.Name())
		}
		want := readAttr(filepath.Join("/sys/class/block", e.Name()), "dev")
		if want != "" && want != majMin(major, minor) {
			t.Errorf("/dev/%s: %s, sysfs says %s", e.Name(), majMin(major, minor), want)
		}
		// The stat(2) fallback splits st_rdev the same way.
		if ma, mi, ok := statRdev(filepath.Join("/dev", e.Name())); !ok || ma != major || mi != minor {
			t.Errorf("/dev/%s through stat(2): %d:%d %v, statx says %d:%d", e.Name(), ma, mi, ok, major, minor)
		}
		return
	}
	t.Log("no block device in /dev: only the negative cases ran")
}

// BenchmarkOpenScan scans a fake /proc of 300 processes with 10 fds each
// (3000 fds: sockets, pipes, anonymous inodes, regular files, and every
// 30th process a block device), the way List does once per call.
func BenchmarkOpenScan(b *testing.B) {
	root := b.TempDir()
	proc := filepath.Join(root, "proc")
	writeFile(b, filepath.Join(root, "dev", "nvme0n1"), "259:0\n")
	writeFile(b, filepath.Join(root, "var", "log", "x.log"), "")
	writeFile(b, filepath.Join(proc, "swaps"), "Filename\tType\tSize\tUsed\tPriority\n")
	const pids, fdsPer = 300, 10
	for pid := 1; pid <= pids; pid++ {
		dir := filepath.Join(proc, strconv.Itoa(pid))
		writeFile(b, filepath.Join(dir, "comm"), "proc"+strconv.Itoa(pid)+"\n")
		for fd := 0; fd < fdsPer; fd++ {
			var target string
			switch {
			case fd == 9 && pid%30 == 0:
				target = filepath.Join(root, "dev", "nvme0n1")
			case fd < 3:
				target = "/dev/pts/0"
			case fd < 5:
				target = fmt.Sprintf("socket:[%d]", pid*100+fd)
			case fd < 7:
				target = fmt.Sprintf("pipe:[%d]", pid*100+fd)
			case fd == 7:
				target = "anon_inode:[eventpoll]"
			default:
				target = filepath.Join(root, "var", "log", "x.log")
			}
			if err := os.Symlink(target, filepath.Join(dir, "fd", strconv.Itoa(fd))); err != nil {
				if err := os.MkdirAll(filepath.Join(dir, "fd"), 0o755); err != nil {
					b.Fatal(err)
				}
				if err := os.Symlink(target, filepath.Join(dir, "fd", strconv.Itoa(fd))); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		u, err := readUsage(proc, filepath.Join(root, "sys"), filepath.Join(root, "dev"), os.Getpid(), fakeStatRdev)
		if err != nil || len(u.open["259:0"]) != pids/30 {
			b.Fatal(u, err)
		}
	}
	b.ReportMetric(pids*fdsPer, "fds/op")
}

// BenchmarkOpenScanHostProc is the same scan on this machine's own /proc
// with the real statx, for comparison (what it finds depends on the host).
func BenchmarkOpenScanHostProc(b *testing.B) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		b.Skip("no /proc")
	}
	fds := 0
	pids, _ := readDirNames("/proc")
	for _, p := range pids {
		if n, _ := readDirNames("/proc/" + p + "/fd"); len(n) > 0 {
			fds += len(n)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := readUsage("/proc", "/sys", "/dev", os.Getpid(), statBlockRdev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(fds), "fds/op")
}

// TestInUseRealLoopDevices checks, as root on the real kernel, what the
// fake trees assume: a loop device backed by a block device does not show
// under that device's holders/ and is found through backing_file; a
// process holding the device open is found by major:minor through statx.
func TestInUseRealLoopDevices(t *testing.T) {
	if os.Geteuid() != 0 || testing.Short() {
		t.Skip("needs root (losetup) and no -short")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Skip("no losetup")
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 8<<20); err != nil {
		t.Fatal(err)
	}
	losetup := func(backing string) string {
		out, err := exec.Command("losetup", "-f", "--show", backing).Output()
		if err != nil {
			t.Skipf("losetup %s: %v (no loop devices here?)", backing, err)
		}
		dev := strings.TrimSpace(string(out))
		t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
		return dev
	}
	a := losetup(img)
	b := losetup(a)
	nameA, nameB := filepath.Base(a), filepath.Base(b)
	mmA := readAttr(filepath.Join("/sys/block", nameA), "dev")
	if major, minor, ok := statBlockRdev(a); !ok || majMin(major, minor) != mmA {
		t.Fatalf("statBlockRdev(%s) = %d:%d %v, sysfs dev %s", a, major, minor, ok, mmA)
	}
	if holders, _ := readDirNames(filepath.Join("/sys/block", nameA, "holders")); len(holders) != 0 {
		t.Logf("this kernel lists %v as holders of %s", holders, nameA)
	}
	var loops pathRefs
	readLoops(&loops, "/sys", "/dev", statBlockRdev)
	if got := loops.lookup(nameA, mmA); len(got) != 1 || got[0] != nameB {
		t.Errorf("loop devices backed by %s = %v, want [%s]", a, got, nameB)
	}

	f, err := os.OpenFile(a, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "30")
	cmd.ExtraFiles = []*os.File{f}
	err = cmd.Start()
	f.Close()
	if err != nil {
		t.Skip("no sleep:", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	open, err := scanOpeners("/proc", os.Getpid(), statBlockRdev)
	if err != nil {
		t.Fatal(err)
	}
	// udev may be probing the new device too: look for the child among them.
	found := false
	for _, o := range open[mmA] {
		found = found || o.String() == fmt.Sprintf("pid %d (sleep)", cmd.Process.Pid)
	}
	if !found {
		t.Errorf("%s open by %+v, want pid %d (sleep) among them", a, open[mmA], cmd.Process.Pid)
	}
}
