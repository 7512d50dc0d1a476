package fabric

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// golden compares got with testdata/name, rewriting it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// copyTree copies a committed fake tree into a temporary directory so a
// test may change it.
func copyTree(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeKernel plays the kernel on a fake tree: it answers writes to
// /dev/nvme-fabrics by creating a controller in sysfs, and sysfs attribute
// writes the way drivers/nvme/host does.
type fakeKernel struct {
	t    testing.TB
	root string // contains sys/, dev/, proc/

	mu         sync.Mutex
	writes     []string // option strings received
	attrWrites []string // "nvme3/ctrl_loss_tmo=5"
	failErrno  syscall.Errno
	noDevice   bool   // never create the namespace's block device
	cltForce   string // print this ctrl_loss_tmo whatever was asked (a broken kernel)
	ignoreDel  bool   // delete_controller does nothing
	katoForce  int    // print this kato whatever was asked (when > 0)
	subsysNext int
}

func newFakeKernel(t testing.TB, root string) *fakeKernel {
	return &fakeKernel{t: t, root: root, subsysNext: 20}
}

func (k *fakeKernel) linux(opts LinuxOptions) *Linux {
	opts.SysfsRoot = filepath.Join(k.root, "sys")
	opts.DevRoot = filepath.Join(k.root, "dev")
	opts.ProcRoot = filepath.Join(k.root, "proc")
	opts.Fabrics = k
	if opts.PollInterval == 0 {
		opts.PollInterval = 5 * time.Millisecond
	}
	if opts.DeleteWait == 0 {
		opts.DeleteWait = time.Second
	}
	if opts.HostNQNFile == "" {
		opts.HostNQNFile = filepath.Join(k.root, "etc", "nvme", "hostnqn")
		opts.HostNQNStateFile = filepath.Join(k.root, "var", "hostnqn")
		opts.MachineIDFile = filepath.Join(k.root, "etc", "machine-id")
	}
	l := NewLinux(opts)
	l.writeAttr = k.writeAttr
	l.statRdev = fakeStatRdev
	return l
}

// fakeStatRdev stands in for statBlockRdev on fake trees, where device
// nodes cannot be made: a small regular file whose content is "MAJOR:MINOR"
// is that block device. It stats like the real one (symlinks such as
// /proc/PID/fd/N followed), so benchmarks pay the same syscall; empty files
// and anything else are not devices.
func fakeStatRdev(path string) (uint32, uint32, bool) {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size == 0 || st.Size > 32 {
		return 0, 0, false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, false
	}
	ma, mi, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
	if !ok {
		return 0, 0, false
	}
	major, err1 := strconv.ParseUint(ma, 10, 32)
	minor, err2 := strconv.ParseUint(mi, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uint32(major), uint32(minor), true
}

func (k *fakeKernel) classDir() string { return filepath.Join(k.root, "sys", "class", "nvme") }

func (k *fakeKernel) Open(path string) (io.ReadWriteCloser, error) {
	if filepath.Base(path) != "nvme-fabrics" {
		return nil, &os.PathError{Op: "open", Path: path, Err: syscall.ENOENT}
	}
	return &fakeFabricsFile{k: k, path: path}, nil
}

type fakeFabricsFile struct {
	k     *fakeKernel
	path  string
	reply string
}

func (f *fakeFabricsFile) Close() error { return nil }

func (f *fakeFabricsFile) Read(p []byte) (int, error) {
	if f.reply == "" {
		return 0, io.EOF
	}
	n := copy(p, f.reply)
	f.reply = f.reply[n:]
	return n, nil
}

func (f *fakeFabricsFile) Write(p []byte) (int, error) {
	reply, errno := f.k.connect(string(p))
	if errno != 0 {
		return 0, &os.PathError{Op: "write", Path: f.path, Err: errno}
	}
	f.reply = reply
	return len(p), nil
}

// connect parses the option string like nvmf_parse_options and creates the
// controller, or fails with an errno.
func (k *fakeKernel) connect(opts string) (string, syscall.Errno) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.writes = append(k.writes, opts)
	if k.failErrno != 0 {
		return "", k.failErrno
	}
	o := map[string]string{}
	for _, kv := range strings.Split(opts, ",") {
		key, v, ok := strings.Cut(kv, "=")
		if !ok {
			return "", syscall.EINVAL
		}
		o[key] = v
	}
	if o["transport"] == "" || o["nqn"] == "" {
		return "", syscall.EINVAL
	}
	rd, kato, clt := KernelDefaultReconnectDelay, KernelDefaultKeepAliveTmo, KernelDefaultCtrlLossTmo
	if v, ok := o["reconnect_delay"]; ok {
		if rd, _ = strconv.Atoi(v); rd <= 0 {
			return "", syscall.EINVAL
		}
	}
	if v, ok := o["keep_alive_tmo"]; ok {
		if kato, _ = strconv.Atoi(v); kato < 0 {
			return "", syscall.EINVAL
		}
	}
	if v, ok := o["ctrl_loss_tmo"]; ok {
		clt, _ = strconv.Atoi(v)
	}
	// Duplicate check like nvmf_ctlr_matches_baseopts + ip options match.
	entries, _ := os.ReadDir(k.classDir())
	used := map[int]bool{}
	for _, e := range entries {
		dir := filepath.Join(k.classDir(), e.Name())
		if n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "nvme")); err == nil {
			used[n] = true
		}
		tr, svc := parseAddress(readAttr(dir, "address"))
		if readAttr(dir, "subsysnqn") == o["nqn"] && tr == o["traddr"] && svc == o["trsvcid"] && readAttr(dir, "hostnqn") == o["hostnqn"] {
			return "", syscall.EALREADY
		}
	}
	inst := 0
	for used[inst] {
		inst++
	}
	name := "nvme" + strconv.Itoa(inst)
	dir := filepath.Join(k.classDir(), name)
	shown := "off"
	if clt >= 0 {
		shown = strconv.Itoa((clt + rd - 1) / rd * rd)
	}
	if k.cltForce != "" {
		shown = k.cltForce
	}
	if k.katoForce > 0 {
		kato = k.katoForce
	}
	attrs := map[string]string{
		"subsysnqn": o["nqn"], "transport": o["transport"], "state": "live", "cntlid": "1",
		"address": "traddr=" + o["traddr"] + ",trsvcid=" + o["trsvcid"] + ",src_addr=127.0.0.1",
		"hostnqn": o["hostnqn"], "kato": strconv.Itoa(kato), "ctrl_loss_tmo": shown,
		"reconnect_delay": strconv.Itoa(rd), "delete_controller": "", "rescan_controller": "",
	}
	for a, v := range attrs {
		writeFile(k.t, filepath.Join(dir, a), v+"\n")
	}
	// Native multipath naming: the path device under the controller, the
	// head device in /sys/block and /dev.
	sub := k.subsysNext
	k.subsysNext++
	dev := fmt.Sprintf("nvme%dn1", sub)
	writeFile(k.t, filepath.Join(dir, fmt.Sprintf("nvme%dc%dn1", sub, inst), "dev"), "0:0\n")
	writeFile(k.t, filepath.Join(k.root, "sys", "block", dev, "size"), "2097152\n")
	writeFile(k.t, filepath.Join(k.root, "sys", "block", dev, "dev"), fmt.Sprintf("259:%d\n", sub))
	if !k.noDevice {
		writeFile(k.t, filepath.Join(k.root, "dev", dev), "")
	}
	return fmt.Sprintf("instance=%d,cntlid=1\n", inst), 0
}

