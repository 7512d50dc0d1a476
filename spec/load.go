package spec

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Default values that have no constant in types.go.
const (
	DefaultSSHTimeout        = 10 * time.Second
	DefaultRetryAttempts     = 5
	DefaultRetryInitialDelay = time.Second
	DefaultRetryMaxDelay     = 30 * time.Second
	DefaultRetryMultiplier   = 2.0
	DefaultRetryJitter       = 0.1
	DefaultOrphans           = OrphansDisconnect
)

// layer is one decoded file, before merging.
type layer struct {
	file string
	st   State
	dec  *decoder
	// broken means the file could not be read or parsed at all; checks
	// across files are skipped then, as they would only add noise.
	broken bool
}

// Load reads, layers, defaults and validates one or more state files.
// Every problem in every file is reported at once as *Errors.
//
// Layering: target, defaults and policy may each appear in at most one file;
// hosts merge (a name in two files must have the same hostNQN); volumes come
// from all files and a volume name may appear in only one. Relative *File
// paths are resolved against the directory of the file that names them.
func Load(files ...string) (*State, error) {
	if len(files) == 0 {
		return nil, &Errors{{Msg: "no state file given; pass one with -f FILE"}}
	}
	layers, errs := readLayers(files)
	st, more := assemble(layers, true)
	return finish(st, append(errs, more...), files[0])
}

// underFailed reports whether path or one of its ancestors failed to decode
// in file.
func underFailed(failed map[[2]string]bool, file, path string) bool {
	for {
		if failed[[2]string{file, path}] {
			return true
		}
		i := strings.LastIndexAny(path, ".[")
		if i <= 0 {
			return false
		}
		path = path[:i]
	}
}

// finish returns the state or the sorted errors; a nil state with no error
// would be a bug here, so it becomes an error rather than a nil dereference
// in the caller.
func finish(st *State, errs Errors, file string) (*State, error) {
	if st == nil && len(errs) == 0 {
		errs = Errors{{File: file, Msg: "internal: the state could not be assembled"}}
	}
	if len(errs) > 0 {
		es := errs.sort()
		if len(es) > maxErrors+1 { // +1: the decoder's own "stopping here" line
			last := es[maxErrors-1]
			es = append(es[:maxErrors], Error{File: last.File, Line: last.Line, Col: last.Col,
				Msg: fmt.Sprintf("%d more problems not shown; fix the ones above first", len(errs)-maxErrors)})
		}
		return nil, &es
	}
	return st, nil
}

// MaxFileSize is the most bytes a state file may have. A real state file
// is a few kilobytes (a thousand volumes are about 100 KiB); parsing cost
// grows with the size (yaml.v3 builds the whole node tree first), so a
// larger file is refused before it is parsed.
const MaxFileSize = 4 << 20

// errTooLarge marks a state file over MaxFileSize.
var errTooLarge = errors.New("state file too large")

type tooLargeError struct{ size int64 }

func (e tooLargeError) Error() string {
	if e.size < 0 {
		return fmt.Sprintf("more than the %d MiB a state file may have; split it into layers (-f base.yaml -f volumes.yaml)", MaxFileSize>>20)
	}
	return fmt.Sprintf("%d bytes, more than the %d MiB a state file may have; split it into layers (-f base.yaml -f volumes.yaml)", e.size, MaxFileSize>>20)
}

func (e tooLargeError) Is(target error) bool { return target == errTooLarge }

// readLayers reads and parses each file as a layer; a file that cannot be
// read is a broken layer and an error naming it.
func readLayers(files []string) ([]*layer, Errors) {
	var layers []*layer
	var errs Errors
	for _, f := range files {
		data, err := readStateFile(f)
		if err != nil {
			msg := fmt.Sprintf("cannot read the state file: %v", unwrapPathError(err))
			if errors.Is(err, errTooLarge) {
				msg = err.Error()
			}
			errs = append(errs, Error{File: f, Msg: msg})
			layers = append(layers, &layer{file: f, dec: newDecoder(f), broken: true})
			continue
		}
		l := parseLayer(f, data)
		errs = append(errs, l.dec.errs...)
		layers = append(layers, l)
	}
	return layers, errs
}

