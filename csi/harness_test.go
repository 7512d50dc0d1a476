package csi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	fabsim "github.com/rds-reconcile/rds-reconcile/fabric/sim"
	"github.com/rds-reconcile/rds-reconcile/rds"
	rdssim "github.com/rds-reconcile/rds-reconcile/rds/sim"
	"github.com/rds-reconcile/rds-reconcile/reconcile"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// loopDevices stands in for the kernel's /dev/nvmeXnY: one sparse file per
// volume behind a loop device, grown (and the loop device told) when the
// simulated namespace grows. Only the tests map devices; the driver's
// production path formats and mounts whatever device it is given.
type loopDevices struct {
	dir string
	mu  sync.Mutex
	dev map[string]string // volume -> /dev/loopN
}

func (l *loopDevices) resolve(ctx context.Context, volume string, ns fabric.Namespace) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	file := filepath.Join(l.dir, volume+".img")
	fi, err := os.Stat(file)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			return "", err
		}
		if err := os.Truncate(file, ns.Size); err != nil {
			return "", err
		}
	case err != nil:
		return "", err
	case fi.Size() < ns.Size:
		if err := os.Truncate(file, ns.Size); err != nil {
			return "", err
		}
		if dev := l.dev[volume]; dev != "" {
			if out, err := exec.CommandContext(ctx, "losetup", "-c", dev).CombinedOutput(); err != nil {
				return "", fmt.Errorf("losetup -c %s: %w: %s", dev, err, out)
			}
		}
	}
	if dev := l.dev[volume]; dev != "" {
		return dev, nil
	}
	out, err := exec.CommandContext(ctx, "losetup", "-f", "--show", file).Output()
	if err != nil {
		return "", fmt.Errorf("losetup %s: %w%s", file, err, stderrOf(err))
	}
	dev := strings.TrimSpace(string(out))
	if l.dev == nil {
		l.dev = map[string]string{}
	}
	l.dev[volume] = dev
	return dev, nil
}

func (l *loopDevices) detachAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, dev := range l.dev {
		_ = exec.Command("losetup", "-d", dev).Run()
	}
}

// env is one driver wired to the RouterOS simulator and a simulated host.
type env struct {
	dir      string
	base     string // base state file
	stateDir string
	kubelet  string // the node's kubelet directory: staging and target paths go below it
	nodeID   string
	client   *rds.SSHClient
	srv      *rdssim.Server // sessions and commands, for assertions
	host     *fabsim.Host
	loops    *loopDevices
	mounter  Mounter
}

const testNQNPrefix = "nqn.2000-02.com.mikrotik:"

// newEnv starts a RouterOS simulator with a pool of poolSize bytes and
// writes a base state naming it.
func newEnv(t testing.TB, poolSize int64) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dir := t.TempDir()
	srv, err := rdssim.New(rdssim.Options{Backend: rdssim.NewMemoryBackend(poolSize), JSON: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	key := filepath.Join(dir, "id_ed25519")
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(key, srv.ClientKeyPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kh, []byte(srv.KnownHostsLine()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "base.yaml")
	if err := os.WriteFile(base, []byte(fmt.Sprintf(`apiVersion: rds-reconcile/v1
kind: State
target:
  address: 127.0.0.1
  nvmePort: 4420
  basePath: storage-pool/volumes
  ssh:
    address: %s
    user: admin
    privateKeyFile: id_ed25519
    knownHostsFile: known_hosts
defaults:
  retry: {attempts: 2, initialDelay: 10ms, maxDelay: 50ms}
volumes:
  - name: git-owned
    size: 16Mi
`, srv.Addr())), 0o600); err != nil {
		t.Fatal(err)
	}
	client, err := rds.New(rds.Config{Address: srv.Addr(), User: "admin", PrivateKey: srv.ClientKeyPEM(),
		KnownHostsFile: kh, BasePath: "storage-pool/volumes", KeepAlive: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	e := &env{dir: dir, base: base, stateDir: filepath.Join(dir, "state"), kubelet: filepath.Join(dir, "kubelet"), nodeID: "node-1", client: client, srv: srv,
		loops: &loopDevices{dir: filepath.Join(dir, "loops")}, mounter: LinuxMounter{}}
	for _, d := range []string{e.stateDir, e.kubelet, e.loops.dir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(e.loops.detachAll)
	e.host, err = fabsim.Open(filepath.Join(dir, "fabric"), fabsim.Options{
		ManagedPrefixes: []string{testNQNPrefix},
		SizeOf: func(nqn string) int64 {
			d, err := client.Get(context.Background(), strings.TrimPrefix(nqn, testNQNPrefix))
			if err != nil || d == nil {
				return 0
			}
			return d.Size
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) controllerConfig() *ControllerConfig {
	return &ControllerConfig{
		BaseFiles:  []string{e.base},
		Layer:      spec.OpenStore(filepath.Join(e.stateDir, "csi-volumes.yaml")),
		Reconciler: FromEngine(reconcile.New(reconcile.Options{RDS: e.client})),
		Pool:       e.client,
		Inventory:  e.client,
	}
}

func (e *env) nodeConfig() *NodeConfig {
	return &NodeConfig{
		Layer:         spec.OpenStore(filepath.Join(e.stateDir, "node-"+e.nodeID+".yaml")),
		Host:          e.host,
		Reconciler:    FromEngine(reconcile.New(reconcile.Options{Fabric: e.host, Host: e.nodeID, DeviceWait: time.Second})),
		Mounter:       e.mounter,
		ResolveDevice: e.loops.resolve,
		KubeletDir:    e.kubelet,
	}
}

// serve starts a driver in mode on a unix socket and returns its address and
// a client connection.
func (e *env) serve(t testing.TB, mode Mode) (string, *grpc.ClientConn, *Driver) {
	t.Helper()
	opts := Options{Mode: mode, NodeID: e.nodeID, Version: "test"}
	if mode != ModeNode {
		opts.Controller = e.controllerConfig()
	}
	if mode != ModeController {
		opts.Node = e.nodeConfig()
	}
	return e.serveOpts(t, opts)
}

// serveWith starts a controller with cfg (another layer, another base).
func (e *env) serveWith(t testing.TB, cfg *ControllerConfig) (string, *grpc.ClientConn, *Driver) {
	t.Helper()
	return e.serveOpts(t, Options{Mode: ModeController, NodeID: e.nodeID, Version: "test", Controller: cfg})
}

func (e *env) serveOpts(t testing.TB, opts Options) (string, *grpc.ClientConn, *Driver) {
	t.Helper()
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := d.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	sock := filepath.Join(e.dir, fmt.Sprintf("csi-%d.sock", time.Now().UnixNano()))
	lis, err := Listen("unix://" + sock)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return "unix://" + sock, conn, d
}

func mountCap() *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
}

// listenerAddr keeps net imported for the helpers above on every platform.
var _ net.Listener

func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
