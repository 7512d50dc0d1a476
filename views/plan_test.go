package views

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/reconcile"
	"github.com/rds-reconcile/rds-reconcile/views/jsonplan"
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
		t.Errorf("%s differs (go test ./views -run %s -update to accept):\n--- got\n%s\n--- want\n%s", path, t.Name(), got, want)
	}
}

// render runs show on a fresh plan view of format and returns what it wrote.
func renderPlan(t *testing.T, format string, o PlanOptions, p *reconcile.Plan) []byte {
	t.Helper()
	var b bytes.Buffer
	v, err := NewPlan(format, &b, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Plan(p, ""); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestRenderGolden(t *testing.T) {
	p := goldenPlan(t)
	golden(t, "plan.txt", renderPlan(t, Text, PlanOptions{}, p))
	golden(t, "plan-verbose.txt", renderPlan(t, Text, PlanOptions{Verbose: true}, p))
	js := renderPlan(t, JSON, PlanOptions{}, p)
	golden(t, "plan.json", js)
	// A saved plan reads back the same.
	back, err := jsonplan.ReadPlan(bytes.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	if back.Fingerprint != p.Fingerprint || len(back.Actions) != len(p.Actions) {
		t.Errorf("read back %+v", back)
	}

	empty := reconcile.Diff(state(t, ""), &reconcile.Observed{Fabric: true, RDS: &rds.Inventory{}}, "node-a", reconcile.Full(false))
	golden(t, "plan-empty.txt", renderPlan(t, Text, PlanOptions{}, empty))

	s := goldenStatus(t)
	golden(t, "status.txt", renderStatus(t, Table, s, ""))
	// /status and status -o json: lower-case keys throughout.
	js = renderStatus(t, JSON, s, "RouterOS 7.21 (stable)")
	golden(t, "status.json", js)
	if upper := regexp.MustCompile(`"[A-Z][A-Za-z]*":`).Find(js); upper != nil {
		t.Errorf("status JSON has a Go-cased key %s", upper)
	}
}

func renderStatus(t *testing.T, format string, s *reconcile.Status, rds string) []byte {
	t.Helper()
	var b bytes.Buffer
	v, err := NewStatus(format, &b)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Status(s, rds); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestTextHeaders: the human views name the RDS's RouterOS first when
// the client read it, and plan --out says where the plan went; the JSON
// views print neither, so their output stays one document.
func TestTextHeaders(t *testing.T) {
	p := goldenPlan(t)
	for _, format := range []string{Text, JSON} {
		var b bytes.Buffer
		v, err := NewPlan(format, &b, PlanOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Plan(p, "RouterOS 7.21 (stable)"); err != nil {
			t.Fatal(err)
		}
		if err := v.Saved("tonight.plan"); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		head := strings.HasPrefix(out, "RDS: RouterOS 7.21 (stable)\nPlan for host \"node-a\"")
		saved := strings.HasSuffix(out, "\nSaved the plan to tonight.plan; apply it with: rds-reconcile apply tonight.plan\n")
		if want := format == Text; head != want || saved != want {
			t.Errorf("%s: RDS header %v, saved line %v, want %v:\n%s", format, head, saved, want, out)
		}
	}
	st := renderStatus(t, Table, goldenStatus(t), "RouterOS 7.21 (stable)")
	if !bytes.HasPrefix(st, []byte("RDS: RouterOS 7.21 (stable)\nStatus of host \"node-a\"")) {
		t.Errorf("status table:\n%s", st)
	}
}

// TestPlanTextDuringAnOutage: a controller the kernel is reconnecting
// gets no action, but the plan says so instead of "matches the desired
// state".
func TestPlanTextDuringAnOutage(t *testing.T) {
	p := &reconcile.Plan{Host: "node-a", Reconnecting: []reconcile.Reconnecting{{Volume: "t-a", Controller: "nvme0",
		State: "connecting", Reason: "the kernel is reconnecting every 5 s"}}}
	out := string(renderPlan(t, Text, PlanOptions{}, p))
	for _, want := range []string{"t-a (nvme0) is connecting: the kernel is reconnecting every 5 s", "not converged yet"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan text lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "matches the desired state") {
		t.Errorf("plan during an outage says all is well:\n%s", out)
	}
}

func TestUnknownFormat(t *testing.T) {
	_, errPlan := NewPlan("yaml", nil, PlanOptions{})
	_, errApply := NewApply("table", nil, PlanOptions{})
	_, errStatus := NewStatus("text", nil)
	for _, c := range []struct {
		err  error
		want string
	}{
		{errPlan, `-o/--output "yaml": want text or json`},
		{errApply, `-o/--output "table": want text or json`},
		{errStatus, `-o/--output "text": want table or json`},
	} {
		if c.err == nil || c.err.Error() != c.want {
			t.Errorf("error %v, want %q", c.err, c.want)
		}
	}
}
