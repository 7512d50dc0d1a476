package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/internal/retryable"
	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// fakeRDS is an in-memory RDS. fail maps an operation ("create", "grow",
// ...) to errors returned by its next calls, in order.
type fakeRDS struct {
	mu      sync.Mutex
	disks   map[string]rds.Disk
	files   map[string]int64
	fail    map[string][]error
	ops     []string
	lists   int
	latency time.Duration
}

func newFakeRDS() *fakeRDS {
	return &fakeRDS{disks: map[string]rds.Disk{}, files: map[string]int64{}, fail: map[string][]error{}}
}

// retryableErr looks like a dropped SSH connection.
var retryableErr = &rds.Error{Op: "fake", Err: retryable.Mark(rds.ErrConnection)}

func (f *fakeRDS) step(ctx context.Context, op string) error {
	if f.latency > 0 {
		select {
		case <-time.After(f.latency):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops = append(f.ops, op)
	if errs := f.fail[op]; len(errs) > 0 {
		f.fail[op] = errs[1:]
		return errs[0]
	}
	return nil
}

func (f *fakeRDS) addDisk(d rds.Disk) {
	f.disks[d.Slot] = d
	f.files[d.FilePath] = d.Size
}

func (f *fakeRDS) List(ctx context.Context) (rds.Inventory, error) {
	if err := f.step(ctx, "list"); err != nil {
		return rds.Inventory{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	var inv rds.Inventory
	for _, d := range f.disks {
		if rds.IsSnapshotSlot(d.Slot, "t-") && !d.Export { // the test state's slot prefix
			inv.Snapshots = append(inv.Snapshots, d)
			continue
		}
		inv.Disks = append(inv.Disks, d)
	}
	for n, s := range f.files {
		inv.Files = append(inv.Files, rds.File{Name: n, Size: s})
	}
	inv.Pool = &rds.Capacity{Size: 1 << 40, Free: 1 << 39}
	return inv, nil
}

func (f *fakeRDS) Create(ctx context.Context, r rds.CreateRequest) error {
	if err := f.step(ctx, "create"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.disks[r.Slot]; ok {
		return &rds.Error{Op: "create", Slot: r.Slot, Err: rds.ErrRejected}
	}
	d := rds.Disk{Slot: r.Slot, Type: "file", FilePath: r.FilePath, Size: r.Size, Export: true, Port: r.Port, NQN: r.NQN}
	if r.SetAllowHosts {
		d.AllowHosts = rds.NormalizeAllowHosts(r.AllowHosts)
	}
	f.addDisk(d)
	return nil
}

func (f *fakeRDS) SetExport(ctx context.Context, r rds.ExportRequest) error {
	if err := f.step(ctx, "set-export"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.disks[r.Slot]
	if !ok {
		return &rds.Error{Op: "set-export", Err: rds.ErrNotFound}
	}
	d.Export, d.Port, d.NQN = true, r.Port, r.NQN
	d.MountFilesystem = false // SetExport sends mount-filesystem=no too
	if r.SetAllowHosts {
		d.AllowHosts = rds.NormalizeAllowHosts(r.AllowHosts)
	}
	f.disks[r.Slot] = d
	return nil
}

func (f *fakeRDS) Grow(ctx context.Context, slot string, size int64) error {
	if err := f.step(ctx, "grow"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.disks[slot]
	if !ok {
		return &rds.Error{Op: "grow", Err: rds.ErrNotFound}
	}
	if size < d.Size {
		return &rds.Error{Op: "grow", Err: rds.ErrShrink}
	}
	d.Size = size
	f.disks[slot] = d
	f.files[d.FilePath] = size
	return nil
}

func (f *fakeRDS) Delete(ctx context.Context, slot, filePath string) error {
	if err := f.step(ctx, "delete"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.disks, slot)
	delete(f.files, filePath)
	return nil
}

func (f *fakeRDS) RemoveFile(ctx context.Context, path string) error {
	if err := f.step(ctx, "remove-file"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.files, path)
	return nil
}

// fakeFabric is an in-memory NVMe host. Connected namespaces take their
// size from rds when set.
type fakeFabric struct {
	mu       sync.Mutex
	ctrls    map[string]fabric.Controller
	next     int
	prefixes []string
	hostNQN  string
	rds      *fakeRDS
	fail     map[string][]error
	ops      []string
	latency  time.Duration
}

func newFakeFabric(r *fakeRDS) *fakeFabric {
	return &fakeFabric{ctrls: map[string]fabric.Controller{}, prefixes: []string{spec.DefaultNQNPrefix},
		hostNQN: "nqn.2014-08.org.nvmexpress:uuid:a", rds: r, fail: map[string][]error{}}
}

func (f *fakeFabric) step(ctx context.Context, op string) error {
	if f.latency > 0 && op == "connect" {
		select {
		case <-time.After(f.latency):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops = append(f.ops, op)
	if errs := f.fail[op]; len(errs) > 0 {
		f.fail[op] = errs[1:]
		return errs[0]
	}
	return nil
}

// add puts a controller in place as if someone connected it by hand.
func (f *fakeFabric) add(c fabric.Controller) fabric.Controller {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.Name == "" {
		c.Name = fmt.Sprintf("nvme%d", f.next)
		c.Instance = f.next
		f.next++
	}
	if c.Transport == "" {
		c.Transport = "tcp"
	}
	if c.State == "" {
		c.State = "live"
	}
	if c.Namespaces == nil {
		c.Namespaces = []fabric.Namespace{{Name: c.Name + "n1", Device: "/dev/" + c.Name + "n1", Size: 1 << 30}}
	}
	f.ctrls[c.Name] = c
	return c
}

func (f *fakeFabric) List(ctx context.Context) ([]fabric.Controller, error) {
	if err := f.step(ctx, "list"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fabric.Controller
	for _, c := range f.ctrls {
		c.Namespaces = slices.Clone(c.Namespaces)
		out = append(out, c)
	}
	return out, nil
}

func (f *fakeFabric) diskSize(nqn string) int64 {
	if f.rds == nil {
		return 1 << 30
	}
	f.rds.mu.Lock()
	defer f.rds.mu.Unlock()
	for _, d := range f.rds.disks {
		if d.NQN == nqn && d.Export {
			return d.Size
		}
	}
	return -1
}

func (f *fakeFabric) Connect(ctx context.Context, req fabric.ConnectRequest) (fabric.Controller, error) {
	if err := f.step(ctx, "connect"); err != nil {
		return fabric.Controller{}, err
	}
	size := f.diskSize(req.NQN)
	if size < 0 {
		return fabric.Controller{}, retryable.Mark(fmt.Errorf("connect %s: %w", req.NQN, errors.New("target refused")))
	}
	f.mu.Lock()
	for _, c := range f.ctrls {
		if c.SubsysNQN == req.NQN && c.TrAddr == req.Address && c.HostNQN == req.HostNQN && c.State != "deleting" {
			f.mu.Unlock()
			return c, nil
		}
	}
	f.mu.Unlock()
	name := ""
	c := f.add(fabric.Controller{Name: name, SubsysNQN: req.NQN, TrAddr: req.Address, TrSvcID: fmt.Sprint(req.Port),
		HostNQN: req.HostNQN, Timeouts: req.Timeouts.Effective()})
	f.mu.Lock()
	c.Namespaces[0].Size = size
	f.ctrls[c.Name] = c
	f.mu.Unlock()
	return c, nil
}

func (f *fakeFabric) SetTimeouts(ctx context.Context, name string, t fabric.Timeouts) error {
	if err := f.step(ctx, "set-timeouts"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.ctrls[name]
	if !ok {
		return fabric.ErrNotFound
	}
	e := t.Effective()
	if e.KeepAliveTmo != c.Timeouts.Effective().KeepAliveTmo {
		return fabric.ErrNeedsReconnect
	}
	c.Timeouts = e
	f.ctrls[name] = c
	return nil
}

func (f *fakeFabric) Rescan(ctx context.Context, name string) error {
	if err := f.step(ctx, "rescan"); err != nil {
		return err
	}
	f.mu.Lock()
	c, ok := f.ctrls[name]
	f.mu.Unlock()
	if !ok {
		return fabric.ErrNotFound
	}
	size := f.diskSize(c.SubsysNQN)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(c.Namespaces) == 0 {
		// As the kernel does: a rescan finds the namespace again.
		c.Namespaces = []fabric.Namespace{{Name: c.Name + "n1", Device: "/dev/" + c.Name + "n1"}}
	}
	c.Namespaces[0].Size = size
	f.ctrls[name] = c
	return nil
}

func (f *fakeFabric) Disconnect(ctx context.Context, name string, force bool) error {
	if err := f.step(ctx, "disconnect"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.ctrls[name]
	if !ok {
		return fabric.ErrNotFound
	}
	if err := fabric.DisconnectAllowed(c, f.prefixes, force); err != nil {
		return err
	}
	delete(f.ctrls, name)
	return nil
}

func (f *fakeFabric) HostNQN(context.Context) (string, error) { return f.hostNQN, nil }

// baseYAML is the test state: slot prefix t-, two hosts.
const baseYAML = `apiVersion: rds-reconcile/v1
kind: State
target:
  address: 10.0.0.1
  nvmePort: 4420
  basePath: pool/vols
  nqnPrefix: "nqn.2000-02.com.mikrotik:"
  slotPrefix: t-
defaults:
  connection: {ctrlLossTmo: -1, reconnectDelay: 5, keepAliveTmo: 0}
  retry: {attempts: 3, initialDelay: 1ms, maxDelay: 5ms, multiplier: 2, jitter: 0.1}
policy: {orphans: disconnect}
hosts:
  node-a: {hostNQN: "nqn.2014-08.org.nvmexpress:uuid:a"}
  node-b: {hostNQN: "nqn.2014-08.org.nvmexpress:uuid:b"}
`

// state loads baseYAML plus the volumes section given.
func state(t testing.TB, volumes string) *spec.State {
	t.Helper()
	src := baseYAML
	if strings.TrimSpace(volumes) != "" {
		src += "volumes:\n" + volumes
	}
	st, err := spec.LoadBytes("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("load state: %v\n%s", err, src)
	}
	return st
}

const nqnP = "nqn.2000-02.com.mikrotik:"

// disk is a managed disk as the state above would create it.
func disk(slot string, size int64) rds.Disk {
	return rds.Disk{Slot: slot, Type: "file", FilePath: "pool/vols/" + slot + ".img", Size: size, Export: true, Port: 4420, NQN: nqnP + slot}
}

// ctrl is a live controller for slot as this host would connect it.
func ctrl(name, slot string, t fabric.Timeouts) fabric.Controller {
	return fabric.Controller{Name: name, SubsysNQN: nqnP + slot, Transport: "tcp", TrAddr: "10.0.0.1", TrSvcID: "4420",
		HostNQN: "nqn.2014-08.org.nvmexpress:uuid:a", State: "live", Timeouts: t.Effective(),
		Namespaces: []fabric.Namespace{{Name: name + "n1", Device: "/dev/" + name + "n1", Size: 1 << 30}}}
}

var defTimeouts = fabric.Timeouts{CtrlLossTmo: -1, ReconnectDelay: 5, KeepAliveTmo: 0}

const gi = int64(1 << 30)
