package fabric

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rds-reconcile/rds-reconcile/internal/retryable"
)

// Defaults for LinuxOptions and ConnectRequest.
const (
	DefaultDeviceWait   = 30 * time.Second
	DefaultPollInterval = 100 * time.Millisecond
	// DefaultDeleteWait bounds the wait for a deleted controller to leave sysfs.
	DefaultDeleteWait = 30 * time.Second
)

// FabricsDevice opens the kernel's fabrics control device
// (/dev/nvme-fabrics). The kernel takes one option string per open file and
// answers "instance=N,cntlid=M" on a read of the same file. Tests replace it
// with a fake that creates the controller in a fake sysfs tree.
type FabricsDevice interface {
	Open(path string) (io.ReadWriteCloser, error)
}

// CommandRunner runs a program and returns its combined output (nvme-cli).
type CommandRunner func(ctx context.Context, name string, args ...string) ([]byte, error)

// LinuxOptions configures the Linux host. Zero values take the defaults.
type LinuxOptions struct {
	SysfsRoot string // default "/sys"
	DevRoot   string // default "/dev"
	ProcRoot  string // default "/proc" (mountinfo: ProcRoot/self/mountinfo)
	// ManagedPrefixes are the NQN prefixes this tool may disconnect or
	// retune; with none, nothing is managed.
	ManagedPrefixes []string
	UseNVMeCLI      bool   // connect with nvme-cli instead of /dev/nvme-fabrics
	NVMeCLIPath     string // default "nvme" (looked up in PATH)
	HostNQNFile     string // default /etc/nvme/hostnqn
	// HostNQNStateFile keeps a generated host NQN (default
	// /var/lib/rds-reconcile/hostnqn).
	HostNQNStateFile string
	// ReadOnly: commands that only look (plan, status) never write, not
	// even a generated host NQN; HostNQN then derives it without keeping it.
	ReadOnly      bool
	MachineIDFile string // default /etc/machine-id
	Logger        *slog.Logger
	PollInterval  time.Duration // device and delete wait polling (default 100ms)
	// DeleteWait bounds Disconnect's wait for the controller to vanish.
	DeleteWait time.Duration

	// Fabrics opens /dev/nvme-fabrics (default: the real file).
	Fabrics FabricsDevice
	// Run runs nvme-cli (default: exec.CommandContext, combined output).
	Run CommandRunner
}

// Linux is the kernel NVMe host of this machine. It implements Host.
type Linux struct {
	opts LinuxOptions
	log  *slog.Logger
	// writeAttr writes one sysfs attribute; tests swap it for a fake kernel.
	writeAttr func(path, value string) error
	// statRdev gives a block device's major:minor (in-use detection: open
	// fds, swap, loop backing files); tests swap it to map fake files to
	// device numbers.
	statRdev statRdevFunc

	mu      sync.Mutex
	hostNQN string // cached once resolved
}

var _ Host = (*Linux)(nil)

// NewLinux returns the Linux host with defaults filled in.
func NewLinux(opts LinuxOptions) *Linux {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&opts.SysfsRoot, "/sys")
	def(&opts.DevRoot, "/dev")
	def(&opts.ProcRoot, "/proc")
	def(&opts.NVMeCLIPath, "nvme")
	def(&opts.HostNQNFile, "/etc/nvme/hostnqn")
	def(&opts.HostNQNStateFile, "/var/lib/rds-reconcile/hostnqn")
	def(&opts.MachineIDFile, "/etc/machine-id")
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.DeleteWait <= 0 {
		opts.DeleteWait = DefaultDeleteWait
	}
	if opts.Fabrics == nil {
		opts.Fabrics = osFabrics{}
	}
	if opts.Run == nil {
		opts.Run = runCommand
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Linux{opts: opts, log: log.With("component", "fabric"), writeAttr: writeSysfs, statRdev: statBlockRdev}
}

type osFabrics struct{}

func (osFabrics) Open(path string) (io.ReadWriteCloser, error) {
	return os.OpenFile(path, os.O_RDWR, 0)
}

func runCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

// writeSysfs writes an attribute without O_CREATE: a vanished controller
// gives ENOENT instead of a stray file.
func writeSysfs(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(value)
	cerr := f.Close()
	if werr != nil {
		return werr
	}
	return cerr
}

func (l *Linux) fabricsPath() string { return filepath.Join(l.opts.DevRoot, "nvme-fabrics") }

