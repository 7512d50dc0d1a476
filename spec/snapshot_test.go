package spec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSnapshotValidation: every snapshot and source rule, each case one
// error at one path (or none).
func TestSnapshotValidation(t *testing.T) {
	doc := func(slotPrefix, rest string) string {
		sp := ""
		if slotPrefix != "" {
			sp = "  slotPrefix: " + slotPrefix + "\n"
		}
		return "apiVersion: rds-reconcile/v1\nkind: State\ntarget:\n  address: 10.0.0.1\n  basePath: pool/vols\n" + sp + rest
	}
	vols := "volumes:\n  - {name: db, size: 1Gi}\n  - {name: old, state: absent}\n"
	tests := []struct {
		name, doc, path, msg string
	}{
		{"snapshot ok", doc("", vols+"snapshots:\n  - {name: snap-db-1, volume: db, protect: true}\n"), "", ""},
		{"restore and clone ok", doc("", vols+"  - {name: r, size: 1Gi, source: {snapshot: snap-db-1}}\n  - {name: c, size: 2Gi, source: {volume: db}}\n"+
			"snapshots:\n  - {name: snap-db-1, volume: db}\n"), "", ""},
		{"source snapshot absent is fine", doc("", vols+"  - {name: r, size: 1Gi, source: {snapshot: snap-db-1}}\nsnapshots:\n  - {name: snap-db-1, state: absent}\n"), "", ""},
		{"slot prefix ok", doc("pvc-", "volumes:\n  - {name: pvc-db, size: 1Gi}\nsnapshots:\n  - {name: pvc-snap-a, volume: pvc-db}\n"), "", ""},
		{"snapshot without prefix", doc("", vols+"snapshots:\n  - {name: nightly, volume: db}\n"), "snapshots[0].name", `must start with "snap-"`},
		{"snapshot without slot prefix", doc("pvc-", "volumes:\n  - {name: pvc-db, size: 1Gi}\nsnapshots:\n  - {name: pvc-a, volume: pvc-db}\n"), "snapshots[0].name", `rename it to "pvc-snap-a"`},
		{"snapshot prefix only", doc("", vols+"snapshots:\n  - {name: snap-, volume: db}\n"), "snapshots[0].name", "DNS-1123"},
		{"snapshot name not a label", doc("", vols+"snapshots:\n  - {name: Snap_1, volume: db}\n"), "snapshots[0].name", "DNS-1123"},
		{"volume named like a snapshot", doc("", "volumes:\n  - {name: snap-x, size: 1Gi}\n"), "volumes[0].name", "names snapshots"},
		{"snapshot without volume", doc("", vols+"snapshots:\n  - {name: snap-a}\n"), "snapshots[0].volume", "is required"},
		{"snapshot of an unknown volume", doc("", vols+"snapshots:\n  - {name: snap-a, volume: nope}\n"), "snapshots[0].volume", `volume "nope" is not declared (declared: db)`},
		{"snapshot of an absent volume (it outlives it)", doc("", vols+"snapshots:\n  - {name: snap-a, volume: old}\n"), "", ""},
		{"absent snapshot protected", doc("", vols+"snapshots:\n  - {name: snap-a, state: absent, protect: true}\n"), "snapshots[0].protect", "remove protect"},
		{"bad snapshot state", doc("", vols+"snapshots:\n  - {name: snap-a, volume: db, state: gone}\n"), "snapshots[0].state", "must be one of present, absent"},
		{"bad createdAt", doc("", vols+"snapshots:\n  - {name: snap-a, volume: db, createdAt: yesterday}\n"), "snapshots[0].createdAt", "RFC 3339"},
		{"duplicate snapshot", doc("", vols+"snapshots:\n  - {name: snap-a, volume: db}\n  - {name: snap-a, volume: db}\n"), "snapshots[1].name", "already declared (line 10)"},
		{"unknown snapshot field", doc("", vols+"snapshots:\n  - {name: snap-a, volume: db, protected: true}\n"), "snapshots[0].protected", `did you mean "protect"`},
		{"source both", doc("", vols+"  - {name: r, size: 1Gi, source: {snapshot: snap-a, volume: db}}\nsnapshots:\n  - {name: snap-a, volume: db}\n"), "volumes[2].source", "keep one"},
		{"source empty", doc("", vols+"  - {name: r, size: 1Gi, source: {}}\n"), "volumes[2].source", "names nothing"},
		{"source unknown snapshot", doc("", vols+"  - {name: r, size: 1Gi, source: {snapshot: snap-zz}}\n"), "volumes[2].source.snapshot", `snapshot "snap-zz" is not declared; declare it under snapshots`},
		{"source unknown volume", doc("", vols+"  - {name: r, size: 1Gi, source: {volume: nope}}\n"), "volumes[2].source.volume", `volume "nope" is not declared`},
		{"source itself", doc("", vols+"  - {name: r, size: 1Gi, source: {volume: r}}\n"), "volumes[2].source.volume", "from itself"},
		{"source on absent volume", doc("", "volumes:\n  - {name: db, size: 1Gi}\n  - {name: r, state: absent, source: {volume: db}}\n"), "volumes[1].source", "remove source"},
		{"source unknown field", doc("", vols+"  - {name: r, size: 1Gi, source: {snapshot: snap-a, snap: x}}\nsnapshots:\n  - {name: snap-a, volume: db}\n"), "volumes[2].source.snap", "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := LoadBytes("s.yaml", []byte(tt.doc))
			if tt.path == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				for _, s := range st.Snapshots {
					if s.State != Present && s.State != Absent {
						t.Errorf("snapshot %s state %q not defaulted", s.Name, s.State)
					}
				}
				return
			}
			var es *Errors
			if !errors.As(err, &es) {
				t.Fatalf("want *Errors, got %v", err)
			}
			if len(*es) != 1 {
				t.Fatalf("want 1 error, got %d:\n%v", len(*es), err)
			}
			e := (*es)[0]
			if e.Path != tt.path || !strings.Contains(e.Msg, tt.msg) || e.Line == 0 {
				t.Errorf("got %v\nwant path %q, line > 0, message containing %q", e, tt.path, tt.msg)
			}
		})
	}
}

