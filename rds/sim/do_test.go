package sim

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestDoOnError: :do { ... } on-error={ ... }, the form the client's batch
// scripts use (docs/rds.md), in every backend and over real SSH. A failing
// command stops its own block only: on-error runs for it alone, the next
// blocks run, and what the failing block did before its error stays done.
func TestDoOnError(t *testing.T) {
	add := func(slot, size string) string {
		return `/disk add type=file file-path=storage-pool/volumes/` + slot + `.img file-size=` + size + ` slot=` + slot
	}
	item := func(i, cmd string) string {
		return `:do { ` + cmd + ` ; :put "m ok ` + i + `" } on-error={ :put "m err ` + i + `" }`
	}
	cases := []struct {
		name   string
		script string
		want   string   // output
		slots  []string // disks after
	}{
		{name: "all ok",
			script: item("0", add("pvc-a", "1G")) + "; " + item("1", add("pvc-b", "1G")),
			want:   "m ok 0\nm ok 1\n", slots: []string{"pvc-a", "pvc-b"}},
		{name: "one fails in the middle",
			script: item("0", add("pvc-a", "1G")) + "; " + item("1", add("pvc-b", "1000T")) + "; " + item("2", add("pvc-c", "1G")),
			want:   "m ok 0\nm err 1\nm ok 2\n", slots: []string{"pvc-a", "pvc-c"}},
		{name: "error after a done command in one block",
			script: item("0", add("pvc-a", "1G")+"; /disk remove [find slot=\"pvc-zz\"]; "+add("pvc-a", "1G")) + "\n" + item("1", add("pvc-b", "1G")),
			want:   "m err 0\nm ok 1\n", slots: []string{"pvc-a", "pvc-b"}},
		{name: "without on-error the error stops the script",
			script: `:do { ` + add("pvc-a", "1000T") + ` }; :put "after"`,
			want:   "failure: not enough space\n"},
		{name: "empty on-error swallows",
			script: `:do { ` + add("pvc-a", "1000T") + ` } on-error={}; :put "after"`,
			want:   "after\n"},
		{name: "menu change stays in the block",
			script: `:do { /disk; print count-only } on-error={ :put "e" }; print count-only`,
			want:   "bad command name print (line 1 column 56)\n"}, // refused at parse time: nothing ran
		{name: "syntax error anywhere runs nothing",
			script: item("0", add("pvc-a", "1G")) + "; " + `:do { /disk add slot=x } on-error=`,
			want:   "syntax error (line 1 column 173)\n"},
		{name: "unclosed block", script: `:do { :put "x"`, want: "syntax error (line 1 column 15)\n"},
		{name: "while loops are not interpreted", script: `:do { :put "x" } while=(1)`, want: "expected end of command (line 1 column 18)\n"},
	}
	backends := map[string]func(t *testing.T) Backend{
		"memory": func(*testing.T) Backend { return NewMemoryBackend(100 << 30) },
		"file":   func(t *testing.T) Backend { return NewFileBackend(t.TempDir()) },
		"nvmet": func(t *testing.T) Backend {
			dir := t.TempDir()
			return NewNVMetBackend(filepath.Join(dir, "files"), filepath.Join(dir, "configfs"), "127.0.0.1")
		},
	}
	for bn, mk := range backends {
		for _, tc := range cases {
			t.Run(bn+"/"+tc.name, func(t *testing.T) {
				s := startServer(t, Options{Backend: mk(t), PoolSize: 100 << 30})
				c := dial(t, s, "admin")
				if got := mustRun(t, c, tc.script); got != tc.want {
					t.Errorf("output\n%q\nwant\n%q", got, tc.want)
				}
				var slots []string
				for _, d := range s.Disks() {
					slots = append(slots, d.Slot)
				}
				if strings.Join(slots, ",") != strings.Join(tc.slots, ",") {
					t.Errorf("disks %v, want %v", slots, tc.slots)
				}
			})
		}
	}
}

// TestIf: :if (cond) do={ } else={ } with :len, get and comparisons, the
// guards of the client's one-session CSI scripts (docs/rds.md).
func TestIf(t *testing.T) {
	s := newTestServer(t, Options{})
	mustExec(t, s, refAdd)
	cases := []struct{ script, want string }{
		{`:if ([:len [/disk find slot="pvc-test-123"]] = 1) do={ :put "one" } else={ :put "other" }`, "one\n"},
		{`:if ([:len [/disk find slot="nope"]] = 0 && [:len [/file find name="nope.img"]] = 0) do={ :put "free" }`, "free\n"},
		{`:if ([:len [/disk find slot="nope"]] = 0 and [:len [/disk find slot="pvc-test-123"]] = 0) do={ :put "free" } else={ :put "taken" }`, "taken\n"},
		{`:if ([/disk get [find slot="pvc-test-123"] size] < 53687091201) do={ :put "smaller" }`, "smaller\n"},
		{`:if ([/disk get [find slot="pvc-test-123"] size] >= 53687091201) do={ :put "bigger" }; :put "after"`, "after\n"},
		{`:if ([/disk get [find slot="pvc-test-123"] slot] = "pvc-test-123") do={ :put "same" }`, "same\n"},
		{`:if ([/disk get [find slot="pvc-test-123"] slot] < 3) do={ :put "x" }; :put "after"`, "cannot compare \"pvc-test-123\" < \"3\"\n"},
		{`:if ([/disk get [find slot="nope"] size] < 3) do={ :put "x" }; :put "after"`, "no such item\n"},
		{`:if (1 = 1) :put "x"`, "syntax error (line 1 column 13)\n"},
		{`:put [:len [/disk find]]`, "2\n"}, // the pool is a disk too,
	}
	for _, tc := range cases {
		if got := s.Exec(tc.script); got != tc.want {
			t.Errorf("%s\n=> %q, want %q", tc.script, got, tc.want)
		}
	}
}
