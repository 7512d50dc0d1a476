package reconcile

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/rds"
)

func TestExportPlansEmpty(t *testing.T) {
	base := state(t, "")
	foreignDisk := disk("t-z", gi)
	foreignDisk.NQN = "nqn.2014-08.org.example:t-z"
	obs := &Observed{Fabric: true, HostNQN: "nqn.2014-08.org.nvmexpress:uuid:a",
		RDS: &rds.Inventory{Disks: []rds.Disk{disk("t-a", gi), disk("t-b", 2*gi), foreignDisk}},
		Controllers: []fabric.Controller{
			ctrl("nvme0", "t-a", fabric.Timeouts{CtrlLossTmo: 600, ReconnectDelay: 10, KeepAliveTmo: 30}),
			ctrl("nvme1", "t-x-foreign", defTimeouts),
		}}
	obs.Controllers[1].SubsysNQN = "nqn.2014-08.org.example:x"
	st := Export(base, obs, "node-a")
	if len(st.Volumes) != 2 || st.Volumes[0].Name != "t-a" || st.Volumes[1].Name != "t-b" {
		t.Fatalf("volumes %+v", st.Volumes)
	}
	if st.Volumes[0].Connection.KeepAliveTmo == nil || *st.Volumes[0].Connection.KeepAliveTmo != 30 {
		t.Errorf("t-a timeouts not exported: %+v", st.Volumes[0].Connection)
	}
	if len(st.Volumes[1].Attachments) != 0 || st.Volumes[1].Connection.CtrlLossTmo != nil {
		t.Errorf("t-b: %+v", st.Volumes[1])
	}
	if p := Diff(st, obs, "node-a", Full(false)); !p.Empty() {
		t.Errorf("plan of the exported state: %q", summarize(p))
	}
}

func TestRevision(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "state.yaml")
	if Revision(context.Background(), []string{file}) != "" {
		t.Error("revision outside a work tree")
	}
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.email=t@t", "-c", "user.name=t"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	if err := os.WriteFile(file, []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("add", "state.yaml")
	git("commit", "-q", "-m", "x")
	rev := Revision(context.Background(), []string{file})
	if !regexp.MustCompile(`^[0-9a-f]{7,}$`).MatchString(rev) {
		t.Fatalf("revision %q", rev)
	}
	if err := os.WriteFile(file, []byte("b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := Revision(context.Background(), []string{file}); got != rev+"+dirty" {
		t.Errorf("dirty revision %q, want %q", got, rev+"+dirty")
	}
}