// scanner returns a sysfs scanner; withInUse adds what in-use detection
// needs, read once for the whole scan: the mount table, every process's
// open block devices (our own process left out), the active swap areas and
// the loop devices' backing files.
func (l *Linux) scanner(withInUse bool) (scanner, error) {
	s := scanner{sysfs: l.opts.SysfsRoot, dev: l.opts.DevRoot}
	if withInUse {
		mt, err := readMountinfo(filepath.Join(l.opts.ProcRoot, "self", "mountinfo"))
		if err != nil {
			return s, err
		}
		u, err := readUsage(l.opts.ProcRoot, l.opts.SysfsRoot, l.opts.DevRoot, os.Getpid(), l.statRdev)
		if err != nil {
			return s, err
		}
		s.mounts, s.usage = mt, u
	}
	return s, nil
}

// Usable says whether this host can connect at all: /dev/nvme-fabrics exists
// (nvme-fabrics loaded) or, with UseNVMeCLI, nvme-cli is found. For CSI Probe.
func (l *Linux) Usable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.opts.UseNVMeCLI {
		if _, err := exec.LookPath(l.opts.NVMeCLIPath); err != nil {
			return fmt.Errorf("nvme-cli not usable: %w", err)
		}
		return nil
	}
	if _, err := os.Stat(l.fabricsPath()); err != nil {
		return fmt.Errorf("%s missing (is the nvme-tcp module loaded?): %w", l.fabricsPath(), err)
	}
	return nil
}

// List returns every fabrics controller (pcie ones are skipped) with its
// namespaces and their in-use state, from one sysfs scan and one scan of
// /proc (mountinfo, every process's open fds, swaps): see scanner.
func (l *Linux) List(ctx context.Context) ([]Controller, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s, err := l.scanner(true)
	if err != nil {
		return nil, markTransient(err)
	}
	cs, err := s.list()
	return cs, markTransient(err)
}

// get reads one controller with in-use state.
func (l *Linux) get(name string) (Controller, error) {
	if err := validName(name); err != nil {
		return Controller{}, err
	}
	s, err := l.scanner(true)
	if err != nil {
		return Controller{}, err
	}
	return s.controller(name)
}

var replyRE = regexp.MustCompile(`instance=(\d+)`)

// Connect connects req (filling in this host's NQN when empty), waits for a
// namespace block device and checks the timeouts the kernel took. An
// existing connection (EALREADY) is returned as is after the same wait.
// A new controller whose device never appears is deleted again and the
// error is retryable. On a timeouts mismatch the controller is returned with
// an ErrTimeoutsMismatch error (it stays connected).
func (l *Linux) Connect(ctx context.Context, req ConnectRequest) (Controller, error) {
	if req.HostNQN == "" {
		h, err := l.HostNQN(ctx)
		if err != nil {
			return Controller{}, markTransient(err)
		}
		req.HostNQN = h
	}
	if err := ValidateRequest(req); err != nil {
		return Controller{}, err
	}
	if err := ctx.Err(); err != nil {
		return Controller{}, err
	}
	var (
		name    string
		created bool
		err     error
	)
	if l.opts.UseNVMeCLI {
		name, created, err = l.connectCLI(ctx, req)
	} else {
		name, created, err = l.connectDevice(req)
	}
	if err != nil {
		return Controller{}, markTransient(err)
	}
	log := l.log.With("controller", name, "nqn", req.NQN, "traddr", req.Address, "trsvcid", req.Port)
	if created {
		log.Debug("connected")
	} else {
		log.Debug("already connected")
	}
	c, err := l.waitDevice(ctx, name, req.DeviceWait)
	if err != nil {
		if created {
			if derr := l.deleteController(context.WithoutCancel(ctx), name); derr != nil && !errors.Is(derr, ErrNotFound) {
				log.Warn("delete after failed device wait", "err", derr)
			}
		}
		return Controller{}, markTransient(err)
	}
	if created {
		return c, tookTimeouts(c, req.Timeouts.Effective())
	}
	return c, nil
}

// tookTimeouts checks that a new controller took the timeouts asked for:
// ErrTimeoutsMismatch when not. kato reads 0 only on kernels without the
// attribute: not checked then.
func tookTimeouts(c Controller, want Timeouts) error {
	got := c.Timeouts
	if got.CtrlLossTmo != want.CtrlLossTmo || got.ReconnectDelay != want.ReconnectDelay ||
		(got.KeepAliveTmo != 0 && got.KeepAliveTmo != want.KeepAliveTmo) {
		return fmt.Errorf("%w: %s: ctrl_loss_tmo/reconnect_delay/kato %d/%d/%d, want %d/%d/%d", ErrTimeoutsMismatch, c.Name,
			got.CtrlLossTmo, got.ReconnectDelay, got.KeepAliveTmo, want.CtrlLossTmo, want.ReconnectDelay, want.KeepAliveTmo)
	}
	return nil
}

