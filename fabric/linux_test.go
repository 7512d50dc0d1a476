package fabric

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rds-reconcile/rds-reconcile/internal/retryable"
)

const mixed = "testdata/sysfs-mixed"

var managed = []string{"nqn.2000-02.com.mikrotik:"}

func mixedLinux(t testing.TB, root string) (*Linux, *fakeKernel) {
	k := newFakeKernel(t, root)
	return k.linux(LinuxOptions{ManagedPrefixes: managed}), k
}

func TestListMixedTree(t *testing.T) {
	l, _ := mixedLinux(t, mixed)
	got, err := l.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Device paths contain the tree root; make the golden file portable.
	root, _ := filepath.Abs(mixed)
	b, _ := json.MarshalIndent(got, "", "  ")
	b = []byte(strings.ReplaceAll(strings.ReplaceAll(string(b), root, "ROOT"), mixed, "ROOT"))
	golden(t, "list_mixed.golden", append(b, '\n'))

	byName := map[string]Controller{}
	var names []string
	for _, c := range got {
		byName[c.Name] = c
		names = append(names, c.Name)
	}
	if want := []string{"nvme0", "nvme1", "nvme2", "nvme3", "nvme5"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("controllers %v, want %v (pcie nvme4 skipped)", names, want)
	}
	c0 := byName["nvme0"]
	if c0.Timeouts != (Timeouts{CtrlLossTmo: -1, ReconnectDelay: 5, KeepAliveTmo: 5}) || c0.TrAddr != "10.42.68.1" || c0.TrSvcID != "4420" {
		t.Errorf("nvme0 = %+v", c0)
	}
	if len(c0.Namespaces) != 1 || c0.Namespaces[0].Name != "nvme0n1" || !strings.HasSuffix(c0.Namespaces[0].Device, "/dev/nvme0n1") ||
		c0.Namespaces[0].Size != 41943040*512 || c0.Namespaces[0].Major != 259 || c0.Namespaces[0].Minor != 0 {
		t.Errorf("nvme0 namespaces (multipath naming) = %+v", c0.Namespaces)
	}
	if ns := c0.Namespaces[0]; !ns.InUse || ns.InUseBy != "nvme0n1 mounted on /var/lib/db data" {
		t.Errorf("nvme0n1 in use = %v %q", ns.InUse, ns.InUseBy)
	}
	if ns := byName["nvme1"].Namespaces; len(ns) != 1 || !ns[0].InUse || ns[0].InUseBy != "nvme1n1p1 held by dm-0" {
		t.Errorf("nvme1 (holder on partition) = %+v", ns)
	}
	if c := byName["nvme2"]; c.State != "connecting" || len(c.Namespaces) != 0 || c.Timeouts.CtrlLossTmo != 30 || c.TrAddr != "10.42.68.2" {
		t.Errorf("nvme2 (mid-reconnect) = %+v", c)
	}
	if c := byName["nvme3"]; c.State != "" || c.HostNQN != "" || c.Timeouts != (Timeouts{}) || len(c.Namespaces) != 1 ||
		c.Namespaces[0].Size != 2048*512 || c.Namespaces[0].InUse {
		t.Errorf("nvme3 (missing attributes) = %+v", c)
	}
	if c := byName["nvme5"]; c.Transport != "rdma" || len(c.Namespaces) != 2 || c.Namespaces[0].Name != "nvme7n2" || c.Namespaces[1].Name != "nvme7n10" {
		t.Errorf("nvme5 = %+v", c)
	}
}

func TestListNoNVMeClass(t *testing.T) {
	l := NewLinux(LinuxOptions{SysfsRoot: t.TempDir(), ProcRoot: t.TempDir()})
	got, err := l.List(context.Background())
	if err != nil || len(got) != 0 {
		t.Fatalf("List on a kernel without nvme = %v, %v", got, err)
	}
}

