package sim

import (
	"strings"
	"testing"
	"time"
)

// FuzzScript: any command line gets an answer (text), never a panic or a
// hang, and leaves the pool accounting consistent.
func FuzzScript(f *testing.F) {
	for _, seed := range []string{
		refAdd, addDB, addLogs, addOther,
		`/disk print detail where slot~"^pvc-"`,
		`:put [:serialize to=json [/disk print detail as-value where slot~"^pvc-"]]`,
		`/disk set [find slot="pvc-db"] file-size=32212254720`,
		`/disk remove [find slot="pvc-db"]; /file remove [find name="storage-pool/volumes/pvc-db.img"]`,
		`/disk print terse where (slot!="a" or !nvme-tcp-export) and file-path~"x"`,
		`/system resource print; /system/identity/print; :put [/system resource get version]`,
		`/disk add slot="a\"b\\c\$d\_e\41"`, `"unterminated`, `[[[`, `/disk print where slot~"("`,
		`:put [/disk add type=file file-path=storage-pool/z.img file-size=1k slot=z]`,
		"/disk\nprint\n/file\nprint detail", `/disk set 0,1,2 comment=x`, `/disk get *3 size`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, script string) {
		s := newTestServer(t, Options{JSON: true, PoolSize: 64 << 30})
		mustExec(t, s, addDB)
		done := make(chan string, 1)
		go func() { done <- s.Exec(script) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("script hangs: %q", script)
		}
		var used int64
		for _, fl := range s.Files() {
			used += fl.Size
		}
		if size, free := s.Pool(); free != size-used || used > size {
			t.Fatalf("pool accounting: size %d free %d used %d after %q", size, free, used, script)
		}
		for _, d := range s.Disks() {
			if strings.HasPrefix(d.FilePath, "/") || strings.Contains(d.FilePath, "..") {
				t.Fatalf("bad file path %q after %q", d.FilePath, script)
			}
		}
	})
}
