package sim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNoSpace is what a backend returns when the pool or the disk under it is
// full; the simulator answers "failure: not enough space".
var ErrNoSpace = errors.New("not enough space")

// Export is one disk's NVMe/TCP export as a backend sees it.
type Export struct {
	Slot string
	NQN  string
	Port int
	Path string // RouterOS file path, no leading '/': storage-pool/volumes/db.img
	On   bool
	// AllowHost is the disk's nvme-tcp-server-allow-host-name as set: ""
	// admits every host, else the host NQNs (rds.ParseAllowHosts). A
	// change of it alone is applied in place (Export again with On), never
	// by unexporting: live controllers stay.
	AllowHost string
}

// sameExceptACL says whether two exports differ at most in their allow list.
func sameExceptACL(a, b Export) bool {
	a.AllowHost, b.AllowHost = "", ""
	return a == b
}

// Backend stores the disks' files and exports them. The simulator keeps the
// RouterOS view (slots, properties, pool accounting) itself and calls the
// backend for the side effects only, so every backend behaves the same over
// SSH. Paths are RouterOS file paths, already checked to be relative and
// free of "..".
type Backend interface {
	// Capacity is the pool size in bytes and what the backend knows to be
	// free; the simulator's own accounting decides "not enough space".
	Capacity() (size, free int64)
	// Create makes a file of size bytes.
	Create(ctx context.Context, path string, size int64) error
	// Grow extends a file to size bytes (never shrinks).
	Grow(ctx context.Context, path string, size int64) error
	// Remove deletes a file.
	Remove(ctx context.Context, path string) error
	// Copy makes dst an independent copy of src, of src's size: writes to
	// either never reach the other. src may be exported and written to
	// while it is copied (see docs/sim.md for what the copy then holds).
	// dst does not exist yet; a failed Copy leaves no dst behind.
	Copy(ctx context.Context, src, dst string) error
	// Export turns a disk's NVMe/TCP export on or off; both are idempotent.
	// Export with On on an exported disk applies its allow list in place.
	Export(ctx context.Context, e Export) error
	// Close releases what the backend holds; exports are left as they are.
	Close() error
}

// MemoryBackend keeps nothing but sizes: the default, for tests and demos.
type MemoryBackend struct {
	capacity int64
	mu       sync.Mutex
	files    map[string]int64
}

// NewMemoryBackend returns a backend whose pool holds capacity bytes.
func NewMemoryBackend(capacity int64) *MemoryBackend {
	return &MemoryBackend{capacity: capacity, files: map[string]int64{}}
}

func (m *MemoryBackend) used() int64 {
	var n int64
	for _, s := range m.files {
		n += s
	}
	return n
}

// Capacity implements Backend.
func (m *MemoryBackend) Capacity() (int64, int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.capacity, m.capacity - m.used()
}

// Create implements Backend.
func (m *MemoryBackend) Create(_ context.Context, path string, size int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[path] = size
	return nil
}

// Grow implements Backend.
func (m *MemoryBackend) Grow(_ context.Context, path string, size int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[path] = size
	return nil
}

// Remove implements Backend.
func (m *MemoryBackend) Remove(_ context.Context, path string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.files, path)
	return nil
}

// Copy implements Backend: the content model is the size alone.
func (m *MemoryBackend) Copy(_ context.Context, src, dst string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	size, ok := m.files[src]
	if !ok {
		return fmt.Errorf("copy %s: %w", src, os.ErrNotExist)
	}
	if _, ok := m.files[dst]; ok {
		return fmt.Errorf("copy to %s: %w", dst, os.ErrExist)
	}
	m.files[dst] = size
	return nil
}

// Export implements Backend: nothing to do in memory.
func (m *MemoryBackend) Export(context.Context, Export) error { return nil }

// Close implements Backend.
func (m *MemoryBackend) Close() error { return nil }

// DefaultFileCapacity is the pool size of the file backends: sparse files
// cost no real space, so the pool is a number, not the host's free space.
const DefaultFileCapacity int64 = 1 << 40

// FileBackend keeps each disk as a sparse file under a folder:
// DIR/storage-pool/volumes/db.img.
type FileBackend struct {
	dir      string
	capacity int64
}

