package spec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFileTooLarge: a state file over MaxFileSize is refused before it is
// parsed, with the file, its size and the limit in the message; one at the
// limit is parsed.
func TestFileTooLarge(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "state.yaml")
	doc := minimal + "# " + strings.Repeat("x", MaxFileSize) + "\n"
	if err := os.WriteFile(big, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s: %d bytes, more than the 4 MiB a state file may have", big, len(doc))
	_, err := Load(big)
	var es *Errors
	if !errors.As(err, &es) || len(*es) != 1 || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Load: want one error starting %q, got %v", want, err)
	}
	_, err = LoadBytes("state.yaml", []byte(doc))
	if err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf("state.yaml: %d bytes, more than the 4 MiB", len(doc))) {
		t.Errorf("LoadBytes: %v", err)
	}
	// The CSI layers are read through Store.
	_, err = OpenStore(big).Read()
	if !errors.Is(err, ErrLayer) || !strings.Contains(err.Error(), want) {
		t.Errorf("Store.Read: %v", err)
	}
	// A pipe has no size up front: the read itself is bounded.
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := mkfifo(fifo); err == nil {
		go func() {
			f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
			if err == nil {
				_, _ = f.WriteString(doc)
				f.Close()
			}
		}()
		_, err := Load(fifo)
		if err == nil || !strings.Contains(err.Error(), fifo+": more than the 4 MiB a state file may have") {
			t.Errorf("Load(fifo): %v", err)
		}
	}
	// At the limit it is read and parsed.
	ok := minimal + "# " + strings.Repeat("x", MaxFileSize-len(minimal)-3) + "\n"
	if len(ok) != MaxFileSize {
		t.Fatalf("test bug: %d bytes", len(ok))
	}
	if err := os.WriteFile(big, []byte(ok), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err != nil {
		t.Errorf("Load at the limit: %v", err)
	}
}

func TestClip(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"abc", "abc"},
		{strings.Repeat("a", 64), strings.Repeat("a", 64)},
		{strings.Repeat("a", 65), strings.Repeat("a", 64) + "... (65 bytes)"},
		{strings.Repeat("a", 63) + "é", strings.Repeat("a", 63) + "... (65 bytes)"}, // never half a character
	}
	for _, tt := range tests {
		if got := clip(tt.in); got != tt.want {
			t.Errorf("clip(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestLongValuesClipped: every message that repeats a user value repeats
// at most 64 bytes of it and says how long it was.
func TestLongValuesClipped(t *testing.T) {
	long := strings.Repeat("x", 1<<20)
	key := strings.Repeat("x", 1000) // YAML keys are at most 1024 characters
	head := "apiVersion: rds-reconcile/v1\nkind: State\n"
	target := head + "target:\n  address: 10.0.0.1\n  basePath: pool\n"
	hosts := "hosts:\n  h1: {hostNQN: nqn.2014-08.org.nvmexpress:uuid:1}\n"
	tests := []struct{ name, doc string }{
		{"volume name", target + "volumes:\n  - {name: " + long + ", size: 1Gi}\n"},
		{"duplicate volume name", target + "volumes:\n  - {name: " + long + ", size: 1Gi}\n  - {name: " + long + ", size: 1Gi}\n"},
		{"unknown field", target + "  " + key + ": 1\n"},
		{"apiVersion", strings.Replace(target, "rds-reconcile/v1", long, 1)},
		{"kind", strings.Replace(target, "State", long, 1)},
		{"address", strings.Replace(target, "10.0.0.1", long+".", 1)},
		{"basePath", strings.Replace(target, "pool", "pool/"+long+"/", 1)},
		{"nqnPrefix", target + "  nqnPrefix: " + long + "\n"},
		{"slotPrefix", target + "  slotPrefix: A" + long + "\n"},
		{"host name", target + "hosts:\n  '" + key + " x': {hostNQN: nqn.2014-08.org.nvmexpress:uuid:1}\n"},
		{"host nqn", target + "hosts:\n  h1: {hostNQN: " + long + "}\n"},
		{"attachment", target + hosts + "volumes:\n  - {name: a, size: 1Gi, attachments: [" + long + "]}\n"},
		{"state", target + "volumes:\n  - {name: a, size: 1Gi, state: " + long + "}\n"},
		{"fsType", target + "defaults: {fsType: " + long + "}\n"},
		{"type", target + "policy: {prune: " + long + "}\n"},
		{"duration", target + "defaults: {retry: {initialDelay: " + long + "}}\n"},
		{"duration digits", target + "defaults: {retry: {initialDelay: " + strings.Repeat("1", 1<<20) + "}}\n"},
		{"ssh address", target + "  ssh: {address: '" + long + "]', user: u, passwordEnv: P, insecureIgnoreHostKey: true}\n"},
		{"yaml anchor", target + "policy: *" + key + "\n"},
		{"ssh env", target + "  ssh: {address: h, user: u, passwordEnv: '-" + long[1:] + "', insecureIgnoreHostKey: true}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadBytes("t.yaml", []byte(tt.doc))
			if err == nil {
				t.Fatal("loaded")
			}
			msg := err.Error()
			if len(msg) > 1000 || strings.Contains(msg, strings.Repeat("x", 65)) || !strings.Contains(msg, " bytes") {
				t.Errorf("want a short message with the value clipped and its length, got %d bytes: %.300s", len(msg), msg)
			}
		})
	}
}

// TestSyntaxErrorPosition: the exact position for a small file even at
// its end, within a time bound; a file too large to locate in gets no
// line rather than a wrong one.
func TestSyntaxErrorPosition(t *testing.T) {
	body := func(size int) (string, int) {
		var b strings.Builder
		b.WriteString("apiVersion: rds-reconcile/v1\nkind: State\nvolumes:\n")
		lines := 3
		for i := 0; b.Len() < size; i++ {
			fmt.Fprintf(&b, "  - name: v%d\n    size: 1Gi\n", i)
			lines += 2
		}
		b.WriteString("   state: present\n") // bad indentation
		return b.String(), lines + 1
	}
	doc, line := body(maxLocateSize - 100)
	start := time.Now()
	_, err := LoadBytes("s.yaml", []byte(doc))
	want := fmt.Sprintf("s.yaml:%d:4: YAML syntax: did not find expected '-' indicator", line)
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	limit := 3 * time.Second // about 0.4s on one core
	if raceOn {
		limit *= 10
	}
	if d := time.Since(start); d > limit {
		t.Errorf("locating took %s", d)
	}
	doc, _ = body(maxLocateSize + 100)
	_, err = LoadBytes("s.yaml", []byte(doc))
	var es *Errors
	if !errors.As(err, &es) || len(*es) != 1 || (*es)[0].Line != 0 || !strings.Contains(err.Error(), "(near line ") {
		t.Errorf("large file: %v", err)
	}
}
