package reconcile

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

var updateDoc = flag.Bool("update-doc", false, "rewrite the generated tables in docs/reconcile.md")

// kindDoc renders kindTable as the markdown table of docs/reconcile.md.
func kindDoc() string {
	var b strings.Builder
	b.WriteString("| kind | mark | phase | side | summary | destructive | waits for |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, k := range Kinds() {
		side, phase := string(k.Side()), k.Phase().String()
		if k == KindBlocked {
			side, phase = "(wanted's)", "(wanted's)"
		}
		destructive := ""
		if k.Destructive() {
			destructive = "yes"
		}
		var needs []string
		for _, n := range k.Needs() {
			needs = append(needs, "`"+string(n)+"`")
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s | %s | %s | %s |\n",
			k, k.Mark(), phase, side, k.Bucket(), destructive, strings.Join(needs, ", "))
	}
	return b.String()
}

const (
	kindDocBegin = "<!-- kinds: generated from reconcile/kind.go; go test ./reconcile -run TestKindTableDoc -update-doc -->\n"
	kindDocEnd   = "<!-- /kinds -->\n"
)

// TestKindTableDoc keeps docs/reconcile.md's "Action kinds" table equal to
// kindTable, so the doc cannot disagree with the code.
func TestKindTableDoc(t *testing.T) {
	const path = "../docs/reconcile.md"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i, j := strings.Index(s, kindDocBegin), strings.Index(s, kindDocEnd)
	if i < 0 || j < i {
		t.Fatalf("%s: no %q ... %q section", path, kindDocBegin, kindDocEnd)
	}
	got, want := s[i+len(kindDocBegin):j], kindDoc()
	if got == want {
		return
	}
	if *updateDoc {
		if err := os.WriteFile(path, []byte(s[:i+len(kindDocBegin)]+want+s[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s: the action kinds table differs from kindTable (go test ./reconcile -run TestKindTableDoc -update-doc):\n--- doc\n%s--- table\n%s", path, got, want)
}

// TestKindTable checks the table is whole and consistent: every kind once,
// a mark from the legend, a needed kind runs no later than its dependent,
// and the phase's side is the kind's side.
func TestKindTable(t *testing.T) {
	seen := map[Kind]bool{}
	for _, k := range Kinds() {
		if seen[k] {
			t.Errorf("%s twice in kindTable", k)
		}
		seen[k] = true
		if !k.Known() || !strings.Contains("+ ~ -/+ x - !", k.Mark()) || k.Bucket() == "" {
			t.Errorf("%s: known %v, mark %q, bucket %q", k, k.Known(), k.Mark(), k.Bucket())
		}
		if k == KindBlocked {
			continue
		}
		if k.Phase().Side() != k.Side() {
			t.Errorf("%s: side %s in phase %s of side %s", k, k.Side(), k.Phase(), k.Phase().Side())
		}
		if k.OnRDS() != (k.Side() == SideRDS) {
			t.Errorf("%s: OnRDS %v, side %s", k, k.OnRDS(), k.Side())
		}
		for _, n := range k.Needs() {
			if n.Phase() > k.Phase() || !n.Known() {
				t.Errorf("%s (phase %s) needs %s (phase %s)", k, k.Phase(), n, n.Phase())
			}
			if !slices.Contains(n.NeededBy(), k) {
				t.Errorf("%s needs %s but %s.NeededBy() = %v", k, n, n, n.NeededBy())
			}
		}
	}
	for _, k := range []Kind{KindCreate, KindFixExport, KindGrow, KindConnect, KindSetTimeouts, KindRescan,
		KindReconnect, KindDisconnect, KindDisconnectOrphan, KindDelete, KindRemoveFile, KindBlocked,
		KindCreateSnapshot, KindCreateFrom, KindDeleteSnapshot} {
		if !seen[k] {
			t.Errorf("%s missing from kindTable", k)
		}
	}
	if u := Kind("snapshot"); u.Known() || u.Mark() != "?" || u.Bucket() != "" || u.OnRDS() || u.Destructive() {
		t.Errorf("unknown kind reads as known: %q %q", u.Mark(), u.Bucket())
	}
}

// TestKindProperties pins what the switches the table replaced said, kind
// by kind, so moving them into one table changed nothing.
func TestKindProperties(t *testing.T) {
	tests := []struct {
		kind        Kind
		mark        string
		phase       Phase
		onRDS       bool
		bucket      Bucket
		destructive bool
		needs       []Kind
	}{
		{KindCreate, "+", PhaseRDS, true, BucketCreate, false, nil},
		{KindFixExport, "~", PhaseRDS, true, BucketChange, false, nil},
		{KindGrow, "~", PhaseRDS, true, BucketChange, false, nil},
		{KindConnect, "+", PhaseHost, false, BucketCreate, false, []Kind{KindCreate, KindCreateFrom, KindFixExport}},
		{KindSetTimeouts, "~", PhaseHost, false, BucketChange, false, nil},
		{KindRescan, "~", PhaseHost, false, BucketChange, false, []Kind{KindCreate, KindCreateFrom, KindGrow, KindFixExport}},
		{KindReconnect, "-/+", PhaseHost, false, BucketChange, false, []Kind{KindCreate, KindCreateFrom, KindFixExport}},
		{KindDisconnect, "x", PhaseHostDetach, false, BucketDisconnect, true, nil},
		{KindDisconnectOrphan, "x", PhaseHostDetach, false, BucketDisconnect, true, nil},
		{KindDelete, "-", PhaseRDSDelete, true, BucketDelete, true, []Kind{KindDisconnect}},
		{KindRemoveFile, "-", PhaseRDSDelete, true, BucketDelete, true, []Kind{KindDisconnect, KindDelete}},
		{KindBlocked, "!", PhaseRDS, false, BucketBlocked, false, nil},
		// Snapshots, restores and clones: a copy's wait for its source is
		// Action.Source's (sourceNeeds), not a kind of its own volume.
		{KindCreateSnapshot, "+", PhaseRDSSnapshot, true, BucketCreate, false, nil},
		{KindCreateFrom, "+", PhaseRDSCopy, true, BucketCreate, false, nil},
		{KindDeleteSnapshot, "-", PhaseRDSDelete, true, BucketDelete, true, nil},
	}
	for _, tt := range tests {
		k := tt.kind
		if k.Mark() != tt.mark || k.Phase() != tt.phase || k.OnRDS() != tt.onRDS || k.Bucket() != tt.bucket ||
			k.Destructive() != tt.destructive || fmt.Sprint(k.Needs()) != fmt.Sprint(tt.needs) {
			t.Errorf("%s: mark %q phase %s rds %v bucket %s destructive %v needs %v; want %+v",
				k, k.Mark(), k.Phase(), k.OnRDS(), k.Bucket(), k.Destructive(), k.Needs(), tt)
		}
	}
}

func TestPhaseTable(t *testing.T) {
	tests := []struct {
		phase Phase
		name  string
		title string
	}{
		{PhaseRDS, "rds", "RDS: create and repair"},
		{PhaseRDSSnapshot, "rds-snapshot", "RDS: snapshot"},
		{PhaseRDSCopy, "rds-copy", "RDS: restore and clone"},
		{PhaseHost, "host", "Host node-a: connect and update"},
		{PhaseHostDetach, "host-detach", "Host node-a: disconnect"},
		{PhaseRDSDelete, "rds-delete", "RDS: delete"},
		{Phase(9), "unknown", "unknown"},
	}
	for _, tt := range tests {
		if got := tt.phase.String(); got != tt.name {
			t.Errorf("%d.String() = %q, want %q", tt.phase, got, tt.name)
		}
		if got := tt.phase.Title("node-a"); got != tt.title {
			t.Errorf("%d.Title = %q, want %q", tt.phase, got, tt.title)
		}
		var back Phase
		err := back.UnmarshalText([]byte(tt.name))
		if tt.name == "unknown" {
			if err == nil {
				t.Errorf("UnmarshalText(unknown) = %d, want an error", back)
			}
			continue
		}
		if err != nil || back != tt.phase {
			t.Errorf("UnmarshalText(%q) = %d, %v", tt.name, back, err)
		}
	}
	if got := fmt.Sprint(Phases()); got != "[rds rds-snapshot rds-copy host host-detach rds-delete]" {
		t.Errorf("Phases() = %s", got)
	}
}