// connectDevice writes the option string to /dev/nvme-fabrics.
func (l *Linux) connectDevice(req ConnectRequest) (name string, created bool, err error) {
	f, err := l.opts.Fabrics.Open(l.fabricsPath())
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", false, fmt.Errorf("open %s (nvme-fabrics/nvme-tcp not loaded?): %w", l.fabricsPath(), err)
		}
		return "", false, classify(err, "open %s", l.fabricsPath())
	}
	defer f.Close()
	opts := OptionString(req)
	l.log.Debug("writing fabrics options", "device", l.fabricsPath(), "options", opts)
	// One write per open; the kernel parses it and connects synchronously.
	if _, err := io.WriteString(f, opts); err != nil {
		if errors.Is(err, syscall.EALREADY) {
			name, err := l.findExisting(req)
			return name, false, err
		}
		return "", false, classify(err, "connect %s at %s:%d", req.NQN, req.Address, req.Port)
	}
	buf := make([]byte, 256)
	n, err := f.Read(buf)
	if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
		return "", false, fmt.Errorf("read back %s: %w", l.fabricsPath(), err)
	}
	m := replyRE.FindStringSubmatch(string(buf[:n]))
	if m == nil {
		return "", false, fmt.Errorf("unexpected reply from %s: %q", l.fabricsPath(), strings.TrimSpace(string(buf[:n])))
	}
	return "nvme" + m[1], true, nil
}

var cliDeviceRE = regexp.MustCompile(`\b(nvme\d+)\b`)

// connectCLI runs nvme connect.
func (l *Linux) connectCLI(ctx context.Context, req ConnectRequest) (name string, created bool, err error) {
	args := NVMeCLIArgs(req)
	l.log.Debug("running nvme-cli", "path", l.opts.NVMeCLIPath, "args", args)
	out, err := l.opts.Run(ctx, l.opts.NVMeCLIPath, args...)
	text := strings.TrimSpace(string(out))
	if err != nil {
		low := strings.ToLower(text)
		if strings.Contains(low, "already") {
			name, err := l.findExisting(req)
			return name, false, err
		}
		werr := fmt.Errorf("nvme connect %s at %s:%d: %w: %s", req.NQN, req.Address, req.Port, err, text)
		if strings.Contains(low, "invalid argument") || ctx.Err() != nil {
			return "", false, werr
		}
		// Everything else (refused, timed out, host not allowed yet) may pass.
		return "", false, retryable.Mark(werr)
	}
	// nvme-cli 1.x prints "connecting to device: nvme3", 2.x nothing.
	if m := cliDeviceRE.FindStringSubmatch(text); m != nil && strings.Contains(text, "device") {
		return m[1], true, nil
	}
	name, err = l.findExisting(req)
	return name, true, err
}

// findExisting finds the controller the kernel refused to duplicate: same
// subsystem NQN, traddr, trsvcid and host NQN, not being deleted.
func (l *Linux) findExisting(req ConnectRequest) (string, error) {
	s, err := l.scanner(false)
	if err != nil {
		return "", err
	}
	list, err := s.list()
	if err != nil {
		return "", err
	}
	for _, c := range list {
		if c.SubsysNQN != req.NQN || !sameAddr(c.TrAddr, req.Address) || c.TrSvcID != strconv.Itoa(req.Port) {
			continue
		}
		if c.HostNQN != "" && c.HostNQN != req.HostNQN {
			continue
		}
		if c.State.Deleting() || c.State == StateDead {
			continue
		}
		return c.Name, nil
	}
	// The kernel saw one a moment ago; it may be going away right now.
	return "", retryable.Mark(fmt.Errorf("%w: kernel reports %s at %s:%d already connected but no such controller is listed",
		ErrNotFound, req.NQN, req.Address, req.Port))
}

// waitDevice polls until the controller has a namespace whose block device
// exists under DevRoot, then returns it with in-use state.
func (l *Linux) waitDevice(ctx context.Context, name string, wait time.Duration) (Controller, error) {
	if wait <= 0 {
		wait = DefaultDeviceWait
	}
	deadline := time.Now().Add(wait)
	t := time.NewTicker(l.opts.PollInterval)
	defer t.Stop()
	s := scanner{sysfs: l.opts.SysfsRoot, dev: l.opts.DevRoot}
	for {
		c, err := s.controller(name)
		if errors.Is(err, ErrNotFound) {
			return Controller{}, retryable.Mark(fmt.Errorf("controller %s vanished while waiting for its block device: %w", name, err))
		}
		if err != nil {
			return Controller{}, err
		}
		for _, ns := range c.Namespaces {
			if _, err := os.Stat(ns.Device); err == nil {
				return l.get(name)
			}
		}
		if !time.Now().Before(deadline) {
			return Controller{}, retryable.Mark(fmt.Errorf("controller %s (state %q): no namespace block device after %s", name, c.State, wait))
		}
		select {
		case <-ctx.Done():
			return Controller{}, fmt.Errorf("waiting for the block device of %s: %w", name, ctx.Err())
		case <-t.C:
		}
	}
}

