package csi

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

const memoBase = `apiVersion: rds-reconcile/v1
kind: State
target:
  address: 127.0.0.1
  nvmePort: 4420
  basePath: storage-pool/volumes
`

func memoLayer(names ...string) []byte {
	var b strings.Builder
	b.WriteString("apiVersion: rds-reconcile/v1\nkind: State\nvolumes:\n")
	for _, n := range names {
		b.WriteString("  - name: " + n + "\n    size: 16Mi\n")
	}
	return []byte(b.String())
}

func volumeNames(st *spec.State) []string {
	var out []string
	for _, v := range st.Volumes {
		out = append(out, v.Name)
	}
	return out
}

// TestLoadMemo: the memo gives what spec.LoadWith gives for the same bytes,
// a copy each caller may change without touching the next caller's, and
// loads again when one byte of the layer or of a base file changes.
func TestLoadMemo(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.yaml")
	if err := os.WriteFile(base, []byte(memoBase), 0o600); err != nil {
		t.Fatal(err)
	}
	files := []string{base}
	var m loadMemo
	check := func(what string, layer []byte, want []string) *spec.State {
		t.Helper()
		got, err := m.load(files, "layer", layer)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		direct, err := spec.LoadWith(files, "layer", layer)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, direct) {
			t.Errorf("%s: the memo's state differs from LoadWith's:\n%+v\n%+v", what, got, direct)
		}
		if n := volumeNames(got); !reflect.DeepEqual(n, want) {
			t.Errorf("%s: volumes %v, want %v", what, n, want)
		}
		return got
	}
	first := check("first load", memoLayer("a", "b"), []string{"a", "b"})
	first.Volumes[0].Name = "changed by a caller"
	first.Target.Address = "10.9.9.9"
	again := check("same bytes", memoLayer("a", "b"), []string{"a", "b"})
	if again.Target.Address != "127.0.0.1" {
		t.Errorf("a caller's change reached the next caller: %q", again.Target.Address)
	}
	check("a changed layer", memoLayer("a", "b", "c"), []string{"a", "b", "c"})
	// The base changes, the layer does not: a new load, which sees it.
	if err := os.WriteFile(base, []byte(strings.Replace(memoBase, "127.0.0.1", "127.0.0.2", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if st := check("a changed base", memoLayer("a", "b", "c"), []string{"a", "b", "c"}); st.Target.Address != "127.0.0.2" {
		t.Errorf("the base's change was not seen: %q", st.Target.Address)
	}
	// An invalid layer is an error every time, never a remembered state.
	for range 2 {
		if _, err := m.load(files, "layer", []byte("apiVersion: rds-reconcile/v1\nkind: State\nvolumes: 7\n")); err == nil {
			t.Fatal("an invalid layer loaded")
		}
	}
	// A base file that is gone: LoadWith's error.
	if _, err := m.load([]string{filepath.Join(dir, "gone.yaml")}, "layer", memoLayer("a")); err == nil || !strings.Contains(err.Error(), "gone.yaml") {
		t.Errorf("a missing base file: %v", err)
	}
}

// TestLoadMemoConcurrent: callers that come for the same bytes at once get
// equal, unshared states (run with -race: a shared one would race here).
func TestLoadMemoConcurrent(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.yaml")
	if err := os.WriteFile(base, []byte(memoBase), 0o600); err != nil {
		t.Fatal(err)
	}
	var m loadMemo
	layer := memoLayer("a", "b", "c")
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			st, err := m.load([]string{base}, "layer", layer)
			if err != nil {
				t.Error(err)
				return
			}
			if n := volumeNames(st); len(n) != 3 {
				t.Errorf("caller %d: volumes %v", i, n)
			}
			st.Volumes[0].Size.Bytes = int64(i) // each its own copy
			st.Volumes = append(st.Volumes, spec.Volume{Name: "mine"})
		})
	}
	wg.Wait()
}
