package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

// runCLI runs the command line in-process and returns exit code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

const (
	demo        = "../../examples/demo.yaml"
	homelab     = "../../examples/homelab.yaml"
	threeErrors = "../../spec/testdata/three-errors.yaml"
)

func TestValidateDemo(t *testing.T) {
	code, out, errOut := runCLI(t, "validate", "-f", demo)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if want := demo + ": valid: 3 volumes (2 present, 1 absent), 2 hosts\n"; out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}
}

func TestValidateHomelab(t *testing.T) {
	code, out, errOut := runCLI(t, "validate", "--file", homelab)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if want := homelab + ": valid: 5 volumes (4 present, 1 absent), 3 hosts, 2 snapshots\n"; out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}
}

func TestValidateLayers(t *testing.T) {
	dir := t.TempDir()
	layer := filepath.Join(dir, "csi.yaml")
	data := "apiVersion: rds-reconcile/v1\nkind: State\nvolumes:\n  - name: demo-pvc-1\n    size: 1Gi\n    attachments: [node-b]\n"
	if err := os.WriteFile(layer, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "validate", "-f", demo, "-f", layer)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if want := demo + ", " + layer + ": valid: 4 volumes (3 present, 1 absent), 2 hosts\n"; out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}
}

var errLineRE = regexp.MustCompile(`^\.\./\.\./spec/testdata/three-errors\.yaml:\d+:\d+: \S+: .+$`)

// TestValidateInvalid: exactly the three positioned errors on stderr,
// nothing on stdout, no usage dump, exit 1.
func TestValidateInvalid(t *testing.T) {
	code, out, errOut := runCLI(t, "validate", "-f", threeErrors)
	if code != 1 || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 lines on stderr, got:\n%s", errOut)
	}
	for _, l := range lines {
		if !errLineRE.MatchString(l) {
			t.Errorf("not FILE:LINE:COL: path: message: %q", l)
		}
	}
	_, err := spec.Load(threeErrors)
	if errOut != err.Error()+"\n" {
		t.Errorf("stderr differs from spec.Load's errors:\n%s", errOut)
	}
	for _, bad := range []string{"Usage:", "Error:"} {
		if strings.Contains(errOut, bad) {
			t.Errorf("stderr contains %q", bad)
		}
	}
}

func TestValidateUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no file", []string{"validate"}, `required flag(s) "file" not set`},
		{"missing file", []string{"validate", "-f", "does-not-exist.yaml"}, "does-not-exist.yaml: cannot read the state file"},
		{"stray argument", []string{"validate", "-f", demo, "extra"}, "validate takes no arguments; give state files with -f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.args...)
			if code != 1 || out != "" || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errOut, tt.want)
			}
		})
	}
}

// TestValidateCompletion: -f completes YAML files only.
func TestValidateCompletion(t *testing.T) {
	code, out, _ := runCLI(t, "__complete", "validate", "-f", "")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out, "yaml\nyml\n:8") {
		t.Errorf("completion = %q, want the yaml/yml extension filter (directive 8)", out)
	}
}

func TestSchemaCommand(t *testing.T) {
	code, out, errOut := runCLI(t, "schema")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if out != string(spec.Schema()) {
		t.Error("schema output differs from spec.Schema()")
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	if v["$schema"] == nil || v["properties"] == nil {
		t.Errorf("schema lacks $schema or properties")
	}
}
