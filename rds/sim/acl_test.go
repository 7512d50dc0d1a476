package sim

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/rds"
)

const (
	aclHostA = "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427"
	aclHostB = "nqn.2014-08.org.nvmexpress:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8"
)

// kernelSymlink plays nvmet's rule: no allowed_hosts link while the
// subsystem admits any host.
func kernelSymlink(oldname, newname string) error {
	if filepath.Base(filepath.Dir(newname)) == "allowed_hosts" {
		sub := filepath.Dir(filepath.Dir(newname))
		if readAttr(sub, "attr_allow_any_host") != "0" {
			return errors.New("can't add hosts when allow_any_host is set")
		}
	}
	return os.Symlink(oldname, newname)
}

func allowedHosts(t *testing.T, sub string) []string {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(sub, "allowed_hosts"))
	var got []string
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(sub, "allowed_hosts", e.Name()))
		if err != nil || filepath.Base(target) != e.Name() || filepath.Base(filepath.Dir(target)) != "hosts" {
			t.Errorf("allowed host %s -> %q, %v", e.Name(), target, err)
		}
		if _, err := os.Stat(target); err != nil {
			t.Errorf("host folder %s: %v", target, err)
		}
		got = append(got, e.Name())
	}
	return got
}

// TestNVMetAllowHosts: the allow list is enforced through configfs, changed
// in place (the port link and namespace stay: live controllers are not
// dropped), and undone on export off.
func TestNVMetAllowHosts(t *testing.T) {
	dir, cfs := t.TempDir(), t.TempDir()
	nv := NewNVMetBackend(dir, cfs, "127.0.0.1")
	nv.rmdir, nv.symlink = fakeRmdir, kernelSymlink
	s := newTestServer(t, Options{Backend: nv})
	nqn := "nqn.2000-02.com.mikrotik:pvc-a"
	sub := filepath.Join(cfs, "subsystems", nqn)
	portLink := filepath.Join(cfs, "ports", "4420", "subsystems", nqn)
	mustExec(t, s, `/disk add type=file file-path=storage-pool/volumes/pvc-a.img file-size=1G slot=pvc-a nvme-tcp-export=yes nvme-tcp-server-nqn="`+nqn+`" nvme-tcp-server-allow-host-name="`+aclHostB+`,`+aclHostA+`"`)
	check := func(step, anyHost string, hosts []string) {
		t.Helper()
		if got := readFile(t, filepath.Join(sub, "attr_allow_any_host")); got != anyHost {
			t.Errorf("%s: attr_allow_any_host = %s, want %s", step, got, anyHost)
		}
		if got := allowedHosts(t, sub); !slices.Equal(got, hosts) {
			t.Errorf("%s: allowed_hosts = %q, want %q", step, got, hosts)
		}
		if _, err := os.Lstat(portLink); err != nil {
			t.Errorf("%s: port link gone: %v", step, err)
		}
		if readFile(t, filepath.Join(sub, "namespaces", "1", "enable")) != "1" {
			t.Errorf("%s: namespace not enabled", step)
		}
	}
	check("add", "0", []string{aclHostA, aclHostB})
	// Mark the namespace: an unexport/re-export would lose the mark.
	mark := filepath.Join(sub, "namespaces", "1", "mark")
	os.WriteFile(mark, []byte("x"), 0o644)
	mustExec(t, s, `/disk set pvc-a nvme-tcp-server-allow-host-name="`+aclHostB+`"`)
	check("move", "0", []string{aclHostB})
	mustExec(t, s, `/disk set pvc-a nvme-tcp-server-allow-host-name="`+rds.NoHostNQN+`"`)
	check("closed", "0", []string{rds.NoHostNQN})
	mustExec(t, s, `/disk set pvc-a nvme-tcp-server-allow-host-name=""`)
	check("open", "1", nil)
	mustExec(t, s, `/disk set pvc-a nvme-tcp-server-allow-host-name="`+aclHostA+`"`)
	check("closed again", "0", []string{aclHostA})
	if _, err := os.Stat(mark); err != nil {
		t.Errorf("the allow list changes re-exported the disk: %v", err)
	}
	os.Remove(mark)
	if s.Disks()[0].AllowHost != aclHostA {
		t.Errorf("simulator holds %q", s.Disks()[0].AllowHost)
	}
	// Export off with hosts linked: the links go first, then the subsystem.
	mustExec(t, s, `/disk set pvc-a nvme-tcp-export=no`)
	if _, err := os.Stat(sub); !os.IsNotExist(err) {
		t.Fatalf("subsystem left after export off: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfs, "hosts", aclHostA)); err != nil {
		t.Errorf("host folder removed: %v", err)
	}
	// Export on again: the list is applied with it.
	mustExec(t, s, `/disk set pvc-a nvme-tcp-export=yes`)
	check("re-export", "0", []string{aclHostA})
	mustExec(t, s, `/disk remove pvc-a`)
	if _, err := os.Stat(sub); !os.IsNotExist(err) {
		t.Errorf("subsystem left after remove: %v", err)
	}
	// A host NQN that cannot be a configfs name is refused, not linked.
	mustExec(t, s, `/disk add type=file file-path=storage-pool/volumes/pvc-b.img file-size=1G slot=pvc-b`)
	if out := s.Exec(`/disk set pvc-b nvme-tcp-export=yes nvme-tcp-server-allow-host-name="../x"`); !strings.Contains(out, "failure") {
		t.Errorf("host ../x: %q", out)
	}
}
