package reconcile

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/rds"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test ./reconcile -run %s -update to accept):\n--- got\n%s\n--- want\n%s", path, t.Name(), got, want)
	}
}

// goldenPlan has one action of each mark, drift and notes.
func goldenPlan(t *testing.T) *Plan {
	st := state(t, `  - {name: t-a, size: 1Gi, attachments: [node-a]}
  - {name: t-b, state: absent}
  - {name: t-c, size: 2Gi, attachments: [node-a], connection: {ctrlLossTmo: 600}}
  - {name: t-d, size: 1Gi, attachments: [node-a], connection: {keepAliveTmo: 15}}
  - {name: t-e, size: 512Mi}
`)
	// Another RDS exports a volume of the same name under the default prefix.
	otherTarget := ctrl("nvme5", "t-orphan", defTimeouts)
	otherTarget.TrAddr = "10.0.0.2"
	off := disk("t-e", gi)
	off.Export = false
	obs := &Observed{Fabric: true, RDS: &rds.Inventory{
		Disks: []rds.Disk{disk("t-b", gi), disk("t-c", gi), disk("t-d", gi), off, disk("t-old", gi)},
	}, Controllers: []fabric.Controller{ctrl("nvme0", "t-b", defTimeouts), ctrl("nvme1", "t-c", defTimeouts),
		ctrl("nvme2", "t-d", defTimeouts), mounted(ctrl("nvme3", "t-gone", defTimeouts)), ctrl("nvme4", "t-orphan", defTimeouts), otherTarget}}
	p := Diff(st, obs, "node-a", Full(false))
	p.Revision = "abc1234+dirty"
	p.CreatedAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p.Files = []string{"state.yaml"}
	return p
}

func TestRenderGolden(t *testing.T) {
	p := goldenPlan(t)
	var b bytes.Buffer
	if err := RenderText(&b, p); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan.txt", b.Bytes())
	b.Reset()
	if err := RenderPlanText(&b, p, TextOptions{Verbose: true}); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan-verbose.txt", b.Bytes())
	b.Reset()
	if err := RenderJSON(&b, p); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan.json", b.Bytes())
	// A saved plan reads back the same.
	back, err := ReadPlan(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if back.Fingerprint != p.Fingerprint || len(back.Actions) != len(p.Actions) {
		t.Errorf("read back %+v", back)
	}

	empty := Diff(state(t, ""), &Observed{Fabric: true, RDS: &rds.Inventory{}}, "node-a", Full(false))
	b.Reset()
	if err := RenderText(&b, empty); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan-empty.txt", b.Bytes())

	st := state(t, `  - {name: t-a, size: 1Gi, attachments: [node-a]}
  - {name: t-b, size: 1Gi, attachments: [node-a]}
`)
	s := BuildStatus(st, &Observed{Fabric: true, RDS: &rds.Inventory{Disks: []rds.Disk{disk("t-a", gi)}},
		Controllers: []fabric.Controller{mounted(ctrl("nvme0", "t-a", defTimeouts)), ctrl("nvme4", "t-orphan", defTimeouts)}}, "node-a")
	s.Revision = "abc1234"
	b.Reset()
	if err := RenderStatusTable(&b, s); err != nil {
		t.Fatal(err)
	}
	golden(t, "status.txt", b.Bytes())
	// /status and status -o json: lower-case keys throughout.
	s.Time = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	js, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "status.json", append(js, '\n'))
	if upper := regexp.MustCompile(`"[A-Z][A-Za-z]*":`).Find(js); upper != nil {
		t.Errorf("status JSON has a Go-cased key %s", upper)
	}
}

func TestReadPlanRejectsOtherVersions(t *testing.T) {
	if _, err := ReadPlan(bytes.NewReader([]byte(`{"format_version":"9"}`))); err == nil {
		t.Error("format_version 9 accepted")
	}
}

func TestRenderApplyGolden(t *testing.T) {
	p := goldenPlan(t)
	res := &Result{Duration: 1234 * time.Millisecond, Blocked: 2}
	for i, a := range p.Actions {
		if a.Kind == KindBlocked {
			continue
		}
		ar := ActionResult{Action: a, Duration: time.Duration(i+1) * 7 * time.Millisecond, Attempts: 1}
		switch a.Kind {
		case KindGrow:
			ar.Attempts, ar.Err = 3, retryableErr
			res.Failed++
		case KindRescan:
			ar = ActionResult{Action: a, Skipped: true, SkipReason: "an earlier step (grow) of volume t-c failed"}
			res.Skipped++
		default:
			res.Succeeded++
		}
		res.Actions = append(res.Actions, ar)
	}
	var b bytes.Buffer
	for _, ar := range res.Actions {
		b.WriteString(ResultLine(ar) + "\n")
	}
	if err := RenderResultSummary(&b, res); err != nil {
		t.Fatal(err)
	}
	golden(t, "apply.txt", b.Bytes())
}