// writeAttr mimics the kernel's sysfs stores.
func (k *fakeKernel) writeAttr(path, value string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	dir, attr := filepath.Split(path)
	dir = filepath.Clean(dir)
	if _, err := os.Stat(path); err != nil {
		return &os.PathError{Op: "open", Path: path, Err: syscall.ENOENT}
	}
	k.attrWrites = append(k.attrWrites, filepath.Base(dir)+"/"+attr+"="+value)
	switch attr {
	case "delete_controller":
		if !k.ignoreDel {
			return os.RemoveAll(dir)
		}
		return nil
	case "ctrl_loss_tmo":
		v, err := strconv.Atoi(value)
		if err != nil {
			return syscall.EINVAL
		}
		shown := "off"
		if v >= 0 {
			rd, _ := strconv.Atoi(readAttr(dir, "reconnect_delay"))
			if rd <= 0 {
				return errors.New("fake: no reconnect_delay")
			}
			shown = strconv.Itoa((v + rd - 1) / rd * rd)
		}
		if k.cltForce != "" {
			shown = k.cltForce
		}
		return os.WriteFile(path, []byte(shown+"\n"), 0o644)
	case "reconnect_delay":
		if _, err := strconv.ParseUint(value, 10, 32); err != nil {
			return syscall.EINVAL
		}
		return os.WriteFile(path, []byte(value+"\n"), 0o644)
	default:
		return os.WriteFile(path, []byte(value+"\n"), 0o644)
	}
}

func (k *fakeKernel) attrLog() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.attrWrites...)
}