// readStateFile reads a state file of at most MaxFileSize bytes. The size
// is checked before reading (a regular file) and while reading (a pipe,
// or a file that grows), so an oversized file never reaches the parser
// nor memory.
func readStateFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > MaxFileSize {
		return nil, tooLargeError{fi.Size()}
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, tooLargeError{-1}
	}
	return data, nil
}

// LoadBytes is Load for one in-memory file; name is used in errors and to
// resolve relative paths.
func LoadBytes(name string, data []byte) (*State, error) {
	if len(data) > MaxFileSize {
		return nil, &Errors{{File: name, Msg: tooLargeError{int64(len(data))}.Error()}}
	}
	l := parseLayer(name, data)
	st, more := assemble([]*layer{l}, true)
	return finish(st, append(l.dec.errs, more...), name)
}

// unwrapPathError drops the path from *os.PathError: the file name is
// already at the start of the message.
func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// parseLayer decodes one file, resolves its relative paths and fills the
// defaults of the sections it declares. Problems land in l.dec.errs.
func parseLayer(name string, data []byte) *layer {
	l := &layer{file: name, dec: newDecoder(name)}
	root := l.dec.parse(data)
	if root == nil {
		l.broken = true
		return l
	}
	if root.Kind != yaml.MappingNode {
		l.dec.errAt(nodePos(root), "", "a state file is a mapping that starts with apiVersion: %s and kind: %s", APIVersion, Kind)
		l.broken = true
		return l
	}
	l.dec.decode(root, reflect.ValueOf(&l.st).Elem(), "", 0)
	if l.dec.budget <= 0 {
		l.broken = true
		return l
	}
	if l.st.APIVersion != APIVersion {
		l.dec.errAt(l.dec.locate("apiVersion"), "apiVersion", "must be %q, got %q", APIVersion, clip(l.st.APIVersion))
	}
	if l.st.Kind != Kind {
		l.dec.errAt(l.dec.locate("kind"), "kind", "must be %q, got %q", Kind, clip(l.st.Kind))
	}
	if t := l.st.Target; t != nil {
		dir := filepath.Dir(name)
		for _, p := range []*string{&t.SSH.PrivateKeyFile, &t.SSH.PassphraseFile, &t.SSH.PasswordFile, &t.SSH.KnownHostsFile} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(dir, *p)
			}
		}
	}
	applyDefaults(&l.st, l.dec.has)
	return l
}

// applyDefaults fills every field the file left out. has tells a field set
// to its zero value ("jitter: 0") from one left out, so explicit zeros are
// kept and validated rather than silently replaced.
func applyDefaults(st *State, has func(string) bool) {
	if t := st.Target; t != nil {
		if !has("target.nvmePort") {
			t.NVMePort = DefaultNVMePort
		}
		if !has("target.nqnPrefix") {
			t.NQNPrefix = DefaultNQNPrefix
		}
		if t.SSH.Address != "" {
			t.SSH.Address = withDefaultPort(t.SSH.Address)
		}
		if !has("target.ssh.timeout") {
			t.SSH.Timeout = Duration{DefaultSSHTimeout}
		}
	}
	if d := st.Defaults; d != nil {
		fillDefaults(d, has)
	}
	if p := st.Policy; p != nil && !has("policy.orphans") {
		p.Orphans = DefaultOrphans
	}
	for i := range st.Volumes {
		if !has(fmt.Sprintf("volumes[%d].state", i)) {
			st.Volumes[i].State = Present
		}
	}
	for i := range st.Snapshots {
		if !has(fmt.Sprintf("snapshots[%d].state", i)) {
			st.Snapshots[i].State = Present
		}
	}
}

func fillDefaults(d *Defaults, has func(string) bool) {
	c := &d.Connection
	if c.CtrlLossTmo == nil {
		c.CtrlLossTmo = intPtr(DefaultCtrlLossTmo)
	}
	if c.ReconnectDelay == nil {
		c.ReconnectDelay = intPtr(DefaultReconnectDelay)
	}
	if c.KeepAliveTmo == nil {
		c.KeepAliveTmo = intPtr(DefaultKeepAliveTmo)
	}
	r := &d.Retry
	if !has("defaults.retry.attempts") {
		r.Attempts = DefaultRetryAttempts
	}
	if !has("defaults.retry.initialDelay") {
		r.InitialDelay = Duration{DefaultRetryInitialDelay}
	}
	if !has("defaults.retry.maxDelay") {
		r.MaxDelay = Duration{DefaultRetryMaxDelay}
	}
	if !has("defaults.retry.multiplier") {
		r.Multiplier = DefaultRetryMultiplier
	}
	if !has("defaults.retry.jitter") {
		r.Jitter = DefaultRetryJitter
	}
	if !has("defaults.fsType") {
		d.FSType = DefaultFSType
	}
}

