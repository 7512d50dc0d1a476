package sim

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

const addPVC = `/disk add type=file file-path=storage-pool/volumes/pvc-a.img file-size=1G slot=pvc-a ` +
	`nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn="nqn.2000-02.com.mikrotik:pvc-a"`

func TestPersistenceAcrossRestart(t *testing.T) {
	statePath := filepath.Join(t.TempDir(), "state.json")
	s1 := newTestServer(t, Options{StatePath: statePath})
	mustExec(t, s1, addPVC)
	mustExec(t, s1, addLogs)
	mustExec(t, s1, `/disk remove pvc-logs`)
	before := s1.Exec(`/disk print detail; /file print detail`)
	s1.Close()

	s2 := newTestServer(t, Options{StatePath: statePath})
	if after := s2.Exec(`/disk print detail; /file print detail`); after != before {
		t.Errorf("after restart\n%s\nbefore\n%s", after, before)
	}
	// Ids keep counting: a new disk does not reuse an old id.
	mustExec(t, s2, `/disk add type=file file-path=storage-pool/volumes/pvc-b.img file-size=1G slot=pvc-b`)
	if out := s2.Exec(`:put [/disk find slot=pvc-b]`); out != "*7\n" {
		t.Errorf("new id %q, want *7 (file *6)", out)
	}
	if size, free := s2.Pool(); free != size-3<<30 {
		t.Errorf("pool after restart: size %d free %d", size, free)
	}
}

func TestPoolExhaustion(t *testing.T) {
	s := newTestServer(t, Options{PoolSize: 3 << 30})
	for _, slot := range []string{"a", "b", "c"} {
		mustExec(t, s, `/disk add type=file file-path=storage-pool/`+slot+`.img file-size=1G slot=`+slot)
	}
	if out := s.Exec(`/disk add type=file file-path=storage-pool/d.img file-size=1 slot=d`); out != "failure: not enough space\n" {
		t.Errorf("full pool: %q", out)
	}
	if out := s.Exec(`/disk print detail where mount-point="storage-pool"`); !strings.Contains(out, "free=0\n") {
		t.Errorf("pool not shown full:\n%s", out)
	}
	// Removing a disk frees nothing: its file stays until /file remove.
	mustExec(t, s, `/disk remove [find slot="c"]`)
	if _, free := s.Pool(); free != 0 {
		t.Errorf("free after disk remove = %d, want 0", free)
	}
	mustExec(t, s, `/file remove [find name="storage-pool/c.img"]`)
	mustExec(t, s, `/disk add type=file file-path=storage-pool/d.img file-size=1G slot=d`)
}

func TestReaddLeftoverFile(t *testing.T) {
	s := newTestServer(t, Options{})
	mustExec(t, s, addPVC)
	mustExec(t, s, `/disk remove pvc-a`)
	// The leftover file is attached as it is; file-size sizes new files only.
	mustExec(t, s, strings.Replace(addPVC, "file-size=1G", "file-size=2G", 1))
	if d := s.Disks(); len(d) != 1 || d[0].Size != 1<<30 || len(s.Files()) != 1 {
		t.Errorf("disks %+v files %+v", d, s.Files())
	}
}

func TestFileBackendSparse(t *testing.T) {
	dir := t.TempDir()
	s := newTestServer(t, Options{Backend: NewFileBackend(dir)})
	mustExec(t, s, addPVC)
	p := filepath.Join(dir, "storage-pool", "volumes", "pvc-a.img")
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 1<<30 {
		t.Errorf("size %d", st.Size())
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Blocks*512 > 1<<20 {
		t.Errorf("file not sparse: %d bytes allocated", sys.Blocks*512)
	}
	mustExec(t, s, `/disk set pvc-a file-size=2G`)
	if st, _ = os.Stat(p); st.Size() != 2<<30 {
		t.Errorf("after grow: %d", st.Size())
	}
	mustExec(t, s, `/disk remove pvc-a`)
	if _, err := os.Stat(p); err != nil {
		t.Errorf("disk remove deleted the file: %v", err)
	}
	mustExec(t, s, `/file remove storage-pool/volumes/pvc-a.img`)
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("file remove left the file: %v", err)
	}
}

