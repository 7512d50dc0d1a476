package fabric

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

var (
	// ctrlNameRE is a controller's name in /sys/class/nvme; every name a
	// caller passes in is checked against it, so it cannot escape sysfs.
	ctrlNameRE = regexp.MustCompile(`^nvme(\d+)$`)
	// plainNSRE: nvmeXnY, the namespace's own block device (no multipath).
	plainNSRE = regexp.MustCompile(`^nvme(\d+)n(\d+)$`)
	// pathNSRE: nvmeXcYnZ, a hidden per-path device under native multipath;
	// X is the subsystem instance and the usable disk is nvmeXnZ.
	pathNSRE = regexp.MustCompile(`^nvme(\d+)c(\d+)n(\d+)$`)
)

// validName rejects anything that is not a controller name.
func validName(name string) error {
	if !ctrlNameRE.MatchString(name) {
		return fmt.Errorf("%w: %q is not a controller name", ErrNotFound, name)
	}
	return nil
}

// readAttr reads one sysfs attribute, trimmed. A missing or unreadable
// attribute is "" (old kernels lack some, a controller being deleted fails
// reads): the caller treats "" as unknown.
//
// A sysfs attribute is at most one page and comes in one read, so this does
// open, read, close (os.ReadFile also stats and reads again for EOF; a List
// reads thousands of attributes).
func readAttr(dir, name string) string {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return ""
	}
	defer f.Close()
	var buf [4096]byte
	n, err := f.Read(buf[:])
	if err != nil && n == 0 {
		return ""
	}
	return strings.TrimSpace(string(buf[:n]))
}

// atoi parses a decimal attribute, 0 when empty or garbage.
func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n
}

// parseCtrlLossTmo reads ctrl_loss_tmo: "off" is -1 (reconnect forever).
func parseCtrlLossTmo(s string) int {
	if s == "off" {
		return -1
	}
	return atoi(s)
}

// parseAddress splits "traddr=A,trsvcid=P[,host_traddr=..][,src_addr=..]".
func parseAddress(s string) (traddr, trsvcid string) {
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			continue
		}
		switch k {
		case "traddr":
			traddr = v
		case "trsvcid":
			trsvcid = v
		}
	}
	return traddr, trsvcid
}

// mountTable maps "major:minor" to the first mount point using it.
type mountTable map[string]string

