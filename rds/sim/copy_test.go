package sim

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const (
	copyA = `/disk add type=file copy-from=[find slot=pvc-a] file-path=storage-pool/snapshots/snap-a.img slot=snap-a`
	// A restore as rds-csi sends it: copy-from with file-size and an export.
	restoreA = `/disk add type=file copy-from=[find slot=snap-a] file-path=storage-pool/volumes/pvc-r.img ` +
		`file-size=2G slot=pvc-r nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn="nqn.2000-02.com.mikrotik:pvc-r"`
)

// TestCopyFromSSH: copy-from over SSH, its sizes and every error, in
// order against one simulator (each row sees what the rows before it did).
func TestCopyFromSSH(t *testing.T) {
	s := startServer(t, Options{PoolSize: 5 << 30})
	c := dial(t, s, "admin")
	mustRun(t, c, addPVC) // 1 GiB, exported
	for _, tc := range []struct{ name, cmd, want string }{
		{"copy", copyA, ""},
		{"by slot name", `/disk add type=file copy-from=pvc-a file-path=storage-pool/snapshots/snap-b.img slot=snap-b`, ""},
		{"source missing (find)", `/disk add type=file copy-from=[find slot=nope] file-path=storage-pool/x.img slot=x`, "no such item\n"},
		{"source missing (name)", `/disk add type=file copy-from=nope file-path=storage-pool/x.img slot=x`, "no such item\n"},
		{"source is the pool", `/disk add type=file copy-from=storage-pool file-path=storage-pool/x.img slot=x`, "invalid value for argument copy-from\n"},
		{"two sources", `/disk add type=file copy-from=[find slot~"^snap-"] file-path=storage-pool/x.img slot=x`, "invalid value for argument copy-from\n"},
		{"slot used", `/disk add type=file copy-from=pvc-a file-path=storage-pool/x.img slot=snap-a`, "failure: slot already used\n"},
		{"file used by a disk", `/disk add type=file copy-from=pvc-a file-path=storage-pool/volumes/pvc-a.img slot=x`, "failure: file already in use\n"},
		{"smaller file-size", `/disk add type=file copy-from=pvc-a file-path=storage-pool/x.img file-size=512M slot=x`, "failure: can not shrink file\n"},
		{"restore, larger", restoreA, ""},
		{"pool full", `/disk add type=file copy-from=pvc-r file-path=storage-pool/y.img slot=y`, "failure: not enough space\n"},
		{"not on the pool", `/disk add type=file copy-from=pvc-a file-path=other/x.img slot=x`, "failure: file-path is not on a mounted disk\n"},
		{"set has no copy-from", `/disk set pvc-a copy-from=snap-a`, "expected end of command (line 1 column 17)\n"},
		// A file left behind by a removed disk is not overwritten by a copy.
		{"remove snap-b", `/disk remove [find slot=snap-b]`, ""},
		{"file exists", `/disk add type=file copy-from=pvc-a file-path=storage-pool/snapshots/snap-b.img slot=snap-c`, "failure: file already exists\n"},
		// Copies are independent: the source and its file can go.
		{"remove source", `/disk remove [find slot=pvc-a]; /file remove [find name="storage-pool/volumes/pvc-a.img"]`, ""},
		{"copy of a copy", `/disk add type=file copy-from=snap-a file-path=storage-pool/z.img slot=z`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mustRun(t, c, tc.cmd); got != tc.want {
				t.Errorf("%s\n got %q\nwant %q", tc.cmd, got, tc.want)
			}
		})
	}
	want := map[string]struct {
		size   int64
		export bool
	}{"snap-a": {1 << 30, false}, "pvc-r": {2 << 30, true}, "z": {1 << 30, false}}
	disks := s.Disks()
	if len(disks) != len(want) {
		t.Errorf("disks %+v, want %d", disks, len(want))
	}
	for _, d := range disks {
		w, ok := want[d.Slot]
		if !ok || d.Size != w.size || d.Export != w.export {
			t.Errorf("disk %s: size %d export %v, want %+v", d.Slot, d.Size, d.Export, w)
		}
	}
	if size, free := s.Pool(); free != size-(1<<30)-(1<<30)-(2<<30)-(1<<30) {
		t.Errorf("pool free %d of %d: the copies are not charged their sizes", free, size)
	}
}

// TestCopyFromFileBackends: files and nvmet copy the image for real: same
// bytes, holes kept, independent afterwards, while the source stays
// exported; no temporary file is left behind.
func TestCopyFromFileBackends(t *testing.T) {
	for _, name := range []string{"files", "nvmet"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			var b Backend = NewFileBackend(dir)
			if name == "nvmet" {
				nv := NewNVMetBackend(dir, t.TempDir(), "127.0.0.1")
				nv.rmdir = fakeRmdir
				b = nv
			}
			s := startServer(t, Options{Backend: b})
			c := dial(t, s, "admin")
			mustRun(t, c, strings.Replace(addPVC, "file-size=1G", "file-size=8M", 1))
			src := filepath.Join(dir, "storage-pool", "volumes", "pvc-a.img")
			dst := filepath.Join(dir, "storage-pool", "snapshots", "snap-a.img")
			writeAt(t, src, 0, 4096)
			writeAt(t, src, 4<<20, 64<<10) // data in the middle of a hole
			if out := mustRun(t, c, copyA); out != "" {
				t.Fatalf("copy: %q", out)
			}
			if !bytes.Equal(readAll(t, src), readAll(t, dst)) {
				t.Fatal("the copy's bytes differ from the source's")
			}
			if fi := stat(t, dst); fi.Size() != 8<<20 || allocated(fi) > 2<<20 {
				t.Errorf("copy: size %d, %d bytes allocated: want 8 MiB, sparse", fi.Size(), allocated(fi))
			}
			// Writes to either side stay on that side.
			overwrite(t, src, 0, "SOURCEWR")
			if got := string(readAt(t, dst, 0, 8)); got != "xxxxxxxx" {
				t.Errorf("the copy reads %q after writing the source", got)
			}
			overwrite(t, dst, 4<<20, "CLONEWRT")
			if got := string(readAt(t, src, 4<<20, 8)); got != "xxxxxxxx" {
				t.Errorf("the source reads %q after writing the copy", got)
			}
			entries, _ := os.ReadDir(filepath.Dir(dst))
			for _, e := range entries {
				if strings.Contains(e.Name(), ".copy-") {
					t.Errorf("temporary file %s left behind", e.Name())
				}
			}
		})
	}
}

func stat(t *testing.T, p string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func readAll(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readAt(t *testing.T, p string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, off); err != nil {
		t.Fatal(err)
	}
	return buf
}

func overwrite(t *testing.T, p string, off int64, s string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(s), off); err != nil {
		t.Fatal(err)
	}
}

// TestCopyRangeKeepsHoles: the fallback copy writes no all-zero chunk and
// copies a partial last chunk.
func TestCopyRangeKeepsHoles(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	size := int64(3*copyChunk + 123)
	if err := os.WriteFile(src, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(src, size); err != nil {
		t.Fatal(err)
	}
	overwrite(t, src, size-10, "0123456789")
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := copyRange(t.Context(), in, out, 0, size); err != nil {
		t.Fatal(err)
	}
	out.Close()
	if got := string(readAt(t, dst, size-10, 10)); got != "0123456789" {
		t.Errorf("tail %q", got)
	}
	fi := stat(t, dst)
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Blocks*512 > 2*copyChunk {
		t.Errorf("%d bytes allocated for 10 bytes of data: zero chunks were written", st.Blocks*512)
	}
}