// fakeRmdir acts like rmdir in configfs on a plain tree: attribute files
// vanish with their directory; subdirectories must already be gone (except
// the default groups configfs creates itself, which are empty here).
func fakeRmdir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			if err := os.Remove(p); err != nil {
				return err // non-empty child group: configfs refuses too
			}
			continue
		}
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	return os.Remove(dir)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestStableUUID(t *testing.T) {
	a, b := stableUUID("nqn.2000-02.com.mikrotik:a"), stableUUID("nqn.2000-02.com.mikrotik:b")
	if a != stableUUID("nqn.2000-02.com.mikrotik:a") || a == b {
		t.Fatalf("stableUUID not stable per NQN: %s %s", a, b)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(a) {
		t.Fatalf("stableUUID(%q) = %s: not a version 5 UUID", "a", a)
	}
}

func TestNVMetBackendFakeConfigFS(t *testing.T) {
	dir, cfs := t.TempDir(), t.TempDir()
	nv := NewNVMetBackend(dir, cfs, "127.0.0.1")
	nv.rmdir = fakeRmdir
	s := newTestServer(t, Options{Backend: nv})
	mustExec(t, s, addPVC)

	nqn := "nqn.2000-02.com.mikrotik:pvc-a"
	sub := filepath.Join(cfs, "subsystems", nqn)
	ns := filepath.Join(sub, "namespaces", "1")
	port := filepath.Join(cfs, "ports", "4420")
	img := filepath.Join(dir, "storage-pool", "volumes", "pvc-a.img")
	for file, want := range map[string]string{
		filepath.Join(sub, "attr_allow_any_host"): "1",
		filepath.Join(ns, "device_path"):          img,
		filepath.Join(ns, "buffered_io"):          "1",
		filepath.Join(ns, "device_uuid"):          stableUUID(nqn),
		filepath.Join(ns, "enable"):               "1",
		filepath.Join(port, "addr_adrfam"):        "ipv4",
		filepath.Join(port, "addr_trtype"):        "tcp",
		filepath.Join(port, "addr_traddr"):        "127.0.0.1",
		filepath.Join(port, "addr_trsvcid"):       "4420",
	} {
		if got := readFile(t, file); got != want {
			t.Errorf("%s = %q, want %q", strings.TrimPrefix(file, cfs), got, want)
		}
	}
	if target, err := os.Readlink(filepath.Join(port, "subsystems", nqn)); err != nil || target != sub {
		t.Errorf("port link -> %q, %v", target, err)
	}

	// Grow without revalidate_size: disable and enable again (ends enabled).
	mustExec(t, s, `/disk set pvc-a file-size=2G`)
	if readFile(t, filepath.Join(ns, "enable")) != "1" {
		t.Error("namespace not re-enabled after grow")
	}
	// Grow with revalidate_size: written.
	os.WriteFile(filepath.Join(ns, "revalidate_size"), nil, 0o644)
	mustExec(t, s, `/disk set pvc-a file-size=3G`)
	if readFile(t, filepath.Join(ns, "revalidate_size")) != "1" {
		t.Error("revalidate_size not written")
	}
	if st, _ := os.Stat(img); st.Size() != 3<<30 {
		t.Errorf("file size %d", st.Size())
	}

	// Port change: unexport from 4420, export on 4421.
	mustExec(t, s, `/disk set pvc-a nvme-tcp-server-port=4421`)
	if _, err := os.Lstat(filepath.Join(port, "subsystems", nqn)); !os.IsNotExist(err) {
		t.Errorf("old port link left: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(cfs, "ports", "4421", "subsystems", nqn)); err != nil {
		t.Errorf("new port link: %v", err)
	}

	// Export off: link, namespace and subsystem gone; the file stays.
	mustExec(t, s, `/disk set pvc-a nvme-tcp-export=no`)
	if _, err := os.Stat(sub); !os.IsNotExist(err) {
		t.Errorf("subsystem left after export off: %v", err)
	}
	mustExec(t, s, `/disk set pvc-a nvme-tcp-export=yes`)
	mustExec(t, s, `/disk remove pvc-a`)
	if _, err := os.Stat(sub); !os.IsNotExist(err) {
		t.Errorf("subsystem left after remove: %v", err)
	}
	if _, err := os.Stat(img); err != nil {
		t.Errorf("file gone with the disk: %v", err)
	}
}

func TestNVMetReexportOnStart(t *testing.T) {
	dir, cfs := t.TempDir(), t.TempDir()
	statePath := filepath.Join(dir, "state.json")
	s1 := newTestServer(t, Options{Backend: NewNVMetBackend(dir, cfs, "127.0.0.1"), StatePath: statePath})
	mustExec(t, s1, addPVC)
	s1.Close()
	// The VM rebooted: configfs is empty again.
	os.RemoveAll(cfs)
	os.MkdirAll(cfs, 0o755)
	s2 := newTestServer(t, Options{Backend: NewNVMetBackend(dir, cfs, "127.0.0.1"), StatePath: statePath})
	if err := s2.Start(context.Background(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(cfs, "ports", "4420", "subsystems", "nqn.2000-02.com.mikrotik:pvc-a")); err != nil {
		t.Errorf("not re-exported: %v", err)
	}
}

// TestNQNInUse: an exported NQN is taken until its disk stops exporting it,
// changes it, or goes away.
func TestNQNInUse(t *testing.T) {
	s := newTestServer(t, Options{})
	add := func(slot string) string {
		return s.Exec(`/disk add type=file file-path=storage-pool/` + slot + `.img file-size=1M slot=` + slot +
			` nvme-tcp-export=yes nvme-tcp-server-nqn=nqn.x:shared`)
	}
	const taken = "failure: nvme-tcp-server-nqn already used\n"
	if out := add("a"); out != "" {
		t.Fatal(out)
	}
	if out := add("b"); out != taken {
		t.Fatalf("second exporter: %q", out)
	}
	mustExec(t, s, `/disk set a nvme-tcp-server-nqn=nqn.x:other`)
	if out := add("b"); out != "" {
		t.Fatalf("after a moved away: %q", out)
	}
	if out := s.Exec(`/disk set a nvme-tcp-server-nqn=nqn.x:shared`); out != taken {
		t.Fatalf("a back onto b's NQN: %q", out)
	}
	mustExec(t, s, `/disk set a nvme-tcp-server-nqn=nqn.x:other`) // unchanged: no conflict with itself
	mustExec(t, s, `/disk remove b`)
	mustExec(t, s, `/disk set a nvme-tcp-server-nqn=nqn.x:shared`)
	mustExec(t, s, `/disk set a nvme-tcp-export=no`)
	if out := add("c"); out != "" {
		t.Fatalf("after a stopped exporting: %q", out)
	}
}

// TestNVMetTwoSimulatorsOnePort: two simulated RDS on one kernel, on two
// addresses, both serving TCP port 4420: each gets its own nvmet port.
func TestNVMetTwoSimulatorsOnePort(t *testing.T) {
	cfs := t.TempDir()
	a := NewNVMetBackend(t.TempDir(), cfs, "127.0.0.1")
	b := NewNVMetBackend(t.TempDir(), cfs, "127.0.0.2")
	a.rmdir, b.rmdir = fakeRmdir, fakeRmdir
	sa := newTestServer(t, Options{Backend: a})
	sb := newTestServer(t, Options{Backend: b})
	mustExec(t, sa, addPVC)
	mustExec(t, sb, strings.ReplaceAll(addPVC, "pvc-a", "pvc-b"))
	pa, pb := filepath.Join(cfs, "ports", "4420"), filepath.Join(cfs, "ports", "65535")
	if got := readFile(t, filepath.Join(pa, "addr_traddr")); got != "127.0.0.1" {
		t.Errorf("port 4420 listens on %q", got)
	}
	if got := readFile(t, filepath.Join(pb, "addr_traddr")) + ":" + readFile(t, filepath.Join(pb, "addr_trsvcid")); got != "127.0.0.2:4420" {
		t.Errorf("second simulator's port listens on %q, want 127.0.0.2:4420", got)
	}
	if _, err := os.Lstat(filepath.Join(pb, "subsystems", "nqn.2000-02.com.mikrotik:pvc-b")); err != nil {
		t.Errorf("pvc-b not linked to the second port: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(pa, "subsystems", "nqn.2000-02.com.mikrotik:pvc-b")); err == nil {
		t.Error("pvc-b linked to the first simulator's port")
	}
	// Export off finds the same port again.
	mustExec(t, sb, `/disk set pvc-b nvme-tcp-export=no`)
	if _, err := os.Lstat(filepath.Join(pb, "subsystems", "nqn.2000-02.com.mikrotik:pvc-b")); !os.IsNotExist(err) {
		t.Errorf("pvc-b still linked after export off: %v", err)
	}
}
