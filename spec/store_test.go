package spec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// addVolume is the edit every concurrent updater makes.
func addVolume(name string) func(*State) error {
	return func(s *State) error {
		if s.Volume(name) != nil {
			return fmt.Errorf("volume %s already there", name)
		}
		s.Volumes = append(s.Volumes, Volume{Name: name, Size: Quantity{1 << 30}, Attachments: []string{"node-a"}})
		return nil
	}
}

// TestStoreHelperProcess is not a test: the store tests re-exec the test
// binary with it to get updaters in separate processes.
func TestStoreHelperProcess(t *testing.T) {
	path := os.Getenv("SPEC_STORE_HELPER_PATH")
	if path == "" {
		t.Skip("helper for TestStoreConcurrent")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := OpenStore(path).Update(ctx, addVolume(os.Getenv("SPEC_STORE_HELPER_VOL"))); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
}

// TestStoreConcurrent: 20 goroutines and 20 processes each add a distinct
// volume at the same time; none may be lost, and the result loads together
// with a base file.
func TestStoreConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "csi.yaml")
	ctx := context.Background()
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Go(func() {
			errs <- OpenStore(path).Update(ctx, addVolume(fmt.Sprintf("g-%02d", i)))
		})
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestStoreHelperProcess$")
			cmd.Env = append(os.Environ(), "SPEC_STORE_HELPER_PATH="+path, fmt.Sprintf("SPEC_STORE_HELPER_VOL=p-%02d", i))
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("helper %d: %v: %s", i, err, out)
				return
			}
			errs <- nil
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	st, err := OpenStore(path).Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Volumes) != 2*n {
		t.Fatalf("got %d volumes, want %d: edits were lost", len(st.Volumes), 2*n)
	}
	for i := 1; i < len(st.Volumes); i++ {
		if st.Volumes[i-1].Name >= st.Volumes[i].Name {
			t.Fatalf("volumes not sorted by name: %s before %s", st.Volumes[i-1].Name, st.Volumes[i].Name)
		}
	}
	full, err := Load("testdata/layers/base.yaml", path)
	if err != nil {
		t.Fatalf("the written layer does not load with a base file: %v", err)
	}
	if len(full.Volumes) != 2*n+1 {
		t.Errorf("loaded %d volumes, want %d", len(full.Volumes), 2*n+1)
	}
	if v := full.Volume("g-07"); v == nil || v.Source != path || v.Size.Bytes != 1<<30 {
		t.Errorf("g-07 = %+v", v)
	}
}

func TestStoreReadEmpty(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.yaml")
	if err := os.WriteFile(empty, []byte("\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "none.yaml"), empty} {
		st, err := OpenStore(path).Read()
		if err != nil {
			t.Fatal(err)
		}
		if st.APIVersion != APIVersion || st.Kind != Kind || st.Target != nil || len(st.Volumes) != 0 {
			t.Errorf("empty layer = %+v", st)
		}
	}
}

func TestStoreReadInvalid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("apiVersion: rds-reconcile/v1\nkind: State\nvolumes: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := OpenStore(path).Read()
	var es *Errors
	if !errors.Is(err, ErrLayer) || !errors.As(err, &es) || (*es)[0].Line != 3 {
		t.Fatalf("Read = %v, want ErrLayer wrapping *Errors at line 3", err)
	}
	if err := OpenStore(path).Update(context.Background(), addVolume("x")); !errors.Is(err, ErrLayer) {
		t.Fatalf("Update on a broken layer = %v, want ErrLayer", err)
	}
}

// TestStoreFailuresKeepOldFile: an edit that fails, panics, produces an
// invalid layer, or a write that fails before the rename never changes the
// file on disk.
func TestStoreFailuresKeepOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "layer.yaml")
	ctx := context.Background()
	if err := OpenStore(path).Update(ctx, addVolume("keep")); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	errBoom := errors.New("boom")
	tests := []struct {
		name    string
		store   *Store
		fn      func(*State) error
		wantErr string
	}{
		{"edit error", OpenStore(path), func(s *State) error { s.Volumes = nil; return errBoom }, "boom"},
		{"edit panic", OpenStore(path), func(s *State) error { s.Volumes = nil; panic("half done") }, "panicked: half done"},
		{"invalid result", OpenStore(path), func(s *State) error { s.Volumes[0].Size = Quantity{12345}; return nil }, "multiple of 1Mi"},
		{"invalid name", OpenStore(path), addVolume("Bad_Name"), "DNS-1123"},
		{"write fails", &Store{path: path, beforeRename: func(string) error { return errBoom }}, addVolume("lost"), "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.store.Update(ctx, tt.fn)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Update = %v, want error containing %q", err, tt.wantErr)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(after) != string(before) {
				t.Fatalf("file changed:\n%s", after)
			}
		})
	}
	if !errors.Is(OpenStore(path).Update(ctx, func(*State) error { return errBoom }), errBoom) {
		t.Error("edit error not wrapped with %w")
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".layer.yaml.tmp-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}

// TestStoreLockHonoursContext: while another holder has the lock, Update
// gives up when its context ends.
func TestStoreLockHonoursContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "layer.yaml")
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	called := false
	err = OpenStore(path).Update(ctx, func(*State) error { called = true; return nil })
	if !errors.Is(err, context.DeadlineExceeded) || called {
		t.Fatalf("Update = %v (called=%v), want a deadline error without calling fn", err, called)
	}
}

// TestStoreStableOutput: the written YAML is deterministic and round-trips.
func TestStoreStableOutput(t *testing.T) {
	path := filepath.Join(t.TempDir(), "layer.yaml")
	ctx := context.Background()
	for _, name := range []string{"zz", "aa", "mm"} {
		if err := OpenStore(path).Update(ctx, addVolume(name)); err != nil {
			t.Fatal(err)
		}
	}
	err := OpenStore(path).Update(ctx, func(s *State) error {
		s.Hosts = map[string]Host{"node-a": {HostNQN: "nqn.2014-08.org.nvmexpress:uuid:aaaa"}}
		v := s.Volume("mm")
		v.Connection.CtrlLossTmo = intPtr(60)
		v.Protect = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "testdata/store/layer.golden", string(got))
	// A no-op update writes the same bytes.
	if err := OpenStore(path).Update(ctx, func(*State) error { return nil }); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(path)
	if string(again) != string(got) {
		t.Errorf("no-op update changed the file:\n%s", again)
	}
}
