// Package sim is a simulated kernel NVMe host: the fabric.Host interface
// with the kernel's semantics (EALREADY returns the existing controller,
// lowest free instance numbers, controller states, removal after
// ctrl_loss_tmo during a target outage, the managed-prefix and in-use
// guards), with its state in DIR/fabric.json so several CLI runs, tests and
// the CSI driver share one simulated host. It needs no root and no kernel
// modules; the device paths it reports do not exist.
package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/internal/retryable"
)

// StateFile is the state file's name inside the directory.
const StateFile = "fabric.json"

// DefaultNamespaceSize is the size of a simulated namespace when
// Options.SizeOf is not set or returns <= 0.
const DefaultNamespaceSize = 1 << 30

// Options configures a simulated host.
type Options struct {
	// ManagedPrefixes are the NQN prefixes that may be disconnected/retuned.
	ManagedPrefixes []string
	// HostNQN overrides the host NQN; empty: one derived from the state
	// directory, persisted in the state file.
	HostNQN string
	// ConnectLatency is slept (honouring ctx) before each connect.
	ConnectLatency time.Duration
	Logger         *slog.Logger
	// Now is the clock outages are measured with (default time.Now).
	Now func() time.Time
	// SizeOf returns the namespace size for a subsystem NQN on connect and
	// rescan (for example from an RDS simulator); default 1 GiB.
	SizeOf func(nqn string) int64
}

// Host is a simulated kernel NVMe host. Every method locks the state file
// (flock), loads it, evaluates outages against Now, changes it and saves it
// atomically, so separate processes and separate Host values on one
// directory see each other's changes.
type Host struct {
	dir  string
	opts Options
	log  *slog.Logger
}

var _ fabric.Host = (*Host)(nil)

// state is the content of fabric.json.
type state struct {
	Version     int          `json:"version"`
	HostNQN     string       `json:"hostNQN,omitempty"`
	Controllers []controller `json:"controllers"`
	Down        []outage     `json:"downTargets,omitempty"`
	FailNext    *failure     `json:"failNextConnect,omitempty"`
}

type controller struct {
	fabric.Controller
	// Foreign marks a controller connected "by hand" (AddForeign).
	Foreign bool `json:"foreign,omitempty"`
	// DownSince is when the controller lost its target (state connecting).
	DownSince *time.Time `json:"downSince,omitempty"`
}

type outage struct {
	Address string    `json:"address"`
	Port    int       `json:"port"`
	Since   time.Time `json:"since"`
}

type failure struct {
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
}

