package sim

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/rds-reconcile/rds-reconcile/rds"
)

// DefaultConfigFS is where the kernel NVMe target's configfs lives.
const DefaultConfigFS = "/sys/kernel/config/nvmet"

// NVMetBackend keeps sparse files like FileBackend and exports each
// exported disk through the Linux kernel NVMe target (nvmet) over TCP:
//
//	subsystems/<nqn>                 attr_allow_any_host=1 (empty allow list)
//	subsystems/<nqn>                 attr_allow_any_host=0, and per allowed host:
//	subsystems/<nqn>/allowed_hosts/<hostnqn> -> hosts/<hostnqn>
//	subsystems/<nqn>/namespaces/1    device_path, buffered_io=1, enable=1
//	ports/<tcp port>                 addr_adrfam=ipv4 addr_trtype=tcp addr_traddr addr_trsvcid
//	ports/<tcp port>/subsystems/<nqn> -> subsystems/<nqn>
//
// One nvmet port per distinct address and TCP port, its id the port number
// where free. Ports stay once made: they are cheap and other exports may
// reuse them.
type NVMetBackend struct {
	*FileBackend
	root string // .../nvmet
	addr string // IPv4 address the ports listen on

	// rmdir removes a configfs directory; tests swap it for one that acts
	// like configfs on a plain directory tree (where attributes are files).
	rmdir func(string) error
	// symlink makes a configfs link; tests swap it to play the kernel's
	// rules.
	symlink func(oldname, newname string) error
}

// NewNVMetBackend stores files under dir and exports them through the nvmet
// configfs tree at configfs (DefaultConfigFS when ""), listening on addr.
func NewNVMetBackend(dir, configfs, addr string) *NVMetBackend {
	if configfs == "" {
		configfs = DefaultConfigFS
	}
	return &NVMetBackend{FileBackend: NewFileBackend(dir), root: configfs, addr: addr, rmdir: os.Remove, symlink: os.Symlink}
}

func (n *NVMetBackend) subsys(nqn string) string { return filepath.Join(n.root, "subsystems", nqn) }

// port is the nvmet port folder listening on this backend's address and
// TCP port p. Its id is p when that id is free or already ours; else the
// first free id from maxPortID down: two simulators on one kernel (two
// "RDS" on 127.0.0.1 and 127.0.0.2) may both serve port 4420.
func (n *NVMetBackend) port(p int) string {
	ports := filepath.Join(n.root, "ports")
	own := func(dir string) bool {
		return readAttr(dir, "addr_traddr") == n.addr && readAttr(dir, "addr_trsvcid") == strconv.Itoa(p)
	}
	first := filepath.Join(ports, strconv.Itoa(p))
	if !exists(first) || own(first) {
		return first
	}
	entries, _ := os.ReadDir(ports)
	for _, e := range entries {
		if dir := filepath.Join(ports, e.Name()); own(dir) {
			return dir
		}
	}
	for id := maxPortID; id > 0; id-- {
		if dir := filepath.Join(ports, strconv.Itoa(id)); !exists(dir) {
			return dir
		}
	}
	return first
}

// maxPortID is the largest nvmet port id (a u16).
const maxPortID = 65535

func writeAttr(dir, name, val string) error {
	if err := os.WriteFile(filepath.Join(dir, name), []byte(val+"\n"), 0o644); err != nil {
		return fmt.Errorf("nvmet %s/%s: %w", filepath.Base(dir), name, err)
	}
	return nil
}