// TestSnapshotLayers: snapshots merge across files, a name in two files is
// an error naming both, and every snapshot knows its file.
func TestSnapshotLayers(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.yaml")
	writeFile(t, base, "apiVersion: rds-reconcile/v1\nkind: State\ntarget: {address: 10.0.0.1, basePath: pool/vols}\n"+
		"volumes:\n  - {name: db, size: 1Gi}\nsnapshots:\n  - {name: snap-a, volume: db}\n")
	layer := filepath.Join(dir, "csi.yaml")
	writeFile(t, layer, "apiVersion: rds-reconcile/v1\nkind: State\nvolumes:\n  - {name: r, size: 1Gi, source: {snapshot: snap-a}}\n"+
		"snapshots:\n  - {name: snap-b, volume: db}\n")
	st, err := Load(base, layer)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := st.Snapshot("snap-a"), st.Snapshot("snap-b"); a == nil || b == nil || a.Source != base || b.Source != layer {
		t.Fatalf("snapshots = %+v", st.Snapshots)
	}
	if v := st.Volume("r"); v.From.String() != "snapshot snap-a" || v.From.Name() != "snap-a" {
		t.Errorf("r.source = %+v", v.From)
	}
	dup := filepath.Join(dir, "dup.yaml")
	writeFile(t, dup, "apiVersion: rds-reconcile/v1\nkind: State\nsnapshots:\n  - {name: snap-a, volume: db}\n")
	_, err = Load(base, dup)
	if err == nil || !strings.Contains(err.Error(), dup+":4:") || !strings.Contains(err.Error(), base+" line 7") {
		t.Errorf("duplicate across files: %v", err)
	}
}

// TestSnapshotStoreRoundTrip: a layer with snapshots and sources is written
// sorted and reads back the same.
func TestSnapshotStoreRoundTrip(t *testing.T) {
	s := &State{
		Volumes:   []Volume{{Name: "r", Size: Quantity{1 << 30}, From: &VolumeSource{Snapshot: "snap-a"}}},
		Snapshots: []Snapshot{{Name: "snap-b", Volume: "db", CreatedAt: "2026-01-02T03:04:05Z"}, {Name: "snap-a", Volume: "db"}},
	}
	data, err := EncodeLayer("l.yaml", s)
	if err != nil {
		t.Fatal(err)
	}
	got := string(data)
	if strings.Index(got, "snap-a") > strings.Index(got, "name: snap-b") || !strings.Contains(got, "source:\n      snapshot: snap-a") {
		t.Errorf("layer:\n%s", got)
	}
	back, err := ParseLayer("l.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Snapshots) != 2 || back.Snapshots[1].CreatedAt != "2026-01-02T03:04:05Z" || back.Snapshots[0].Source != "l.yaml" ||
		back.Volumes[0].From == nil || back.Volumes[0].From.Snapshot != "snap-a" {
		t.Errorf("read back %+v", back)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotSchema: the JSON Schema takes snapshots and sources as Load
// does, and refuses the shapes Load refuses.
func TestSnapshotSchema(t *testing.T) {
	s := compileSchema(t)
	head := "apiVersion: rds-reconcile/v1\nkind: State\nvolumes:\n  - {name: db, size: 1Gi}\n"
	tests := []struct {
		name, doc string
		ok        bool
	}{
		{"restore", head + "  - {name: r, size: 1Gi, source: {snapshot: snap-a}}\nsnapshots:\n  - {name: snap-a, volume: db, protect: true, createdAt: '2026-01-02T03:04:05Z'}\n", true},
		{"clone", head + "  - {name: c, size: 1Gi, source: {volume: db}}\n", true},
		{"absent snapshot", head + "snapshots:\n  - {name: snap-a, state: absent}\n", true},
		{"source both", head + "  - {name: r, size: 1Gi, source: {snapshot: snap-a, volume: db}}\n", false},
		{"source empty", head + "  - {name: r, size: 1Gi, source: {}}\n", false},
		{"absent volume with source", head + "  - {name: r, state: absent, source: {volume: db}}\n", false},
		{"snapshot without volume", head + "snapshots:\n  - {name: snap-a}\n", false},
		{"absent protected snapshot", head + "snapshots:\n  - {name: snap-a, state: absent, protect: true}\n", false},
		{"unknown snapshot field", head + "snapshots:\n  - {name: snap-a, volume: db, size: 1Gi}\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Validate(yamlToJSONValue(t, []byte(tt.doc)))
			if (err == nil) != tt.ok {
				t.Errorf("schema says %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