// Open returns the simulated host whose state lives in dir (created if
// needed). A missing state file is an empty host.
func Open(dir string, opts Options) (*Host, error) {
	if dir == "" {
		return nil, errors.New("sim: empty state directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Host{dir: abs, opts: opts, log: log.With("component", "fabric-sim")}, nil
}

// Dir is the state directory.
func (h *Host) Dir() string { return h.dir }

// lock takes the exclusive flock on DIR/fabric.lock, polling so ctx can end
// the wait.
func (h *Host) lock(ctx context.Context) (func(), error) {
	f, err := os.OpenFile(filepath.Join(h.dir, "fabric.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("sim: lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("sim: lock: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("sim: waiting for the state lock: %w", ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// update runs fn on the locked, loaded and outage-evaluated state and saves
// the state when it changed (also when fn fails: a consumed failure or an
// expired controller must stick).
func (h *Host) update(ctx context.Context, fn func(st *state, now time.Time) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	unlock, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	path := filepath.Join(h.dir, StateFile)
	raw, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sim: %w", err)
	}
	st := &state{Version: 1}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, st); err != nil {
			return fmt.Errorf("sim: corrupt %s: %w", path, err)
		}
	}
	now := h.opts.Now()
	h.evaluate(st, now)
	ferr := fn(st, now)
	h.evaluate(st, now)
	out, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	out = append(out, '\n')
	if !bytes.Equal(out, raw) {
		if err := fabric.WriteFileAtomic(path, out, 0o644); err != nil {
			return fmt.Errorf("sim: save: %w", err)
		}
	}
	return ferr
}

func (h *Host) isDown(st *state, addr, port string) (outage, bool) {
	for _, o := range st.Down {
		if o.Address == addr && strconv.Itoa(o.Port) == port {
			return o, true
		}
	}
	return outage{}, false
}

// evaluate applies outages lazily: controllers of a down target are
// "connecting" since the outage began; one whose ctrl_loss_tmo (>= 0) has
// run out is removed, as the kernel deletes it; a controller whose target is
// back is "live" again (the kernel needs up to one reconnect_delay).
func (h *Host) evaluate(st *state, now time.Time) {
	kept := st.Controllers[:0]
	for _, c := range st.Controllers {
		if o, down := h.isDown(st, c.TrAddr, c.TrSvcID); down {
			if c.DownSince == nil {
				since := o.Since
				c.DownSince = &since
				c.State = fabric.StateConnecting
			}
			tmo := c.Timeouts.CtrlLossTmo
			if tmo >= 0 && !now.Before(c.DownSince.Add(time.Duration(tmo)*time.Second)) {
				h.log.Info("controller lost: ctrl_loss_tmo expired", "controller", c.Name, "nqn", c.SubsysNQN, "ctrl_loss_tmo", tmo)
				continue
			}
		} else if c.DownSince != nil {
			c.DownSince = nil
			c.State = fabric.StateLive
		}
		kept = append(kept, c)
	}
	st.Controllers = kept
}

func (h *Host) find(st *state, name string) (int, error) {
	for i, c := range st.Controllers {
		if c.Name == name {
			return i, nil
		}
	}
	return -1, fmt.Errorf("%w: %s", fabric.ErrNotFound, name)
}

func (h *Host) size(nqn string) int64 {
	if h.opts.SizeOf != nil {
		if s := h.opts.SizeOf(nqn); s > 0 {
			return s
		}
	}
	return DefaultNamespaceSize
}

func (h *Host) hostNQN(st *state) string {
	if h.opts.HostNQN != "" {
		return h.opts.HostNQN
	}
	if st.HostNQN == "" {
		st.HostNQN = fabric.DeriveHostNQN("rds-reconcile-sim:" + h.dir)
	}
	return st.HostNQN
}

// newController builds a controller with the lowest free instance, as the
// kernel's ida allocator does.
func (h *Host) newController(st *state, nqn, addr string, port int, host string, t fabric.Timeouts) controller {
	used := map[int]bool{}
	for _, c := range st.Controllers {
		used[c.Instance] = true
	}
	inst := 0
	for used[inst] {
		inst++
	}
	dev := fmt.Sprintf("nvme%dn1", inst)
	return controller{Controller: fabric.Controller{
		Name: fmt.Sprintf("nvme%d", inst), Instance: inst, SubsysNQN: nqn, Transport: "tcp",
		TrAddr: addr, TrSvcID: strconv.Itoa(port), HostNQN: host, State: fabric.StateLive, Timeouts: t.Effective(),
		Namespaces: []fabric.Namespace{{Name: dev, Device: "/dev/" + dev, Size: h.size(nqn), Major: 259, Minor: inst}},
	}}
}

func clone(c controller) fabric.Controller {
	out := c.Controller
	out.Namespaces = append([]fabric.Namespace{}, c.Namespaces...)
	return out
}

// List returns every simulated controller, by instance.
func (h *Host) List(ctx context.Context) ([]fabric.Controller, error) {
	var out []fabric.Controller
	err := h.update(ctx, func(st *state, _ time.Time) error {
		for _, c := range st.Controllers {
			out = append(out, clone(c))
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Instance < out[j].Instance })
	return out, err
}

// Connect connects like the kernel: an existing controller for the same NQN,
// address, port and host NQN is returned (EALREADY), a down target refuses
// (retryable ECONNREFUSED), a failure set with FailNextConnect is returned once.
func (h *Host) Connect(ctx context.Context, req fabric.ConnectRequest) (fabric.Controller, error) {
	if h.opts.ConnectLatency > 0 {
		select {
		case <-ctx.Done():
			return fabric.Controller{}, ctx.Err()
		case <-time.After(h.opts.ConnectLatency):
		}
	}
	var out fabric.Controller
	err := h.update(ctx, func(st *state, _ time.Time) error {
		if req.HostNQN == "" {
			req.HostNQN = h.hostNQN(st)
		}
		if err := fabric.ValidateRequest(req); err != nil {
			return err
		}
		if f := st.FailNext; f != nil {
			st.FailNext = nil
			err := fmt.Errorf("sim: connect %s: %s", req.NQN, f.Message)
			if f.Retryable {
				return retryable.Mark(err)
			}
			return err
		}
		port := strconv.Itoa(req.Port)
		// The kernel checks for a duplicate before it connects, so an
		// existing (even reconnecting) controller wins over a down target.
		for _, c := range st.Controllers {
			if c.SubsysNQN == req.NQN && c.TrAddr == req.Address && c.TrSvcID == port && c.HostNQN == req.HostNQN {
				h.log.Debug("already connected", "controller", c.Name, "nqn", req.NQN)
				out = clone(c)
				return nil
			}
		}
		if _, down := h.isDown(st, req.Address, port); down {
			return retryable.Mark(fmt.Errorf("sim: connect %s at %s:%d: %w", req.NQN, req.Address, req.Port, syscall.ECONNREFUSED))
		}
		c := h.newController(st, req.NQN, req.Address, req.Port, req.HostNQN, req.Timeouts)
		st.Controllers = append(st.Controllers, c)
		h.log.Debug("connected", "controller", c.Name, "nqn", req.NQN, "traddr", req.Address, "trsvcid", req.Port)
		out = clone(c)
		return nil
	})
	if err != nil {
		return fabric.Controller{}, err
	}
	return out, nil
}

// SetTimeouts changes ctrl_loss_tmo and reconnect_delay in place, with the
// kernel's rounding (fabric.Timeouts.Effective); a different keep-alive is
// ErrNeedsReconnect.
func (h *Host) SetTimeouts(ctx context.Context, name string, t fabric.Timeouts) error {
	return h.update(ctx, func(st *state, _ time.Time) error {
		i, err := h.find(st, name)
		if err != nil {
			return err
		}
		c := &st.Controllers[i]
		if !fabric.IsManaged(c.SubsysNQN, h.opts.ManagedPrefixes) {
			return fmt.Errorf("%w: %s (%s) is outside the managed NQN prefixes", fabric.ErrNotManaged, name, c.SubsysNQN)
		}
		if t.ReconnectDelay < 0 || t.KeepAliveTmo < 0 {
			return fmt.Errorf("%w: negative reconnect_delay or keep_alive_tmo", fabric.ErrInvalidRequest)
		}
		want := t.Effective()
		if want.KeepAliveTmo != c.Timeouts.KeepAliveTmo {
			return fmt.Errorf("%w: %s: keep_alive_tmo %d -> %d", fabric.ErrNeedsReconnect, name, c.Timeouts.KeepAliveTmo, want.KeepAliveTmo)
		}
		c.Timeouts = want
		return nil
	})
}

// Rescan refreshes namespace sizes from Options.SizeOf.
func (h *Host) Rescan(ctx context.Context, name string) error {
	return h.update(ctx, func(st *state, _ time.Time) error {
		i, err := h.find(st, name)
		if err != nil {
			return err
		}
		c := &st.Controllers[i]
		for j := range c.Namespaces {
			c.Namespaces[j].Size = h.size(c.SubsysNQN)
		}
		return nil
	})
}

// Disconnect removes a controller under the same guards as the Linux host.
func (h *Host) Disconnect(ctx context.Context, name string, force bool) error {
	return h.update(ctx, func(st *state, _ time.Time) error {
		i, err := h.find(st, name)
		if err != nil {
			return err
		}
		if err := fabric.DisconnectAllowed(st.Controllers[i].Controller, h.opts.ManagedPrefixes, force); err != nil {
			return err
		}
		h.log.Debug("disconnected", "controller", name, "nqn", st.Controllers[i].SubsysNQN, "force", force)
		st.Controllers = append(st.Controllers[:i], st.Controllers[i+1:]...)
		return nil
	})
}

// HostNQN is Options.HostNQN or the one persisted in the state file.
func (h *Host) HostNQN(ctx context.Context) (string, error) {
	var out string
	err := h.update(ctx, func(st *state, _ time.Time) error {
		out = h.hostNQN(st)
		return nil
	})
	return out, err
}

// SetTargetDown starts (down) or ends an outage of a target address and
// port. During it the target's controllers are "connecting"; each is removed
// once its ctrl_loss_tmo (when >= 0) has passed since the outage began,
// evaluated lazily against Now on every call. When the target is back, the
// remaining controllers are "live" again.
func (h *Host) SetTargetDown(addr string, port int, down bool) error {
	return h.update(context.Background(), func(st *state, now time.Time) error {
		p := strconv.Itoa(port)
		_, isDown := h.isDown(st, addr, p)
		switch {
		case down && !isDown:
			st.Down = append(st.Down, outage{Address: addr, Port: port, Since: now})
		case !down && isDown:
			kept := st.Down[:0]
			for _, o := range st.Down {
				if o.Address != addr || o.Port != port {
					kept = append(kept, o)
				}
			}
			st.Down = kept
		}
		return nil
	})
}

// SetMounted marks the namespace name (e.g. "nvme0n1") mounted on
// mountpoint, which makes it in use; an empty mountpoint unmounts it.
func (h *Host) SetMounted(name string, mountpoint string) error {
	return h.update(context.Background(), func(st *state, _ time.Time) error {
		for i := range st.Controllers {
			for j := range st.Controllers[i].Namespaces {
				ns := &st.Controllers[i].Namespaces[j]
				if ns.Name != name {
					continue
				}
				ns.InUse = mountpoint != ""
				ns.InUseBy = ""
				if ns.InUse {
					ns.InUseBy = name + " mounted on " + mountpoint
				}
				return nil
			}
		}
		return fmt.Errorf("%w: no namespace %s", fabric.ErrNotFound, name)
	})
}

// AddForeign adds a controller as if connected by hand with nvme-cli
// defaults (ctrl_loss_tmo 600, reconnect_delay 10, keep-alive 5), whatever
// its NQN: for orphan and prefix-guard tests.
func (h *Host) AddForeign(nqn, addr string, port int) (fabric.Controller, error) {
	var out fabric.Controller
	err := h.update(context.Background(), func(st *state, _ time.Time) error {
		host := h.hostNQN(st)
		if err := fabric.ValidateRequest(fabric.ConnectRequest{NQN: nqn, Address: addr, Port: port, HostNQN: host}); err != nil {
			return err
		}
		for _, c := range st.Controllers {
			if c.SubsysNQN == nqn && c.TrAddr == addr && c.TrSvcID == strconv.Itoa(port) && c.HostNQN == host {
				return fmt.Errorf("sim: %s already connected as %s: %w", nqn, c.Name, syscall.EALREADY)
			}
		}
		c := h.newController(st, nqn, addr, port, host, fabric.Timeouts{
			CtrlLossTmo: fabric.KernelDefaultCtrlLossTmo, ReconnectDelay: fabric.KernelDefaultReconnectDelay})
		c.Foreign = true
		st.Controllers = append(st.Controllers, c)
		out = clone(c)
		return nil
	})
	return out, err
}

// FailNextConnect makes the next Connect (by any process) fail with msg,
// retryable or not.
func (h *Host) FailNextConnect(msg string, retryable bool) {
	err := h.update(context.Background(), func(st *state, _ time.Time) error {
		st.FailNext = &failure{Message: msg, Retryable: retryable}
		return nil
	})
	if err != nil {
		h.log.Error("FailNextConnect", "err", err)
	}
}