func TestParsers(t *testing.T) {
	for in, want := range map[string][2]string{
		"traddr=10.0.0.1,trsvcid=4420":                               {"10.0.0.1", "4420"},
		"traddr=10.0.0.1,trsvcid=4420,src_addr=10.0.0.9":             {"10.0.0.1", "4420"},
		"traddr=fe80::1,trsvcid=4420,host_traddr=fe80::2,src_addr=x": {"fe80::1", "4420"},
		"":           {"", ""},
		"garbage,,=": {"", ""},
	} {
		a, p := parseAddress(in)
		if a != want[0] || p != want[1] {
			t.Errorf("parseAddress(%q) = %q %q", in, a, p)
		}
	}
	for in, want := range map[string]int{"off": -1, "600": 600, "": 0, "x": 0, "0": 0} {
		if got := parseCtrlLossTmo(in); got != want {
			t.Errorf("parseCtrlLossTmo(%q) = %d", in, got)
		}
	}
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/t\011x\`: "/t\tx\\", `\04`: `\04`} {
		if got := UnescapeMountInfo(in); got != want {
			t.Errorf("UnescapeMountInfo(%q) = %q", in, got)
		}
	}
}

func TestIsManaged(t *testing.T) {
	cases := []struct {
		nqn      string
		prefixes []string
		want     bool
	}{
		{"nqn.2000-02.com.mikrotik:db", managed, true},
		{"nqn.2000-02.com.mikrotik:", managed, true},
		{"nqn.2000-02.com.mikrotik", managed, false},
		{"nqn.2019-01.org.example:db", managed, false},
		{"anything", nil, false},
		{"anything", []string{""}, false},
		{"nqn.b:x", []string{"nqn.a:", "nqn.b:"}, true},
	}
	for _, c := range cases {
		if got := IsManaged(c.nqn, c.prefixes); got != c.want {
			t.Errorf("IsManaged(%q, %q) = %v", c.nqn, c.prefixes, got)
		}
	}
}

func TestTimeoutsEffective(t *testing.T) {
	cases := []struct{ in, want Timeouts }{
		{Timeouts{-1, 5, 0}, Timeouts{-1, 5, 5}},
		{Timeouts{-7, 5, 0}, Timeouts{-1, 5, 5}},
		{Timeouts{600, 0, 0}, Timeouts{600, 10, 5}},
		{Timeouts{6, 4, 15}, Timeouts{8, 4, 15}},
		{Timeouts{6, 2, 1}, Timeouts{6, 2, 1}},
		{Timeouts{0, 3, 0}, Timeouts{0, 3, 5}},
		{Timeouts{1, 10, 0}, Timeouts{10, 10, 5}},
	}
	for _, c := range cases {
		if got := c.in.Effective(); got != c.want {
			t.Errorf("%+v.Effective() = %+v, want %+v", c.in, got, c.want)
		}
		if !c.in.Matches(c.want) {
			t.Errorf("%+v should match %+v", c.in, c.want)
		}
	}
	if (Timeouts{600, 5, 0}).Matches(Timeouts{-1, 5, 5}) {
		t.Error("600 must not match off")
	}
}

func TestValidateRequest(t *testing.T) {
	ok := ConnectRequest{NQN: "nqn.2000-02.com.mikrotik:db", Address: "10.0.0.1", Port: 4420, HostNQN: "nqn.h"}
	bad := map[string]func(*ConnectRequest){
		"empty nqn":       func(r *ConnectRequest) { r.NQN = "" },
		"comma injection": func(r *ConnectRequest) { r.NQN = "nqn.x,duplicate_connect" },
		"equals in addr":  func(r *ConnectRequest) { r.Address = "a=b" },
		"newline host":    func(r *ConnectRequest) { r.HostNQN = "nqn.h\nx" },
		"port 0":          func(r *ConnectRequest) { r.Port = 0 },
		"port 70000":      func(r *ConnectRequest) { r.Port = 70000 },
		"negative delay":  func(r *ConnectRequest) { r.Timeouts.ReconnectDelay = -1 },
		"negative kato":   func(r *ConnectRequest) { r.Timeouts.KeepAliveTmo = -1 },
	}
	if err := ValidateRequest(ok); err != nil {
		t.Fatal(err)
	}
	for name, mut := range bad {
		r := ok
		mut(&r)
		if err := ValidateRequest(r); !errors.Is(err, ErrInvalidRequest) || retryable.Is(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestConnectStringsGolden pins the exact option string and nvme-cli
// arguments for each timeout combination.
func TestConnectStringsGolden(t *testing.T) {
	base := ConnectRequest{NQN: "nqn.2000-02.com.mikrotik:db-data", Address: "10.42.68.1", Port: 4420,
		HostNQN: "nqn.2014-08.org.nvmexpress:uuid:0f7a3c1e-1111-4222-8333-444455556666"}
	cases := []struct {
		name string
		t    Timeouts
	}{
		{"forever_default_kato", Timeouts{CtrlLossTmo: -1, ReconnectDelay: 5, KeepAliveTmo: 0}},
		{"600_delay10_kato5", Timeouts{CtrlLossTmo: 600, ReconnectDelay: 10, KeepAliveTmo: 5}},
		{"6_delay2_kato15", Timeouts{CtrlLossTmo: 6, ReconnectDelay: 2, KeepAliveTmo: 15}},
		{"zero_loss_default_delay", Timeouts{CtrlLossTmo: 0, ReconnectDelay: 0, KeepAliveTmo: 0}},
		{"negative_loss_normalised", Timeouts{CtrlLossTmo: -5, ReconnectDelay: 1, KeepAliveTmo: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := base
			r.Timeouts = c.t
			out := fmt.Sprintf("timeouts: %+v\noption string: %s\nnvme %s\n", c.t, OptionString(r), strings.Join(NVMeCLIArgs(r), " "))
			golden(t, "connect_"+c.name+".golden", []byte(out))
		})
	}
	r := base
	r.HostNQN = ""
	if s := OptionString(r); strings.Contains(s, "hostnqn") {
		t.Errorf("empty hostnqn written: %s", s)
	}
}

func emptyRoot(t *testing.T) string {
	root := t.TempDir()
	for _, d := range []string{"sys/class/nvme", "sys/block", "dev", "proc/self", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "etc", "machine-id"), "4b1a7f0c9e2d4c3b8a6f5e4d3c2b1a09\n")
	writeFile(t, filepath.Join(root, "dev", "nvme-fabrics"), "")
	return root
}

func req(nqn string) ConnectRequest {
	return ConnectRequest{NQN: nqn, Address: "127.0.0.1", Port: 4420,
		Timeouts: Timeouts{CtrlLossTmo: 6, ReconnectDelay: 4}, DeviceWait: 2 * time.Second}
}

func TestConnect(t *testing.T) {
	ctx := context.Background()
	k := newFakeKernel(t, emptyRoot(t))
	l := k.linux(LinuxOptions{ManagedPrefixes: managed})
	c, err := l.Connect(ctx, req("nqn.2000-02.com.mikrotik:a"))
	if err != nil {
		t.Fatal(err)
	}
	host, _ := l.HostNQN(ctx)
	if want := "transport=tcp,traddr=127.0.0.1,trsvcid=4420,nqn=nqn.2000-02.com.mikrotik:a,hostnqn=" + host + ",ctrl_loss_tmo=6,reconnect_delay=4"; k.writes[0] != want {
		t.Errorf("wrote %q\nwant  %q", k.writes[0], want)
	}
	if c.Name != "nvme0" || c.State != "live" || c.HostNQN != host || c.Timeouts != (Timeouts{8, 4, 5}) ||
		len(c.Namespaces) != 1 || c.Namespaces[0].Device != filepath.Join(k.root, "dev", "nvme20n1") {
		t.Errorf("connected %+v", c)
	}
	// A second target gets the lowest free instance.
	c2, err := l.Connect(ctx, req("nqn.2000-02.com.mikrotik:b"))
	if err != nil || c2.Name != "nvme1" {
		t.Fatalf("second connect %+v %v", c2, err)
	}
}

func TestConnectAlreadyConnected(t *testing.T) {
	ctx := context.Background()
	k := newFakeKernel(t, emptyRoot(t))
	l := k.linux(LinuxOptions{ManagedPrefixes: managed})
	first, err := l.Connect(ctx, req("nqn.2000-02.com.mikrotik:a"))
	if err != nil {
		t.Fatal(err)
	}
	// Even with other timeouts: EALREADY returns the existing controller;
	// retuning it is SetTimeouts' business.
	r := req("nqn.2000-02.com.mikrotik:a")
	r.Timeouts.CtrlLossTmo = -1
	again, err := l.Connect(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if again.Name != first.Name || len(k.writes) != 2 {
		t.Errorf("EALREADY: got %s (first %s), %d writes", again.Name, first.Name, len(k.writes))
	}
	list, _ := l.List(ctx)
	if len(list) != 1 {
		t.Errorf("duplicate controller created: %d", len(list))
	}
	// The kernel says EALREADY but nothing matches: retryable, not found.
	k.failErrno = syscall.EALREADY
	_, err = l.Connect(ctx, req("nqn.2000-02.com.mikrotik:zzz"))
	if !errors.Is(err, ErrNotFound) || !retryable.Is(err) {
		t.Errorf("EALREADY without a match: %v", err)
	}
}

func TestConnectDeviceWaitTimeout(t *testing.T) {
	k := newFakeKernel(t, emptyRoot(t))
	k.noDevice = true
	l := k.linux(LinuxOptions{ManagedPrefixes: managed})
	r := req("nqn.2000-02.com.mikrotik:a")
	r.DeviceWait = 50 * time.Millisecond
	start := time.Now()
	_, err := l.Connect(context.Background(), r)
	if err == nil || !retryable.Is(err) || !strings.Contains(err.Error(), "no namespace block device") {
		t.Fatalf("err = %v, want retryable device wait error", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("wait took %s", d)
	}
	if _, err := os.Stat(filepath.Join(k.classDir(), "nvme0")); !os.IsNotExist(err) {
		t.Errorf("controller not deleted after failed wait: %v", err)
	}
	if log := k.attrLog(); len(log) != 1 || log[0] != "nvme0/delete_controller=1" {
		t.Errorf("attribute writes %v", log)
	}
}

func TestConnectCancelled(t *testing.T) {
	k := newFakeKernel(t, emptyRoot(t))
	k.noDevice = true
	l := k.linux(LinuxOptions{ManagedPrefixes: managed})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := l.Connect(ctx, req("nqn.2000-02.com.mikrotik:a"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(k.classDir(), "nvme0")); !os.IsNotExist(err) {
		t.Errorf("controller left behind after cancel")
	}
}

func TestConnectTimeoutsMismatch(t *testing.T) {
	k := newFakeKernel(t, emptyRoot(t))
	k.cltForce = "600"
	l := k.linux(LinuxOptions{ManagedPrefixes: managed})
	c, err := l.Connect(context.Background(), req("nqn.2000-02.com.mikrotik:a"))
	if !errors.Is(err, ErrTimeoutsMismatch) || retryable.Is(err) || c.Name != "nvme0" {
		t.Fatalf("Connect = %+v, %v", c, err)
	}
	k2 := newFakeKernel(t, emptyRoot(t))
	k2.katoForce = 30
	_, err = k2.linux(LinuxOptions{}).Connect(context.Background(), req("nqn.2000-02.com.mikrotik:a"))
	if !errors.Is(err, ErrTimeoutsMismatch) || !strings.Contains(err.Error(), "8/4/30, want 8/4/5") {
		t.Fatalf("kato mismatch: %v", err)
	}
}

func TestConnectErrnos(t *testing.T) {
	cases := []struct {
		errno     syscall.Errno
		retryable bool
	}{
		{syscall.ECONNREFUSED, true},
		{syscall.EAGAIN, true},
		{syscall.EIO, true},
		{syscall.ETIMEDOUT, true},
		{syscall.EINVAL, false},
		{syscall.EPERM, false},
	}
	for _, c := range cases {
		k := newFakeKernel(t, emptyRoot(t))
		k.failErrno = c.errno
		l := k.linux(LinuxOptions{})
		_, err := l.Connect(context.Background(), req("nqn.2000-02.com.mikrotik:a"))
		if !errors.Is(err, c.errno) || retryable.Is(err) != c.retryable {
			t.Errorf("%v: err %v retryable %v", c.errno, err, retryable.Is(err))
		}
	}
	// Module not loaded: not retryable.
	root := emptyRoot(t)
	l := NewLinux(LinuxOptions{SysfsRoot: filepath.Join(root, "sys"), DevRoot: filepath.Join(root, "nodev"),
		HostNQNFile: filepath.Join(root, "etc", "machine-id")})
	if _, err := l.Connect(context.Background(), req("nqn.x:a")); err == nil || retryable.Is(err) {
		t.Errorf("missing /dev/nvme-fabrics: %v", err)
	}
	if err := l.Usable(context.Background()); err == nil {
		t.Error("Usable without /dev/nvme-fabrics")
	}
	if err := k0(t).Usable(context.Background()); err != nil {
		t.Errorf("Usable: %v", err)
	}
}

func k0(t *testing.T) *Linux { return newFakeKernel(t, emptyRoot(t)).linux(LinuxOptions{}) }

func TestConnectNVMeCLI(t *testing.T) {
	ctx := context.Background()
	k := newFakeKernel(t, emptyRoot(t))
	var calls [][]string
	l := k.linux(LinuxOptions{ManagedPrefixes: managed, UseNVMeCLI: true, NVMeCLIPath: "/usr/sbin/nvme"})
	var current ConnectRequest
	l.opts.Run = func(ctx context.Context, name string, args ...string) ([]byte, error) {
		calls = append(calls, append([]string{name}, args...))
		if _, errno := k.connect(OptionString(current)); errno == syscall.EALREADY {
			return []byte("already connected\n"), errors.New("exit status 1")
		} else if errno != 0 {
			return []byte("Failed to write to /dev/nvme-fabrics: " + errno.Error()), errors.New("exit status 1")
		}
		return nil, nil
	}
	current = req("nqn.2000-02.com.mikrotik:a")
	current.HostNQN = "nqn.2014-08.org.nvmexpress:uuid:x"
	c, err := l.Connect(ctx, current)
	if err != nil || c.Name != "nvme0" {
		t.Fatalf("cli connect %+v %v", c, err)
	}
	want := append([]string{"/usr/sbin/nvme"}, NVMeCLIArgs(current)...)
	if !reflect.DeepEqual(calls[0], want) {
		t.Errorf("ran %q, want %q", calls[0], want)
	}
	again, err := l.Connect(ctx, current)
	if err != nil || again.Name != "nvme0" {
		t.Errorf("cli already connected: %+v %v", again, err)
	}
	k.failErrno = syscall.ECONNREFUSED
	current.NQN += "-other"
	if _, err := l.Connect(ctx, current); !retryable.Is(err) {
		t.Errorf("cli refused: %v", err)
	}
	k.failErrno = syscall.EINVAL
	if _, err := l.Connect(ctx, current); err == nil || retryable.Is(err) {
		t.Errorf("cli invalid argument: %v", err)
	}
}

func TestDisconnectGuards(t *testing.T) {
	ctx := context.Background()
	l, k := mixedLinux(t, copyTree(t, mixed))
	cases := []struct {
		name    string
		force   bool
		wantErr error
		msg     string
	}{
		{"nvme5", true, ErrNotManaged, "outside the managed NQN prefixes"},
		{"nvme0", false, ErrInUse, "nvme0n1 mounted on /var/lib/db data"},
		{"nvme1", false, ErrInUse, "nvme1n1p1 held by dm-0"},
		{"nvme9", false, ErrNotFound, ""},
		{"../../etc", true, ErrNotFound, ""},
		{"nvme1", true, nil, ""},
		{"nvme0", true, nil, ""},
		{"nvme2", false, nil, ""},
		{"nvme2", false, ErrNotFound, ""},
	}
	for _, c := range cases {
		err := l.Disconnect(ctx, c.name, c.force)
		if c.wantErr == nil && err != nil || c.wantErr != nil && !errors.Is(err, c.wantErr) {
			t.Errorf("Disconnect(%s, force=%v) = %v, want %v", c.name, c.force, err, c.wantErr)
		}
		if c.msg != "" && (err == nil || !strings.Contains(err.Error(), c.msg)) {
			t.Errorf("Disconnect(%s): message %v lacks %q", c.name, err, c.msg)
		}
	}
	list, _ := l.List(ctx)
	if len(list) != 2 || list[0].Name != "nvme3" || list[1].Name != "nvme5" {
		t.Errorf("left %v", list)
	}
	// A kernel that never removes the controller: bounded, retryable.
	k.ignoreDel = true
	if err := l.Disconnect(ctx, "nvme3", false); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("no delete_controller attribute: %v", err)
	}
	writeFile(t, filepath.Join(k.classDir(), "nvme3", "delete_controller"), "")
	l.opts.DeleteWait = 30 * time.Millisecond
	if err := l.Disconnect(ctx, "nvme3", false); !retryable.Is(err) {
		t.Errorf("stuck delete: %v", err)
	}
}

func TestSetTimeouts(t *testing.T) {
	ctx := context.Background()
	l, k := mixedLinux(t, copyTree(t, mixed))
	// nvme1: reconnect_delay 10, ctrl_loss_tmo 600, kato 5.
	if err := l.SetTimeouts(ctx, "nvme1", Timeouts{CtrlLossTmo: 6, ReconnectDelay: 4}); err != nil {
		t.Fatal(err)
	}
	want := []string{"nvme1/reconnect_delay=4", "nvme1/ctrl_loss_tmo=6"}
	if got := k.attrLog(); !reflect.DeepEqual(got, want) {
		t.Errorf("writes %v, want %v (delay first)", got, want)
	}
	c, _ := l.get("nvme1")
	if c.Timeouts != (Timeouts{8, 4, 5}) {
		t.Errorf("after update %+v", c.Timeouts)
	}
	if err := l.SetTimeouts(ctx, "nvme1", Timeouts{CtrlLossTmo: -1, ReconnectDelay: 2, KeepAliveTmo: 5}); err != nil {
		t.Fatal(err)
	}
	if readAttr(filepath.Join(k.classDir(), "nvme1"), "ctrl_loss_tmo") != "off" {
		t.Error("ctrl_loss_tmo -1 not off")
	}
	n := len(k.attrLog())
	if err := l.SetTimeouts(ctx, "nvme1", Timeouts{CtrlLossTmo: -1, ReconnectDelay: 2, KeepAliveTmo: 30}); !errors.Is(err, ErrNeedsReconnect) {
		t.Errorf("kato change: %v", err)
	}
	if len(k.attrLog()) != n {
		t.Error("kato change wrote attributes")
	}
	if err := l.SetTimeouts(ctx, "nvme5", Timeouts{CtrlLossTmo: 1, ReconnectDelay: 1}); !errors.Is(err, ErrNotManaged) {
		t.Errorf("foreign: %v", err)
	}
	if err := l.SetTimeouts(ctx, "nvme42", Timeouts{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	k.cltForce = "600"
	if err := l.SetTimeouts(ctx, "nvme1", Timeouts{CtrlLossTmo: 20, ReconnectDelay: 2}); !errors.Is(err, ErrTimeoutsMismatch) {
		t.Errorf("mismatch: %v", err)
	}
}

func TestRescan(t *testing.T) {
	l, k := mixedLinux(t, copyTree(t, mixed))
	if err := l.Rescan(context.Background(), "nvme0"); err != nil {
		t.Fatal(err)
	}
	if got := k.attrLog(); len(got) != 1 || got[0] != "nvme0/rescan_controller=1" {
		t.Errorf("writes %v", got)
	}
	if err := l.Rescan(context.Background(), "nvme9"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
}

func TestHostNQN(t *testing.T) {
	ctx := context.Background()
	newL := func(root string) *Linux {
		return NewLinux(LinuxOptions{
			HostNQNFile:      filepath.Join(root, "etc/nvme/hostnqn"),
			HostNQNStateFile: filepath.Join(root, "var/lib/rds-reconcile/hostnqn"),
			MachineIDFile:    filepath.Join(root, "etc/machine-id"),
		})
	}
	t.Run("hostnqn file wins", func(t *testing.T) {
		root := t.TempDir()
		writeFile(t, filepath.Join(root, "etc/nvme/hostnqn"), "  nqn.2014-08.org.nvmexpress:uuid:given \n")
		writeFile(t, filepath.Join(root, "var/lib/rds-reconcile/hostnqn"), "nqn.other\n")
		if got, err := newL(root).HostNQN(ctx); err != nil || got != "nqn.2014-08.org.nvmexpress:uuid:given" {
			t.Errorf("got %q %v", got, err)
		}
	})
	t.Run("derived from machine id, persisted, stable", func(t *testing.T) {
		root := t.TempDir()
		writeFile(t, filepath.Join(root, "etc/machine-id"), "4b1a7f0c9e2d4c3b8a6f5e4d3c2b1a09\n")
		a, err := newL(root).HostNQN(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if a != DeriveHostNQN("4b1a7f0c9e2d4c3b8a6f5e4d3c2b1a09") || !strings.HasPrefix(a, "nqn.2014-08.org.nvmexpress:uuid:") {
			t.Errorf("derived %q", a)
		}
		// Version 5, RFC 4122 variant.
		u := strings.TrimPrefix(a, "nqn.2014-08.org.nvmexpress:uuid:")
		if len(u) != 36 || u[14] != '5' || !strings.ContainsRune("89ab", rune(u[19])) {
			t.Errorf("not a v5 uuid: %s", u)
		}
		b, _ := newL(root).HostNQN(ctx)
		if a != b {
			t.Errorf("unstable: %s vs %s", a, b)
		}
		persisted, _ := os.ReadFile(filepath.Join(root, "var/lib/rds-reconcile/hostnqn"))
		if strings.TrimSpace(string(persisted)) != a {
			t.Errorf("persisted %q", persisted)
		}
		// The persisted NQN survives a changed machine id.
		writeFile(t, filepath.Join(root, "etc/machine-id"), "ffffffffffffffffffffffffffffffff\n")
		if c, _ := newL(root).HostNQN(ctx); c != a {
			t.Errorf("after machine-id change %s, want %s", c, a)
		}
	})
	t.Run("no machine id: random, persisted", func(t *testing.T) {
		root := t.TempDir()
		a, err := newL(root).HostNQN(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := newL(root).HostNQN(ctx); a != b {
			t.Errorf("unstable: %s vs %s", a, b)
		}
	})
	t.Run("read-only commands derive but never write", func(t *testing.T) {
		root := t.TempDir()
		writeFile(t, filepath.Join(root, "etc/machine-id"), "4b1a7f0c9e2d4c3b8a6f5e4d3c2b1a09\n")
		l := newL(root)
		l.opts.ReadOnly = true
		got, err := l.HostNQN(ctx)
		if err != nil || got != DeriveHostNQN("4b1a7f0c9e2d4c3b8a6f5e4d3c2b1a09") {
			t.Errorf("got %q %v", got, err)
		}
		if _, err := os.Stat(filepath.Join(root, "var/lib/rds-reconcile")); !os.IsNotExist(err) {
			t.Errorf("a read-only HostNQN wrote the state folder: %v", err)
		}
		empty := newL(t.TempDir())
		empty.opts.ReadOnly = true
		if got, err := empty.HostNQN(ctx); err == nil {
			t.Errorf("no machine id, read-only: got %q, want an error (a random NQN would change every run)", got)
		}
	})
	// Pinned: a change here would give every host a new NQN on upgrade.
	if got := DeriveHostNQN("4b1a7f0c9e2d4c3b8a6f5e4d3c2b1a09\n"); got != "nqn.2014-08.org.nvmexpress:uuid:e849612e-d669-5c85-80fc-cb72762e5617" {
		t.Errorf("DeriveHostNQN changed: %s", got)
	}
	if DeriveHostNQN("a") == DeriveHostNQN("b") {
		t.Error("different machines, same NQN")
	}
}

func TestRetryable(t *testing.T) {
	if retryable.Is(nil) || retryable.Is(errors.New("x")) || retryable.Mark(nil) != nil {
		t.Error("nil / plain errors")
	}
	wrapped := fmt.Errorf("outer: %w", retryable.Mark(ErrNotFound))
	if !retryable.Is(wrapped) || !errors.Is(wrapped, ErrNotFound) {
		t.Error("wrapped retryable")
	}
	// A kernel errno is marked at fabric's boundary when it is transient.
	if !retryable.Is(markTransient(&os.PathError{Op: "write", Err: syscall.ECONNREFUSED})) || retryable.Is(markTransient(&os.PathError{Op: "write", Err: syscall.EINVAL})) {
		t.Error("errnos")
	}
}

// BenchmarkList100 lists a fake tree with 100 controllers, one namespace
// each, half of them mounted.
func BenchmarkList100(b *testing.B) {
	root := b.TempDir()
	var mounts strings.Builder
	for i := 0; i < 100; i++ {
		dir := filepath.Join(root, "sys", "class", "nvme", fmt.Sprintf("nvme%d", i))
		for a, v := range map[string]string{"subsysnqn": fmt.Sprintf("nqn.2000-02.com.mikrotik:v%d", i), "transport": "tcp",
			"address": "traddr=10.0.0.1,trsvcid=4420,src_addr=10.0.0.2", "state": "live", "hostnqn": "nqn.h", "kato": "5",
			"ctrl_loss_tmo": "off", "reconnect_delay": "5", "cntlid": "1"} {
			writeFile(b, filepath.Join(dir, a), v+"\n")
		}
		dev := fmt.Sprintf("nvme%dn1", i)
		writeFile(b, filepath.Join(dir, fmt.Sprintf("nvme%dc%dn1", i, i), "dev"), "0:0\n")
		writeFile(b, filepath.Join(root, "sys", "block", dev, "size"), "2097152\n")
		writeFile(b, filepath.Join(root, "sys", "block", dev, "dev"), fmt.Sprintf("259:%d\n", i))
		if i%2 == 0 {
			fmt.Fprintf(&mounts, "%d 22 259:%d / /mnt/v%d rw - ext4 /dev/%s rw\n", 100+i, i, i, dev)
		}
	}
	writeFile(b, filepath.Join(root, "proc", "self", "mountinfo"), mounts.String())
	l := NewLinux(LinuxOptions{SysfsRoot: filepath.Join(root, "sys"), ProcRoot: filepath.Join(root, "proc")})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		list, err := l.List(ctx)
		if err != nil || len(list) != 100 {
			b.Fatal(len(list), err)
		}
	}
	b.ReportMetric(100, "controllers/op")
}