func intPtr(i int) *int { return &i }

// withDefaultPort appends :22 to an SSH address that has no port. Anything
// unparsable is left alone for validation to report.
func withDefaultPort(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	if strings.HasPrefix(addr, "[") && strings.HasSuffix(addr, "]") {
		return addr + ":" + strconv.Itoa(DefaultSSHPort)
	}
	if !strings.Contains(addr, ":") || net.ParseIP(addr) != nil {
		return net.JoinHostPort(addr, strconv.Itoa(DefaultSSHPort))
	}
	return addr
}

// merged remembers which layer each part of the merged state came from, so
// an error found after merging still points into the right file.
type merged struct {
	layers   []*layer
	target   *layer
	defaults *layer
	policy   *layer
	hosts    map[string]*layer
	volumes  []volOrigin
	// snapshots: where each merged snapshot came from, as volumes.
	snapshots []volOrigin
}

type volOrigin struct {
	l   *layer
	idx int // index in that layer's volumes list
}

// where maps a path in the merged state to a file, position and the path as
// written in that file.
func (m *merged) where(path string) (file string, p pos, local string) {
	var l *layer
	local = path
	head, rest, _ := strings.Cut(path, ".")
	switch {
	case strings.HasPrefix(path, "volumes["):
		end := strings.IndexByte(path, ']')
		i, err := strconv.Atoi(path[len("volumes["):end])
		if err == nil && i < len(m.volumes) {
			o := m.volumes[i]
			l = o.l
			local = fmt.Sprintf("volumes[%d]%s", o.idx, path[end+1:])
		}
	case strings.HasPrefix(path, "snapshots["):
		end := strings.IndexByte(path, ']')
		i, err := strconv.Atoi(path[len("snapshots["):end])
		if err == nil && i < len(m.snapshots) {
			o := m.snapshots[i]
			l = o.l
			local = fmt.Sprintf("snapshots[%d]%s", o.idx, path[end+1:])
		}
	case head == "target":
		l = m.target
	case head == "defaults":
		l = m.defaults
	case head == "policy":
		l = m.policy
	case head == "hosts":
		name, _, _ := strings.Cut(rest, ".")
		l = m.hosts[name]
	}
	if l == nil {
		if len(m.layers) == 0 {
			return "", pos{}, path
		}
		l = m.layers[0]
	}
	return l.file, l.dec.locate(local), local
}