// SetTimeouts changes ctrl_loss_tmo and reconnect_delay of a live
// controller in sysfs. reconnect_delay is written first because the kernel
// turns ctrl_loss_tmo into a reconnect count using the current delay. A
// different keep-alive cannot be set live: ErrNeedsReconnect, nothing written.
func (l *Linux) SetTimeouts(ctx context.Context, name string, t Timeouts) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := l.get(name)
	if err != nil {
		return markTransient(err)
	}
	if !IsManaged(c.SubsysNQN, l.opts.ManagedPrefixes) {
		return fmt.Errorf("%w: %s (%s) is outside the managed NQN prefixes", ErrNotManaged, name, c.SubsysNQN)
	}
	if t.ReconnectDelay < 0 || t.KeepAliveTmo < 0 {
		return fmt.Errorf("%w: negative reconnect_delay or keep_alive_tmo", ErrInvalidRequest)
	}
	want := t.Effective()
	if c.Timeouts.KeepAliveTmo != 0 && c.Timeouts.KeepAliveTmo != want.KeepAliveTmo {
		return fmt.Errorf("%w: %s: keep_alive_tmo %d -> %d", ErrNeedsReconnect, name, c.Timeouts.KeepAliveTmo, want.KeepAliveTmo)
	}
	dir := filepath.Join(l.opts.SysfsRoot, "class", "nvme", name)
	clt := t.CtrlLossTmo
	if clt < 0 {
		clt = -1
	}
	for _, a := range []struct {
		attr string
		v    int
	}{{"reconnect_delay", want.ReconnectDelay}, {"ctrl_loss_tmo", clt}} {
		if err := l.writeAttr(filepath.Join(dir, a.attr), strconv.Itoa(a.v)); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%w: %s", ErrNotFound, name)
			}
			return classify(err, "set %s %s=%d", name, a.attr, a.v)
		}
	}
	got, err := l.get(name)
	if err != nil {
		return markTransient(err)
	}
	if got.Timeouts.CtrlLossTmo != want.CtrlLossTmo || got.Timeouts.ReconnectDelay != want.ReconnectDelay {
		return fmt.Errorf("%w: %s: ctrl_loss_tmo %d reconnect_delay %d, want %d and %d", ErrTimeoutsMismatch,
			name, got.Timeouts.CtrlLossTmo, got.Timeouts.ReconnectDelay, want.CtrlLossTmo, want.ReconnectDelay)
	}
	l.log.Debug("timeouts updated", "controller", name, "ctrl_loss_tmo", want.CtrlLossTmo, "reconnect_delay", want.ReconnectDelay)
	return nil
}

// Rescan asks the controller to rescan its namespaces (sizes after a grow).
func (l *Linux) Rescan(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validName(name); err != nil {
		return err
	}
	err := l.writeAttr(filepath.Join(l.opts.SysfsRoot, "class", "nvme", name, "rescan_controller"), "1")
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return classify(err, "rescan %s", name)
	}
	return nil
}

// Disconnect deletes a managed controller, refusing an in-use one unless
// force, and waits (bounded) until it left sysfs.
func (l *Linux) Disconnect(ctx context.Context, name string, force bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := l.get(name)
	if err != nil {
		return markTransient(err)
	}
	if err := DisconnectAllowed(c, l.opts.ManagedPrefixes, force); err != nil {
		return err
	}
	if err := l.deleteController(ctx, name); err != nil {
		return markTransient(err)
	}
	l.log.Debug("disconnected", "controller", name, "nqn", c.SubsysNQN, "force", force)
	return nil
}

// deleteController writes delete_controller and waits for the directory to
// go. The kernel deletes synchronously, so the wait is normally one poll.
func (l *Linux) deleteController(ctx context.Context, name string) error {
	dir := filepath.Join(l.opts.SysfsRoot, "class", "nvme", name)
	if err := l.writeAttr(filepath.Join(dir, "delete_controller"), "1"); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENODEV) {
			if _, serr := os.Stat(dir); errors.Is(serr, fs.ErrNotExist) {
				return fmt.Errorf("%w: %s", ErrNotFound, name)
			}
		}
		return fmt.Errorf("delete %s: %w", name, err)
	}
	deadline := time.Now().Add(l.opts.DeleteWait)
	t := time.NewTicker(l.opts.PollInterval)
	defer t.Stop()
	for {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if !time.Now().Before(deadline) {
			return retryable.Mark(fmt.Errorf("controller %s still present %s after delete", name, l.opts.DeleteWait))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to go: %w", name, ctx.Err())
		case <-t.C:
		}
	}
}
