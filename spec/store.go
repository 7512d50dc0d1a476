package spec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"
)

// Store is one layer file that a program edits, such as the layer the CSI
// mode keeps its volumes in. Update serialises writers, across goroutines
// and processes, with an exclusive flock on path+".lock", and replaces the
// file atomically, so a crash never leaves half a file and two writers never
// lose each other's edit.
type Store struct {
	path string
	// beforeRename, when set (tests only), runs after the temporary file is
	// written and synced and before it replaces the real one; an error
	// simulates a failed write.
	beforeRename func(tmp string) error
}

// OpenStore returns the Store for the layer file at path. It touches nothing
// on disk; a missing file reads as an empty layer.
func OpenStore(path string) *Store { return &Store{path: path} }

// Path is the layer file the store edits.
func (st *Store) Path() string { return st.path }

// ErrLayer wraps every problem Read and Update find in the layer's content
// (as *Errors); I/O problems are returned as they are.
var ErrLayer = errors.New("invalid state layer")

// Read returns the layer as written in the file, without defaults, so that
// writing it back adds nothing the author did not write. A missing file or
// an empty file is an empty layer (apiVersion and kind only).
func (st *Store) Read() (*State, error) {
	data, err := readStateFile(st.path)
	if errors.Is(err, fs.ErrNotExist) {
		return &State{APIVersion: APIVersion, Kind: Kind}, nil
	}
	if errors.Is(err, errTooLarge) {
		return nil, fmt.Errorf("%w: %w", ErrLayer, &Errors{{File: st.path, Msg: err.Error()}})
	}
	if err != nil {
		return nil, fmt.Errorf("reading state layer: %w", err)
	}
	return ParseLayer(st.path, data)
}

// Name is the layer's name in messages and the Source of its volumes: the
// file's path.
func (st *Store) Name() string { return st.path }

// Load returns the layer file's bytes as they are (nil for a missing file),
// for LoadWith. The file is replaced by rename, so a reader never sees half
// of a write and needs no lock.
func (st *Store) Load(context.Context) ([]byte, error) {
	data, err := readStateFile(st.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state layer: %w", err)
	}
	return data, nil
}

// ParseLayer decodes a layer kept under name (a file, or a layer kept
// elsewhere such as a Kubernetes ConfigMap) as Store.Read does: the content
// as written, without defaults, every volume's Source set to name. Empty
// data is an empty layer.
func ParseLayer(name string, data []byte) (*State, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%w: %w", ErrLayer, &Errors{{File: name, Msg: tooLargeError{int64(len(data))}.Error()}})
	}
	if len(bytes.TrimSpace(data)) == 0 {
		// Someone touched the file to create it; that is an empty layer too.
		return &State{APIVersion: APIVersion, Kind: Kind}, nil
	}
	l := parseLayer(name, data)
	if len(l.dec.errs) > 0 {
		es := l.dec.errs.sort()
		return nil, fmt.Errorf("%w: %w", ErrLayer, &es)
	}
	// parseLayer filled defaults; decode again for the raw content. Parsing
	// is cheap next to the fsyncs of a write, and keeps one decoder.
	raw := &State{}
	rd := newDecoder(name)
	if root := rd.parse(data); root != nil {
		rd.decode(root, reflect.ValueOf(raw).Elem(), "", 0)
	}
	for i := range raw.Volumes {
		raw.Volumes[i].Source = name
	}
	for i := range raw.Snapshots {
		raw.Snapshots[i].Source = name
	}
	return raw, nil
}

// EncodeLayer is what Store.Update writes for s: stable YAML (volumes
// sorted by name), refused as ErrLayer when it is larger than MaxFileSize
// or would not load back exactly as ParseLayer and LoadWith read it.
func EncodeLayer(name string, s *State) ([]byte, error) {
	data, err := marshalLayer(s)
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		// Written, it could not be read back.
		return nil, fmt.Errorf("%w: %w", ErrLayer, &Errors{{File: name, Msg: tooLargeError{int64(len(data))}.Error()}})
	}
	// Validate what will be written, exactly as Load will read it back.
	l := parseLayer(name, data)
	if _, errs := assemble([]*layer{l}, false); len(l.dec.errs)+len(errs) > 0 {
		all := append(l.dec.errs, errs...).sort()
		return nil, fmt.Errorf("%w: %w", ErrLayer, &all)
	}
	return data, nil
}