// assemble merges decoded layers into one State, validates it and fills the
// values volumes inherit. complete requires a target (Load); Store layers
// are checked with complete=false.
func assemble(layers []*layer, complete bool) (*State, Errors) {
	for _, l := range layers {
		if l.broken {
			return nil, nil
		}
	}
	m := &merged{layers: layers, hosts: map[string]*layer{}}
	st := &State{APIVersion: APIVersion, Kind: Kind}
	var errs Errors
	conflict := func(l *layer, key string, first *layer) {
		errs = append(errs, Error{File: l.file, Line: l.dec.keys[key].line, Col: l.dec.keys[key].col, Path: key,
			Msg: fmt.Sprintf("already set in %s (line %d); keep it in one file only", first.file, first.dec.keys[key].line)})
	}
	volSeen := map[string]volOrigin{}
	snapSeen := map[string]volOrigin{}
	for _, l := range layers {
		if l.st.Target != nil {
			if m.target != nil {
				conflict(l, "target", m.target)
			} else {
				m.target, st.Target = l, l.st.Target
			}
		}
		if l.st.Defaults != nil {
			if m.defaults != nil {
				conflict(l, "defaults", m.defaults)
			} else {
				m.defaults, st.Defaults = l, l.st.Defaults
			}
		}
		if l.st.Policy != nil {
			if m.policy != nil {
				conflict(l, "policy", m.policy)
			} else {
				m.policy, st.Policy = l, l.st.Policy
			}
		}
		for name, h := range l.st.Hosts {
			first, ok := m.hosts[name]
			if !ok {
				if st.Hosts == nil {
					st.Hosts = map[string]Host{}
				}
				m.hosts[name], st.Hosts[name] = l, h
				continue
			}
			if st.Hosts[name].HostNQN != h.HostNQN {
				key := "hosts." + name
				p := l.dec.locate(key + ".hostNQN")
				errs = append(errs, Error{File: l.file, Line: p.line, Col: p.col, Path: key + ".hostNQN",
					Msg: fmt.Sprintf("host %q is declared in %s (line %d) with hostNQN %q; a host must have the same hostNQN in every file",
						clip(name), first.file, first.dec.keys[key].line, clip(st.Hosts[name].HostNQN))})
			}
		}
		for i, v := range l.st.Volumes {
			v.Source = l.file
			if first, dup := volSeen[v.Name]; dup && v.Name != "" {
				path := fmt.Sprintf("volumes[%d].name", i)
				p := l.dec.locate(path)
				fp := first.l.dec.locate(fmt.Sprintf("volumes[%d].name", first.idx))
				where := fmt.Sprintf("line %d", fp.line)
				if first.l != l {
					where = fmt.Sprintf("%s line %d", first.l.file, fp.line)
				}
				errs = append(errs, Error{File: l.file, Line: p.line, Col: p.col, Path: path,
					Msg: fmt.Sprintf("volume %q is already declared (%s); a volume name must be unique across all files", clip(v.Name), where)})
				continue
			}
			volSeen[v.Name] = volOrigin{l, i}
			m.volumes = append(m.volumes, volOrigin{l, i})
			st.Volumes = append(st.Volumes, v)
		}
		for i, sn := range l.st.Snapshots {
			sn.Source = l.file
			if first, dup := snapSeen[sn.Name]; dup && sn.Name != "" {
				path := fmt.Sprintf("snapshots[%d].name", i)
				p := l.dec.locate(path)
				fp := first.l.dec.locate(fmt.Sprintf("snapshots[%d].name", first.idx))
				where := fmt.Sprintf("line %d", fp.line)
				if first.l != l {
					where = fmt.Sprintf("%s line %d", first.l.file, fp.line)
				}
				errs = append(errs, Error{File: l.file, Line: p.line, Col: p.col, Path: path,
					Msg: fmt.Sprintf("snapshot %q is already declared (%s); a snapshot name must be unique across all files", clip(sn.Name), where)})
				continue
			}
			snapSeen[sn.Name] = volOrigin{l, i}
			m.snapshots = append(m.snapshots, volOrigin{l, i})
			st.Snapshots = append(st.Snapshots, sn)
		}
	}
	if st.Defaults == nil {
		st.Defaults = &Defaults{}
		fillDefaults(st.Defaults, func(string) bool { return false })
	}
	if st.Policy == nil {
		st.Policy = &Policy{Orphans: DefaultOrphans}
	}
	if complete && st.Target == nil && len(layers) > 0 {
		names := make([]string, len(layers))
		for i, l := range layers {
			names[i] = l.file
		}
		p := layers[0].dec.locate("")
		errs = append(errs, Error{File: layers[0].file, Line: p.line, Col: p.col, Path: "target",
			Msg: fmt.Sprintf("no file declares the target (the RDS to manage); add a target section to one of: %s", strings.Join(names, ", "))})
	}
	// A value that failed to decode is left zero; checking it again would
	// only repeat the problem in other words ("size: is required").
	failed := map[[2]string]bool{}
	for _, l := range layers {
		for _, e := range l.dec.errs {
			failed[[2]string{e.File, e.Path}] = true
		}
	}
	for _, e := range validateState(st, m, complete) {
		if !underFailed(failed, e.File, e.Path) {
			errs = append(errs, e)
		}
	}
	for i := range st.Volumes {
		// A multi-writer block volume is a raw device: no filesystem.
		if st.Volumes[i].FSType == "" && st.Volumes[i].Access != AccessMultiWriterBlock {
			st.Volumes[i].FSType = st.Defaults.FSType
		}
	}
	return st, errs
}
