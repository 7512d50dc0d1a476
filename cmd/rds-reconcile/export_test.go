package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/reconcile"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// TestExportRoundTrip: every explicit value survives export -> load ->
// export byte for byte, and the key files still resolve, whatever the
// current folder and the output folder.
func TestExportRoundTrip(t *testing.T) {
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	noJitter := filepath.Join(t.TempDir(), "nojitter.yaml")
	src, err := os.ReadFile(filepath.Join(repo, "examples/demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	st0, err := spec.LoadBytes(noJitter, src)
	if err != nil {
		t.Fatal(err)
	}
	st0.Defaults.Retry.Jitter = 0
	st0.Target.SSH.PrivateKeyFile = filepath.Join(repo, "examples/demo/client_key")
	var b0 bytes.Buffer
	if err := encodeState(&b0, st0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(noJitter, b0.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{filepath.Join(repo, "examples/demo.yaml"), filepath.Join(repo, "examples/homelab.yaml"), noJitter} {
		for _, cwd := range []string{repo, t.TempDir()} {
			for _, outDir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "deeper", "still")} {
				t.Run(filepath.Base(file)+"/"+filepath.Base(cwd)+"/"+filepath.Base(outDir), func(t *testing.T) {
					t.Chdir(cwd)
					rel, err := filepath.Rel(cwd, file)
					if err != nil {
						t.Fatal(err)
					}
					first := exportTo(t, rel, filepath.Join(outDir, "a.yaml"))
					second := exportTo(t, filepath.Join(outDir, "a.yaml"), filepath.Join(outDir, "b.yaml"))
					if !bytes.Equal(first, second) {
						t.Errorf("export of the export differs:\n--- first\n%s\n--- second\n%s", first, second)
					}
					a, err := spec.Load(filepath.Join(outDir, "a.yaml"))
					if err != nil {
						t.Fatalf("exported state does not load: %v", err)
					}
					orig, err := spec.Load(rel)
					if err != nil {
						t.Fatal(err)
					}
					if reconcile.PolicyFrom(a) != reconcile.PolicyFrom(orig) {
						t.Errorf("retry policy changed: %+v -> %+v", reconcile.PolicyFrom(orig), reconcile.PolicyFrom(a))
					}
					if k := a.Target.SSH.KnownHostsFile; k != "" && orig.Target.SSH.KnownHostsFile != "" {
						wantAbs, _ := filepath.Abs(orig.Target.SSH.KnownHostsFile)
						gotAbs, _ := filepath.Abs(k)
						if wantAbs != gotAbs {
							t.Errorf("knownHostsFile resolves to %s, want %s", gotAbs, wantAbs)
						}
					}
				})
			}
		}
	}
}

// exportTo loads from, exports it as export does (no live volumes) to
// out, and returns the bytes written.
func exportTo(t *testing.T, from, out string) []byte {
	t.Helper()
	st, err := spec.Load(from)
	if err != nil {
		t.Fatal(err)
	}
	ex := reconcile.Export(st, &reconcile.Observed{}, "node-a")
	ex.Volumes = st.Volumes // keep the declared ones: the round trip is about every field
	if err := rebaseFiles(ex, out); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := encodeState(&b, ex); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
