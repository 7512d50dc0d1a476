package sim

import (
	"math"
	"strconv"
	"testing"
)

// TestFreeSpaceEdges: adds and grows at the edges of the pool, up to sizes
// near 2^63, are accepted exactly when they fit; used+size must not wrap
// negative and let a size far beyond the pool through.
func TestFreeSpaceEdges(t *testing.T) {
	const pool = 4 << 30
	const mib = 1 << 20
	sizes := []struct {
		name string
		size int64
		fits bool // with 2 GiB of the pool taken
	}{
		{"1", 1, true},
		{"MiB-1", mib - 1, true},
		{"free", 2 << 30, true},
		{"free+1", 2<<30 + 1, false},
		{"pool", pool, false},
		{"2^62", 1 << 62, false},
		{"2^63-1-used", math.MaxInt64 - 2<<30 + 1, false},
		{"2^63-1", math.MaxInt64, false},
	}
	for _, tt := range sizes {
		t.Run("add "+tt.name, func(t *testing.T) {
			s := newTestServer(t, Options{PoolSize: pool})
			mustExec(t, s, `/disk add type=file file-path=storage-pool/a.img file-size=1G slot=a`)
			mustExec(t, s, `/disk add type=file file-path=storage-pool/b.img file-size=1G slot=b`)
			out := s.Exec(`/disk add type=file file-path=storage-pool/c.img file-size=` + strconv.FormatInt(tt.size, 10) + ` slot=c`)
			if got := out == ""; got != tt.fits {
				t.Errorf("add %d bytes: %q, want fits=%v", tt.size, out, tt.fits)
			}
			if !tt.fits && out != "failure: not enough space\n" {
				t.Errorf("add %d bytes: %q", tt.size, out)
			}
			checkPool(t, s, pool)
		})
		t.Run("grow "+tt.name, func(t *testing.T) {
			// a (1 GiB) grows by size-1GiB: it fits when size-1GiB <= 2 GiB.
			s := newTestServer(t, Options{PoolSize: pool})
			mustExec(t, s, `/disk add type=file file-path=storage-pool/a.img file-size=1G slot=a`)
			mustExec(t, s, `/disk add type=file file-path=storage-pool/b.img file-size=1G slot=b`)
			size := tt.size + 1<<30
			if size < 0 { // beyond int64: grow to the largest instead
				size = math.MaxInt64
			}
			out := s.Exec(`/disk set a file-size=` + strconv.FormatInt(size, 10))
			if got := out == ""; got != tt.fits {
				t.Errorf("grow to %d bytes: %q, want fits=%v", size, out, tt.fits)
			}
			checkPool(t, s, pool)
		})
	}
}

// checkPool asserts the accounting stayed within the pool.
func checkPool(t *testing.T, s *Server, pool int64) {
	t.Helper()
	size, free := s.Pool()
	if size != pool || free < 0 || free > pool {
		t.Errorf("pool size %d free %d, want size %d and 0 <= free <= size", size, free, pool)
	}
}