// EditLayer runs a caller's edit of a layer; a panic in it becomes an
// error, so a buggy edit cannot take a lock holder down mid-write.
func EditLayer(fn func(*State) error, s *State) error { return callSafely(fn, s) }

// LoadWith is Load for the files followed by one more layer given as data
// under name (a layer kept outside a file, e.g. in a Kubernetes ConfigMap):
// the same layering, defaults and validation, the layer's volumes with
// Source name. Empty data is an empty layer.
func LoadWith(files []string, name string, data []byte) (*State, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("apiVersion: " + APIVersion + "\nkind: " + Kind + "\n")
	}
	layers, errs := readLayers(files)
	if len(data) > MaxFileSize {
		errs = append(errs, Error{File: name, Msg: tooLargeError{int64(len(data))}.Error()})
		layers = append(layers, &layer{file: name, dec: newDecoder(name), broken: true})
	} else {
		l := parseLayer(name, data)
		errs = append(errs, l.dec.errs...)
		layers = append(layers, l)
	}
	st, more := assemble(layers, true)
	first := name
	if len(files) > 0 {
		first = files[0]
	}
	return finish(st, append(errs, more...), first)
}

// Update runs fn on the current layer under the exclusive lock and writes the
// result back atomically. If fn returns an error or panics, or the result is
// not a valid layer, the file is left untouched and the error returned.
// Waiting for the lock honours ctx.
func (st *Store) Update(ctx context.Context, fn func(*State) error) (err error) {
	unlock, err := st.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := st.Read()
	if err != nil {
		return err
	}
	if err := callSafely(fn, cur); err != nil {
		return err
	}
	data, err := EncodeLayer(st.path, cur)
	if err != nil {
		return err
	}
	return st.writeAtomic(data)
}

// callSafely turns a panic in the caller's edit into an error, so a buggy
// edit cannot take the lock holder down with a half-done write.
func callSafely(fn func(*State) error, s *State) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("state edit panicked: %v", r)
		}
	}()
	return fn(s)
}

// lock takes the exclusive flock on path+".lock", polling so that ctx can
// cancel the wait (a blocking flock cannot be interrupted).
func (st *Store) lock(ctx context.Context) (func(), error) {
	f, err := os.OpenFile(st.path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	wait := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for the lock on %s: %w", st.path, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(wait*2, 20*time.Millisecond)
	}
	return func() {
		// Closing the descriptor releases the flock.
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}

// marshalLayer writes a layer as stable YAML: volumes sorted by name, fields
// in declaration order, no comments.
func marshalLayer(s *State) ([]byte, error) {
	out := *s
	out.APIVersion, out.Kind = APIVersion, Kind
	out.Volumes = slices.Clone(s.Volumes)
	slices.SortStableFunc(out.Volumes, func(a, b Volume) int { return strings.Compare(a.Name, b.Name) })
	out.Snapshots = slices.Clone(s.Snapshots)
	slices.SortStableFunc(out.Snapshots, func(a, b Snapshot) int { return strings.Compare(a.Name, b.Name) })
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&out); err != nil {
		return nil, fmt.Errorf("encoding state layer: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding state layer: %w", err)
	}
	return buf.Bytes(), nil
}

// writeAtomic replaces the file: temp file in the same directory, fsync,
// rename over the old file, fsync the directory so the rename is durable.
func (st *Store) writeAtomic(data []byte) (err error) {
	dir := filepath.Dir(st.path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(st.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing state layer: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing state layer: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("writing state layer: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("syncing state layer: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing state layer: %w", err)
	}
	if st.beforeRename != nil {
		if err := st.beforeRename(tmp.Name()); err != nil {
			return fmt.Errorf("writing state layer: %w", err)
		}
	}
	if err := os.Rename(tmp.Name(), st.path); err != nil {
		return fmt.Errorf("replacing state layer: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing state directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing state directory: %w", err)
	}
	return nil
}
