package fabric

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rds-reconcile/rds-reconcile/internal/retryable"
)

// TestRealKernel runs the Linux host against the real kernel: it needs root,
// configfs with nvmet and nvmet-tcp, and nvme-tcp, so it is skipped unless
// FABRIC_KERNEL_TEST=1. The e2e VM (docs/e2e.md) is the place to run it:
//
//	CGO_ENABLED=0 go test -c -o fabric.test ./fabric
//	# in the VM: FABRIC_KERNEL_TEST=1 ./fabric.test -test.run TestRealKernel -test.v
//
// It exports file-backed namespaces over 127.0.0.1 itself (configfs) and
// checks connect, EALREADY, timeouts read-back and in-place update, rescan,
// the in-use and prefix guards, the device wait and an outage.
func TestRealKernel(t *testing.T) {
	if os.Getenv("FABRIC_KERNEL_TEST") != "1" {
		t.Skip("set FABRIC_KERNEL_TEST=1 (root, nvmet, nvme-tcp) to run against the real kernel")
	}
	const (
		cfg     = "/sys/kernel/config/nvmet"
		port    = 4430
		prefix  = "nqn.2000-02.com.mikrotik:"
		nqn     = prefix + "fabric-kt"
		empty   = prefix + "fabric-empty"
		foreign = "nqn.2019-01.org.example:fabric-foreign"
	)
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, v string) { t.Helper(); must(os.WriteFile(path, []byte(v), 0o644)) }
	portDir := filepath.Join(cfg, "ports", "30")
	must(os.MkdirAll(portDir, 0o755))
	write(filepath.Join(portDir, "addr_adrfam"), "ipv4")
	write(filepath.Join(portDir, "addr_trtype"), "tcp")
	write(filepath.Join(portDir, "addr_traddr"), "127.0.0.1")
	write(filepath.Join(portDir, "addr_trsvcid"), "4430")
	images := map[string]string{}
	export := func(name string, withNS bool) {
		s := filepath.Join(cfg, "subsystems", name)
		must(os.MkdirAll(s, 0o755))
		write(filepath.Join(s, "attr_allow_any_host"), "1")
		if withNS {
			img := filepath.Join(t.TempDir(), "disk.img")
			images[name] = img
			f, err := os.Create(img)
			must(err)
			must(f.Truncate(64 << 20))
			f.Close()
			ns := filepath.Join(s, "namespaces", "1")
			must(os.MkdirAll(ns, 0o755))
			write(filepath.Join(ns, "device_path"), img)
			write(filepath.Join(ns, "buffered_io"), "1")
			write(filepath.Join(ns, "enable"), "1")
		}
		must(os.Symlink(s, filepath.Join(portDir, "subsystems", name)))
	}
	export(nqn, true)
	export(empty, false)
	export(foreign, true)

	l := NewLinux(LinuxOptions{ManagedPrefixes: []string{prefix}, PollInterval: 50 * time.Millisecond,
		HostNQNStateFile: filepath.Join(t.TempDir(), "hostnqn")})
	must(l.Usable(ctx))
	host, err := l.HostNQN(ctx)
	must(err)
	t.Logf("host NQN %s", host)

	r := ConnectRequest{NQN: nqn, Address: "127.0.0.1", Port: port, DeviceWait: 60 * time.Second,
		Timeouts: Timeouts{CtrlLossTmo: 6, ReconnectDelay: 4, KeepAliveTmo: 7}}
	t.Logf("option string: %s", OptionString(ConnectRequest{NQN: r.NQN, Address: r.Address, Port: r.Port, HostNQN: host, Timeouts: r.Timeouts}))
	c, err := l.Connect(ctx, r)
	must(err)
	t.Logf("connected %+v", c)
	if c.State != "live" || c.Transport != "tcp" || c.TrAddr != "127.0.0.1" || c.TrSvcID != "4430" || c.HostNQN != host {
		t.Errorf("controller %+v", c)
	}
	if c.Timeouts != (Timeouts{CtrlLossTmo: 8, ReconnectDelay: 4, KeepAliveTmo: 7}) {
		t.Errorf("timeouts %+v, want 8/4/7 (6 rounded up to whole delays)", c.Timeouts)
	}
	if len(c.Namespaces) != 1 || c.Namespaces[0].Size != 64<<20 || c.Namespaces[0].Major == 0 {
		t.Fatalf("namespaces %+v", c.Namespaces)
	}
	dev := c.Namespaces[0].Device
	if st, err := os.Stat(dev); err != nil || st.Mode()&os.ModeDevice == 0 {
		t.Errorf("device %s: %v", dev, err)
	}

	again, err := l.Connect(ctx, r)
	if err != nil || again.Name != c.Name {
		t.Errorf("EALREADY: %+v %v", again, err)
	}

	must(l.SetTimeouts(ctx, c.Name, Timeouts{CtrlLossTmo: -1, ReconnectDelay: 2, KeepAliveTmo: 7}))
	if err := l.SetTimeouts(ctx, c.Name, Timeouts{CtrlLossTmo: -1, ReconnectDelay: 2, KeepAliveTmo: 9}); !errors.Is(err, ErrNeedsReconnect) {
		t.Errorf("kato change: %v", err)
	}

	// Grow: the target sees a larger file, the host a larger disk after a rescan.
	must(os.Truncate(images[nqn], 96<<20))
	nsDir := filepath.Join(cfg, "subsystems", nqn, "namespaces", "1")
	if err := os.WriteFile(filepath.Join(nsDir, "revalidate_size"), []byte("1"), 0o644); err != nil {
		write(filepath.Join(nsDir, "enable"), "0")
		write(filepath.Join(nsDir, "enable"), "1")
	}
	must(l.Rescan(ctx, c.Name))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		list, err := l.List(ctx)
		must(err)
		if len(list) == 1 && len(list[0].Namespaces) == 1 && list[0].Namespaces[0].Size == 96<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("size after rescan: %+v", list)
		}
	}

	// In use: mkfs + mount, then the guard.
	mnt := t.TempDir()
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", dev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs: %v %s", err, out)
	}
	must(syscall.Mount(dev, mnt, "ext4", 0, ""))
	err = l.Disconnect(ctx, c.Name, false)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "mounted on "+mnt) {
		t.Errorf("mounted disconnect: %v", err)
	}
	t.Logf("in-use refusal: %v", err)

	// Outage: drop the port link; the controller reconnects forever
	// (ctrl_loss_tmo off) and comes back with the same device.
	link := filepath.Join(portDir, "subsystems", nqn)
	must(os.Remove(link))
	waitState := func(want State) Controller {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			list, err := l.List(ctx)
			must(err)
			for _, x := range list {
				if x.Name == c.Name && x.State == want {
					return x
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never %s: %+v", c.Name, want, list)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	down := waitState("connecting")
	t.Logf("during outage: %+v", down)
	if down.Timeouts.CtrlLossTmo != -1 || down.Timeouts.ReconnectDelay != 2 {
		t.Errorf("timeouts during outage %+v", down.Timeouts)
	}
	must(os.Symlink(filepath.Join(cfg, "subsystems", nqn), link))
	up := waitState("live")
	if len(up.Namespaces) != 1 || up.Namespaces[0].Device != dev || !up.Namespaces[0].InUse {
		t.Errorf("after outage %+v", up.Namespaces)
	}
	must(syscall.Unmount(mnt, 0))
	must(l.Disconnect(ctx, c.Name, false))
	if list, _ := l.List(ctx); len(list) != 0 {
		t.Errorf("left after disconnect: %+v", list)
	}
	if err := l.Disconnect(ctx, c.Name, false); !errors.Is(err, ErrNotFound) {
		t.Errorf("second disconnect: %v", err)
	}

	// Device wait: a subsystem without namespaces never gets a block device.
	er := ConnectRequest{NQN: empty, Address: "127.0.0.1", Port: port, DeviceWait: 3 * time.Second, Timeouts: Timeouts{CtrlLossTmo: -1, ReconnectDelay: 2}}
	_, err = l.Connect(ctx, er)
	if !retryable.Is(err) {
		t.Errorf("device wait: %v", err)
	}
	t.Logf("device wait: %v", err)

	// Prefix guard on a real foreign controller.
	fc, err := l.Connect(ctx, ConnectRequest{NQN: foreign, Address: "127.0.0.1", Port: port, DeviceWait: 60 * time.Second})
	must(err)
	if err := l.Disconnect(ctx, fc.Name, true); !errors.Is(err, ErrNotManaged) {
		t.Errorf("foreign: %v", err)
	}
	must(l.deleteController(ctx, fc.Name))

	// Nobody listens on 4431: the kernel refuses, and that is retryable.
	_, err = l.Connect(ctx, ConnectRequest{NQN: nqn, Address: "127.0.0.1", Port: 4431, Timeouts: Timeouts{CtrlLossTmo: 0, ReconnectDelay: 1}})
	t.Logf("refused: %v (retryable %v)", err, retryable.Is(err))
	if !retryable.Is(err) {
		t.Errorf("refused connect not retryable: %v", err)
	}
	if list, _ := l.List(ctx); len(list) != 0 {
		t.Errorf("left at the end: %+v", list)
	}

	// The nvme-cli connector, when FABRIC_NVME_CLI names the binary.
	cli := os.Getenv("FABRIC_NVME_CLI")
	if cli == "" {
		t.Log("FABRIC_NVME_CLI not set: nvme-cli connector not checked")
		return
	}
	lc := NewLinux(LinuxOptions{ManagedPrefixes: []string{prefix}, PollInterval: 50 * time.Millisecond,
		UseNVMeCLI: true, NVMeCLIPath: cli, HostNQNStateFile: filepath.Join(t.TempDir(), "hostnqn")})
	must(lc.Usable(ctx))
	cr := ConnectRequest{NQN: nqn, Address: "127.0.0.1", Port: port, DeviceWait: 60 * time.Second,
		Timeouts: Timeouts{CtrlLossTmo: 20, ReconnectDelay: 5, KeepAliveTmo: 0}}
	t.Logf("nvme %s", strings.Join(NVMeCLIArgs(cr), " "))
	cc, err := lc.Connect(ctx, cr)
	must(err)
	t.Logf("nvme-cli connected %+v", cc)
	if cc.Timeouts != (Timeouts{CtrlLossTmo: 20, ReconnectDelay: 5, KeepAliveTmo: 5}) || len(cc.Namespaces) != 1 {
		t.Errorf("nvme-cli controller %+v", cc)
	}
	cc2, err := lc.Connect(ctx, cr)
	if err != nil || cc2.Name != cc.Name {
		t.Errorf("nvme-cli already connected: %+v %v", cc2, err)
	}
	_, err = lc.Connect(ctx, ConnectRequest{NQN: nqn, Address: "127.0.0.1", Port: 4431, Timeouts: Timeouts{CtrlLossTmo: 0, ReconnectDelay: 1}})
	t.Logf("nvme-cli refused: %v (retryable %v)", err, retryable.Is(err))
	if err == nil || !retryable.Is(err) {
		t.Errorf("nvme-cli refused: %v", err)
	}
	must(lc.Disconnect(ctx, cc.Name, false))
}