// readMountinfo parses /proc/self/mountinfo (field 3 major:minor, field 5
// mount point, octal escapes). A missing file is an empty table.
func readMountinfo(path string) (mountTable, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return mountTable{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return parseMountinfo(b), nil
}

// parseMountinfo parses mountinfo text; malformed lines are skipped.
func parseMountinfo(b []byte) mountTable {
	mt := mountTable{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		if _, ok := mt[f[2]]; !ok {
			mt[f[2]] = UnescapeMountInfo(f[4])
		}
	}
	return mt
}

// UnescapeMountInfo undoes the kernel's octal escapes (\040 for space etc.).
func UnescapeMountInfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// scanner reads one snapshot of sysfs. mounts is nil when in-use detection
// is not wanted (the device wait loop); usage is then nil too.
type scanner struct {
	sysfs  string
	dev    string
	mounts mountTable
	usage  *usageTable // open fds, swap and loop backing files, read once
}

func (s scanner) classDir() string { return filepath.Join(s.sysfs, "class", "nvme") }

// list reads every fabrics controller, sorted by instance.
func (s scanner) list() ([]Controller, error) {
	entries, err := os.ReadDir(s.classDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // nvme-core not loaded: no controllers
	}
	if err != nil {
		return nil, fmt.Errorf("list controllers: %w", err)
	}
	out := make([]Controller, 0, len(entries))
	for _, e := range entries {
		if !ctrlNameRE.MatchString(e.Name()) {
			continue
		}
		c, err := s.controller(e.Name())
		if errors.Is(err, ErrNotFound) {
			continue // deleted while we looked
		}
		if err != nil {
			return nil, err
		}
		if !fabricsTransport(c.Transport) {
			continue
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Instance < out[j].Instance })
	return out, nil
}

// fabricsTransport says whether a controller's transport is NVMe-oF; an
// unreadable transport ("") is kept rather than hidden.
func fabricsTransport(t string) bool {
	switch t {
	case "tcp", "rdma", "fc", "loop", "":
		return true
	}
	return false // pcie, apple-nvme: local disks
}

// sameAddr compares transport addresses, IP addresses by value (the kernel
// may print an IPv6 address in another form than it was given).
func sameAddr(a, b string) bool {
	if a == b {
		return true
	}
	ia, ib := net.ParseIP(a), net.ParseIP(b)
	return ia != nil && ib != nil && ia.Equal(ib)
}

// controller reads one controller; ErrNotFound when its directory is gone.
func (s scanner) controller(name string) (Controller, error) {
	dir := filepath.Join(s.classDir(), name)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return Controller{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return Controller{}, fmt.Errorf("read controller %s: %w", name, err)
	}
	c := Controller{
		Name:      name,
		SubsysNQN: readAttr(dir, "subsysnqn"),
		Transport: readAttr(dir, "transport"),
		HostNQN:   readAttr(dir, "hostnqn"),
		State:     State(readAttr(dir, "state")),
		Timeouts: Timeouts{
			CtrlLossTmo:    parseCtrlLossTmo(readAttr(dir, "ctrl_loss_tmo")),
			ReconnectDelay: atoi(readAttr(dir, "reconnect_delay")),
			KeepAliveTmo:   atoi(readAttr(dir, "kato")),
		},
		Namespaces: []Namespace{},
	}
	if m := ctrlNameRE.FindStringSubmatch(name); m != nil {
		c.Instance = atoi(m[1])
	}
	c.TrAddr, c.TrSvcID = parseAddress(readAttr(dir, "address"))
	seen := map[string]bool{}
	for _, e := range entries {
		var dev string
		if m := pathNSRE.FindStringSubmatch(e.Name()); m != nil {
			dev = "nvme" + m[1] + "n" + m[3]
		} else if plainNSRE.MatchString(e.Name()) {
			dev = e.Name()
		} else {
			continue
		}
		if seen[dev] {
			continue
		}
		seen[dev] = true
		c.Namespaces = append(c.Namespaces, s.namespace(dev, filepath.Join(dir, e.Name())))
	}
	sort.Slice(c.Namespaces, func(i, j int) bool { return nsLess(c.Namespaces[i].Name, c.Namespaces[j].Name) })
	return c, nil
}

// nsLess orders nvme1n2 before nvme1n10.
func nsLess(a, b string) bool {
	ma, mb := plainNSRE.FindStringSubmatch(a), plainNSRE.FindStringSubmatch(b)
	if ma == nil || mb == nil {
		return a < b
	}
	if x, y := atoi(ma[1]), atoi(mb[1]); x != y {
		return x < y
	}
	return atoi(ma[2]) < atoi(mb[2])
}

// namespace reads the block device dev from /sys/block/dev, falling back to
// the entry under the controller (pathDir) when /sys/block lacks it.
func (s scanner) namespace(dev, pathDir string) Namespace {
	ns := Namespace{Name: dev, Device: filepath.Join(s.dev, dev)}
	blk := filepath.Join(s.sysfs, "block", dev)
	size := readAttr(blk, "size")
	if size == "" {
		blk = pathDir // no /sys/block entry: read the controller's own
		size = readAttr(blk, "size")
	}
	if sectors, err := strconv.ParseInt(size, 10, 64); err == nil {
		ns.Size = sectors * 512 // sysfs counts 512-byte sectors whatever the LBA size
	}
	majmin := readAttr(blk, "dev")
	if ma, mi, ok := strings.Cut(majmin, ":"); ok {
		ns.Major, ns.Minor = atoi(ma), atoi(mi)
	}
	if s.mounts == nil {
		return ns
	}
	var reasons []string
	check := func(name, dir, mm string) {
		if mp, ok := s.mounts[mm]; ok && mm != "" {
			reasons = append(reasons, name+" mounted on "+mp)
		}
		holders, _ := os.ReadDir(filepath.Join(dir, "holders"))
		for _, h := range holders {
			reasons = append(reasons, name+" held by "+h.Name())
		}
		if s.usage == nil {
			return
		}
		for _, loop := range s.usage.loops.lookup(name, mm) {
			reasons = append(reasons, name+" held by "+loop)
		}
		if by := s.usage.openedBy(mm); by != "" {
			reasons = append(reasons, name+" open by "+by)
		}
		if len(s.usage.swap.lookup(name, mm)) > 0 {
			reasons = append(reasons, name+" active swap")
		}
	}
	check(dev, blk, majmin)
	parts, _ := os.ReadDir(blk)
	for _, p := range parts {
		if !p.IsDir() && p.Type()&fs.ModeSymlink == 0 || !strings.HasPrefix(p.Name(), dev) || p.Name() == dev {
			continue
		}
		pdir := filepath.Join(blk, p.Name())
		pmm := readAttr(pdir, "dev")
		if pmm == "" {
			continue // not a partition
		}
		check(p.Name(), pdir, pmm)
	}
	if len(reasons) > 0 {
		ns.InUse = true
		ns.InUseBy = strings.Join(reasons, ", ")
	}
	return ns
}

// DisconnectAllowed applies the two guards every Host applies before a
// disconnect: the managed prefix (always) and in-use (unless force).
func DisconnectAllowed(c Controller, prefixes []string, force bool) error {
	if !IsManaged(c.SubsysNQN, prefixes) {
		return fmt.Errorf("%w: %s (%s) is outside the managed NQN prefixes", ErrNotManaged, c.Name, c.SubsysNQN)
	}
	if force {
		return nil
	}
	var reasons []string
	for _, ns := range c.Namespaces {
		if ns.InUse {
			reasons = append(reasons, ns.InUseBy)
		}
	}
	if len(reasons) > 0 {
		return fmt.Errorf("%w: %s: %s", ErrInUse, c.Name, strings.Join(reasons, "; "))
	}
	return nil
}