func readAttr(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// stableUUID derives an RFC 4122 (version 5 style) UUID from the NQN.
func stableUUID(nqn string) string {
	h := sha256.Sum256([]byte("rds-reconcile-sim:" + nqn))
	b := h[:16]
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// Export implements Backend.
func (n *NVMetBackend) Export(ctx context.Context, e Export) error {
	if e.NQN == "" || strings.ContainsAny(e.NQN, "/\x00") || e.NQN == "." || e.NQN == ".." {
		return fmt.Errorf("nvmet: bad nqn %q", e.NQN)
	}
	if e.On {
		return n.exportOn(e)
	}
	return n.exportOff(e)
}

func (n *NVMetBackend) exportOn(e Export) error {
	sub := n.subsys(e.NQN)
	ns := filepath.Join(sub, "namespaces", "1")
	port := n.port(e.Port)
	link := filepath.Join(port, "subsystems", e.NQN)
	if exists(link) {
		return n.allowHosts(sub, e.AllowHost) // already exported: the allow list in place
	}
	if err := os.MkdirAll(ns, 0o755); err != nil {
		return fmt.Errorf("nvmet namespace: %w", err)
	}
	if err := n.allowHosts(sub, e.AllowHost); err != nil {
		return err
	}
	// device_path cannot change while the namespace is enabled.
	if readAttr(ns, "enable") != "1" {
		if err := writeAttr(ns, "device_path", n.Path(e.Path)); err != nil {
			return err
		}
		// A stable identity: the kernel makes a random UUID per namespace,
		// and a host that sees the identifiers change after a re-export
		// drops the namespace ("identifiers changed"). A real RDS keeps them.
		if err := writeAttr(ns, "device_uuid", stableUUID(e.NQN)); err != nil {
			return err
		}
		// Files on tmpfs cannot be opened O_DIRECT.
		if err := writeAttr(ns, "buffered_io", "1"); err != nil {
			return err
		}
		if err := writeAttr(ns, "enable", "1"); err != nil {
			return err
		}
	}
	if !exists(port) {
		if err := os.MkdirAll(port, 0o755); err != nil {
			return fmt.Errorf("nvmet port: %w", err)
		}
		for _, kv := range [][2]string{{"addr_adrfam", "ipv4"}, {"addr_trtype", "tcp"},
			{"addr_traddr", n.addr}, {"addr_trsvcid", strconv.Itoa(e.Port)}} {
			if err := writeAttr(port, kv[0], kv[1]); err != nil {
				return err
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return fmt.Errorf("nvmet port: %w", err)
	}
	if err := n.symlink(sub, link); err != nil {
		return fmt.Errorf("nvmet link: %w", err)
	}
	return nil
}

// allowHosts makes the subsystem admit the hosts of a RouterOS allow list
// (rds.ParseAllowHosts): every host when it is empty, else exactly the
// listed host NQNs. The kernel refuses an allowed_hosts link while
// attr_allow_any_host is 1 and attr_allow_any_host=1 while links exist,
// so closing writes 0 before linking and opening unlinks before writing
// 1. New hosts are linked before old ones are unlinked. Host folders
// (hosts/<hostnqn>) are made when missing and left: other subsystems may
// link them. The Linux target keeps a live controller whose host is
// unlinked (it checks the list at connect only).
func (n *NVMetBackend) allowHosts(sub, allow string) error {
	want := rds.ParseAllowHosts(allow)
	dir := filepath.Join(sub, "allowed_hosts")
	have, _ := os.ReadDir(dir)
	unlink := func(keep func(string) bool) error {
		for _, h := range have {
			if keep(h.Name()) {
				continue
			}
			if err := os.Remove(filepath.Join(dir, h.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("nvmet allowed host: %w", err)
			}
		}
		return nil
	}
	if len(want) == 0 {
		if err := unlink(func(string) bool { return false }); err != nil {
			return err
		}
		return writeAttr(sub, "attr_allow_any_host", "1")
	}
	for _, h := range want {
		if strings.ContainsAny(h, "/\x00") || h == "." || h == ".." {
			return fmt.Errorf("nvmet: bad host nqn %q", h)
		}
	}
	if err := writeAttr(sub, "attr_allow_any_host", "0"); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("nvmet allowed hosts: %w", err)
	}
	for _, h := range want {
		host := filepath.Join(n.root, "hosts", h)
		if err := os.MkdirAll(host, 0o755); err != nil {
			return fmt.Errorf("nvmet host: %w", err)
		}
		if l := filepath.Join(dir, h); !exists(l) {
			if err := n.symlink(host, l); err != nil {
				return fmt.Errorf("nvmet allow host: %w", err)
			}
		}
	}
	return unlink(func(name string) bool { return slices.Contains(want, name) })
}

// exportOff undoes exportOn in reverse: unlink from the port, disable and
// remove the namespace, remove the subsystem.
func (n *NVMetBackend) exportOff(e Export) error {
	sub := n.subsys(e.NQN)
	ns := filepath.Join(sub, "namespaces", "1")
	link := filepath.Join(n.port(e.Port), "subsystems", e.NQN)
	if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("nvmet unlink: %w", err)
	}
	// configfs refuses to remove a subsystem that still links hosts.
	if links, _ := os.ReadDir(filepath.Join(sub, "allowed_hosts")); len(links) > 0 {
		for _, h := range links {
			if err := os.Remove(filepath.Join(sub, "allowed_hosts", h.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("nvmet allowed host: %w", err)
			}
		}
	}
	if exists(ns) {
		if err := writeAttr(ns, "enable", "0"); err != nil {
			return err
		}
		if err := n.rmdir(ns); err != nil {
			return fmt.Errorf("nvmet namespace: %w", err)
		}
	}
	if exists(sub) {
		if err := n.rmdir(sub); err != nil {
			return fmt.Errorf("nvmet subsystem: %w", err)
		}
	}
	return nil
}

// Grow implements Backend: grow the file, then make the new size visible:
// revalidate_size where the kernel has it, else disable and enable again.
func (n *NVMetBackend) Grow(ctx context.Context, path string, size int64) error {
	if err := n.FileBackend.Grow(ctx, path, size); err != nil {
		return err
	}
	dev := n.Path(path)
	entries, err := os.ReadDir(filepath.Join(n.root, "subsystems"))
	if err != nil {
		return nil // nothing exported yet
	}
	for _, s := range entries {
		ns := filepath.Join(n.root, "subsystems", s.Name(), "namespaces", "1")
		if readAttr(ns, "device_path") != dev {
			continue
		}
		if exists(filepath.Join(ns, "revalidate_size")) {
			if err := writeAttr(ns, "revalidate_size", "1"); err != nil {
				return err
			}
			continue
		}
		if err := writeAttr(ns, "enable", "0"); err != nil {
			return err
		}
		if err := writeAttr(ns, "enable", "1"); err != nil {
			return err
		}
	}
	return nil
}
