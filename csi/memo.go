package csi

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"io"
	"os"
	"sync"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

// loadMemo remembers the last desired state loaded, keyed by the exact
// bytes it was loaded from (the base files and the layer), so that
// concurrent calls reading the same layer parse and validate it once:
// parsing was most of the controller's CPU in a burst of calls. Nothing is
// cached in the sense that matters: every call still reads the base files
// and the layer afresh, one changed byte is a new load, and every caller
// gets its own deep copy.
type loadMemo struct {
	mu   sync.Mutex
	last *memoLoad
}

// memoLoad is one load, shared by the calls that came for the same bytes
// while it ran.
type memoLoad struct {
	key  [sha256.Size]byte
	done chan struct{} // closed when st or err is set
	st   *spec.State
	err  error
}

// errMemoStale: the files changed while they were loaded; the waiting
// callers load again themselves.
var errMemoStale = errors.New("the base files changed while they were loaded")

// load is spec.LoadWith(files, name, layer) through the memo.
func (m *loadMemo) load(files []string, name string, layer []byte) (*spec.State, error) {
	key, ok := memoKey(files, name, layer)
	if !ok {
		// A base file that cannot be read: LoadWith says why.
		return spec.LoadWith(files, name, layer)
	}
	m.mu.Lock()
	if e := m.last; e != nil && e.key == key {
		m.mu.Unlock()
		<-e.done
		if e.err == nil {
			return cloneState(e.st), nil
		}
		return spec.LoadWith(files, name, layer) // its own verdict, its own read
	}
	e := &memoLoad{key: key, done: make(chan struct{})}
	m.last = e
	m.mu.Unlock()

	st, err := spec.LoadWith(files, name, layer)
	switch {
	case err != nil:
		e.err = err
	default:
		// LoadWith read the files again: keep the state only if they
		// still hold the bytes of the key.
		if again, ok := memoKey(files, name, layer); ok && again == key {
			e.st = cloneState(st)
		} else {
			e.err = errMemoStale
		}
	}
	close(e.done)
	if e.err != nil {
		m.mu.Lock()
		if m.last == e {
			m.last = nil
		}
		m.mu.Unlock()
	}
	return st, err
}

// memoKey hashes the layer's name and bytes and each base file's path and
// bytes (a file larger than spec.MaxFileSize is hashed up to just past it:
// LoadWith refuses it anyway). ok is false when a file cannot be read.
func memoKey(files []string, name string, layer []byte) (key [sha256.Size]byte, ok bool) {
	h := sha256.New()
	field(h, []byte(name))
	field(h, layer)
	for _, f := range files {
		field(h, []byte(f))
		fh, err := os.Open(f)
		if err != nil {
			return key, false
		}
		data, err := io.ReadAll(io.LimitReader(fh, spec.MaxFileSize+1))
		fh.Close()
		if err != nil {
			return key, false
		}
		field(h, data)
	}
	h.Sum(key[:0])
	return key, true
}

// field writes b length-prefixed, so that no two lists of fields hash the
// same bytes.
func field(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}