// NewFileBackend returns a backend storing sparse files under dir, with a
// pool of DefaultFileCapacity (Options.PoolSize overrides it).
func NewFileBackend(dir string) *FileBackend {
	// Absolute, because nvmet's device_path must be.
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return &FileBackend{dir: dir, capacity: DefaultFileCapacity}
}

// Path is where a RouterOS file path lives on this host.
func (f *FileBackend) Path(path string) string {
	return filepath.Join(f.dir, filepath.FromSlash(strings.TrimPrefix(path, "/")))
}

// Capacity implements Backend; free is not tracked here.
func (f *FileBackend) Capacity() (int64, int64) { return f.capacity, f.capacity }

// Create implements Backend: a sparse file of the given size.
func (f *FileBackend) Create(_ context.Context, path string, size int64) error {
	p := f.Path(path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", path, mapErr(err))
	}
	fh, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, mapErr(err))
	}
	if err := fh.Truncate(size); err != nil {
		fh.Close()
		return fmt.Errorf("create %s: %w", path, mapErr(err))
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("create %s: %w", path, mapErr(err))
	}
	return nil
}

// Grow implements Backend: truncate upwards keeps the file sparse.
func (f *FileBackend) Grow(_ context.Context, path string, size int64) error {
	p := f.Path(path)
	st, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("grow %s: %w", path, err)
	}
	if st.Size() >= size {
		return nil
	}
	if err := os.Truncate(p, size); err != nil {
		return fmt.Errorf("grow %s: %w", path, mapErr(err))
	}
	return nil
}

// Remove implements Backend; a missing file is not an error.
func (f *FileBackend) Remove(_ context.Context, path string) error {
	if err := os.Remove(f.Path(path)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// Copy implements Backend: a reflink (FICLONE) where the file system can
// share extents (Btrfs, XFS: what RouterOS's copy-from does on Btrfs), else
// a copy of the data extents only, so a sparse source stays sparse. The
// copy is made under a temporary name and renamed into place, so a failed
// or cancelled copy leaves no half-written dst behind.
func (f *FileBackend) Copy(ctx context.Context, src, dst string) error {
	sp, dp := f.Path(src), f.Path(dst)
	in, err := os.Open(sp)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	if _, err := os.Lstat(dp); err == nil {
		return fmt.Errorf("copy to %s: %w", dst, os.ErrExist)
	}
	if err := os.MkdirAll(filepath.Dir(dp), 0o755); err != nil {
		return fmt.Errorf("copy to %s: %w", dst, mapErr(err))
	}
	out, err := os.CreateTemp(filepath.Dir(dp), "."+filepath.Base(dp)+".copy-*")
	if err != nil {
		return fmt.Errorf("copy to %s: %w", dst, mapErr(err))
	}
	tmp := out.Name()
	done := false
	defer func() {
		if !done {
			out.Close()
			os.Remove(tmp)
		}
	}()
	if err := out.Chmod(0o644); err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	if err := copyFile(ctx, in, out); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, mapErr(err))
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy to %s: %w", dst, mapErr(err))
	}
	if err := os.Rename(tmp, dp); err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	done = true
	return nil
}

// FileUsage is what a backend can observe of a file's real use: the
// simulator derives the disk's monitor-traffic counters from it.
type FileUsage struct {
	Allocated int64     // bytes of the file's data on disk (not its size)
	Modified  time.Time // last write
}

// usageBackend is a Backend whose files are real and can be looked at.
type usageBackend interface {
	Usage(path string) (FileUsage, error)
}

// Usage reports the file's allocated bytes and modification time.
func (f *FileBackend) Usage(path string) (FileUsage, error) {
	fi, err := os.Stat(f.Path(path))
	if err != nil {
		return FileUsage{}, fmt.Errorf("usage %s: %w", path, err)
	}
	return FileUsage{Allocated: allocated(fi), Modified: fi.ModTime()}, nil
}

// Export implements Backend: files alone cannot be exported.
func (f *FileBackend) Export(context.Context, Export) error { return nil }

// Close implements Backend.
func (f *FileBackend) Close() error { return nil }

func mapErr(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EFBIG) {
		return fmt.Errorf("%w: %v", ErrNoSpace, err)
	}
	return err
}
