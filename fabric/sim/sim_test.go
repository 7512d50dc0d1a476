package sim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/internal/retryable"
)

const prefix = "nqn.2000-02.com.mikrotik:"

// clock is a fake clock shared by several Host values.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func open(t *testing.T, dir string, clk *clock) *Host {
	t.Helper()
	opts := Options{ManagedPrefixes: []string{prefix}}
	if clk != nil {
		opts.Now = clk.Now
	}
	h, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func req(name string, clt, rd int) fabric.ConnectRequest {
	return fabric.ConnectRequest{NQN: prefix + name, Address: "10.42.68.1", Port: 4420,
		Timeouts: fabric.Timeouts{CtrlLossTmo: clt, ReconnectDelay: rd}}
}

func names(t *testing.T, h *Host) string {
	t.Helper()
	list, err := h.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, c := range list {
		s = append(s, c.Name+":"+string(c.State))
	}
	return strings.Join(s, " ")
}

func TestConnectKernelSemantics(t *testing.T) {
	ctx := context.Background()
	h := open(t, t.TempDir(), nil)
	a, err := h.Connect(ctx, req("a", 6, 4))
	if err != nil {
		t.Fatal(err)
	}
	host, _ := h.HostNQN(ctx)
	if a.Name != "nvme0" || a.State != "live" || a.HostNQN != host || a.Timeouts != (fabric.Timeouts{CtrlLossTmo: 8, ReconnectDelay: 4, KeepAliveTmo: 5}) ||
		len(a.Namespaces) != 1 || a.Namespaces[0].Device != "/dev/nvme0n1" || a.Namespaces[0].Size != DefaultNamespaceSize {
		t.Errorf("connected %+v", a)
	}
	again, err := h.Connect(ctx, req("a", -1, 5))
	if err != nil || again.Name != "nvme0" || again.Timeouts.CtrlLossTmo != 8 {
		t.Errorf("EALREADY: %+v %v", again, err)
	}
	b, _ := h.Connect(ctx, req("b", -1, 5))
	c, _ := h.Connect(ctx, req("c", -1, 5))
	if b.Name != "nvme1" || c.Name != "nvme2" {
		t.Errorf("instances %s %s", b.Name, c.Name)
	}
	if err := h.Disconnect(ctx, "nvme1", false); err != nil {
		t.Fatal(err)
	}
	d, _ := h.Connect(ctx, req("d", -1, 5))
	if d.Name != "nvme1" {
		t.Errorf("lowest free instance: got %s", d.Name)
	}
	// Another host NQN is another controller, as in the kernel.
	r := req("a", 6, 4)
	r.HostNQN = "nqn.2014-08.org.nvmexpress:uuid:other"
	if o, _ := h.Connect(ctx, r); o.Name != "nvme3" {
		t.Errorf("other host NQN: %s", o.Name)
	}
	bad := req("x,duplicate_connect", 1, 1)
	if _, err := h.Connect(ctx, bad); !errors.Is(err, fabric.ErrInvalidRequest) {
		t.Errorf("invalid: %v", err)
	}
	if got := names(t, h); got != "nvme0:live nvme1:live nvme2:live nvme3:live" {
		t.Errorf("list %s", got)
	}
}

func TestGuards(t *testing.T) {
	ctx := context.Background()
	h := open(t, t.TempDir(), nil)
	foreign, err := h.AddForeign("nqn.2019-01.org.example:other", "192.168.1.9", 4420)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.AddForeign("nqn.2019-01.org.example:other", "192.168.1.9", 4420); !errors.Is(err, syscall.EALREADY) {
		t.Errorf("second AddForeign: %v", err)
	}
	if foreign.Timeouts != (fabric.Timeouts{CtrlLossTmo: 600, ReconnectDelay: 10, KeepAliveTmo: 5}) {
		t.Errorf("foreign timeouts %+v", foreign.Timeouts)
	}
	if err := h.Disconnect(ctx, foreign.Name, true); !errors.Is(err, fabric.ErrNotManaged) {
		t.Errorf("foreign disconnect: %v", err)
	}
	if err := h.SetTimeouts(ctx, foreign.Name, fabric.Timeouts{CtrlLossTmo: 1}); !errors.Is(err, fabric.ErrNotManaged) {
		t.Errorf("foreign SetTimeouts: %v", err)
	}
	a, _ := h.Connect(ctx, req("a", -1, 5))
	if err := h.SetMounted(a.Namespaces[0].Name, "/var/lib/data"); err != nil {
		t.Fatal(err)
	}
	list, _ := h.List(ctx)
	if ns := list[1].Namespaces[0]; !ns.InUse || ns.InUseBy != "nvme1n1 mounted on /var/lib/data" {
		t.Errorf("mounted ns %+v", ns)
	}
	err = h.Disconnect(ctx, a.Name, false)
	if !errors.Is(err, fabric.ErrInUse) || !strings.Contains(err.Error(), "mounted on /var/lib/data") {
		t.Errorf("in-use disconnect: %v", err)
	}
	if err := h.SetMounted(a.Namespaces[0].Name, ""); err != nil {
		t.Fatal(err)
	}
	if err := h.SetMounted(a.Namespaces[0].Name, "/x"); err != nil {
		t.Fatal(err)
	}
	if err := h.Disconnect(ctx, a.Name, true); err != nil {
		t.Errorf("forced: %v", err)
	}
	if err := h.Disconnect(ctx, a.Name, true); !errors.Is(err, fabric.ErrNotFound) {
		t.Errorf("gone: %v", err)
	}
	if err := h.SetMounted("nvme9n1", "/x"); !errors.Is(err, fabric.ErrNotFound) {
		t.Errorf("SetMounted unknown: %v", err)
	}
}

func TestSetTimeoutsAndRescan(t *testing.T) {
	ctx := context.Background()
	size := int64(1 << 30)
	var mu sync.Mutex
	h, err := Open(t.TempDir(), Options{ManagedPrefixes: []string{prefix}, SizeOf: func(string) int64 {
		mu.Lock()
		defer mu.Unlock()
		return size
	}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := h.Connect(ctx, req("a", -1, 5))
	if err := h.SetTimeouts(ctx, a.Name, fabric.Timeouts{CtrlLossTmo: 7, ReconnectDelay: 3}); err != nil {
		t.Fatal(err)
	}
	list, _ := h.List(ctx)
	if list[0].Timeouts != (fabric.Timeouts{CtrlLossTmo: 9, ReconnectDelay: 3, KeepAliveTmo: 5}) {
		t.Errorf("timeouts %+v", list[0].Timeouts)
	}
	if err := h.SetTimeouts(ctx, a.Name, fabric.Timeouts{CtrlLossTmo: 7, ReconnectDelay: 3, KeepAliveTmo: 20}); !errors.Is(err, fabric.ErrNeedsReconnect) {
		t.Errorf("kato: %v", err)
	}
	if err := h.SetTimeouts(ctx, "nvme7", fabric.Timeouts{}); !errors.Is(err, fabric.ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	mu.Lock()
	size = 2 << 30
	mu.Unlock()
	if list, _ := h.List(ctx); list[0].Namespaces[0].Size != 1<<30 {
		t.Error("size changed before rescan")
	}
	if err := h.Rescan(ctx, a.Name); err != nil {
		t.Fatal(err)
	}
	if list, _ := h.List(ctx); list[0].Namespaces[0].Size != 2<<30 {
		t.Errorf("size after rescan %d", list[0].Namespaces[0].Size)
	}
}

func TestOutageCtrlLossTmo(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	dir := t.TempDir()
	h := open(t, dir, clk)
	if _, err := h.Connect(ctx, req("short", 6, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Connect(ctx, req("forever", -1, 2)); err != nil {
		t.Fatal(err)
	}
	other := req("elsewhere", 6, 2)
	other.Port = 4421
	if _, err := h.Connect(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := h.SetTargetDown("10.42.68.1", 4420, true); err != nil {
		t.Fatal(err)
	}
	if got := names(t, h); got != "nvme0:connecting nvme1:connecting nvme2:live" {
		t.Errorf("outage: %s", got)
	}
	// A new connect to the down target is refused (retryable); an existing
	// controller is still "already connected".
	if _, err := h.Connect(ctx, req("new", -1, 2)); !IsRefused(err) || !retryable.Is(err) {
		t.Errorf("connect while down: %v", err)
	}
	if c, err := h.Connect(ctx, req("forever", -1, 2)); err != nil || c.State != "connecting" {
		t.Errorf("existing while down: %+v %v", c, err)
	}
	clk.Advance(5 * time.Second)
	// Another process (another Host on the same dir) sees the same state.
	h2 := open(t, dir, clk)
	if got := names(t, h2); got != "nvme0:connecting nvme1:connecting nvme2:live" {
		t.Errorf("after 5s: %s", got)
	}
	clk.Advance(time.Second)
	if got := names(t, h2); got != "nvme1:connecting nvme2:live" {
		t.Errorf("after ctrl_loss_tmo: %s", got)
	}
	clk.Advance(time.Hour)
	if err := h.SetTargetDown("10.42.68.1", 4420, false); err != nil {
		t.Fatal(err)
	}
	if got := names(t, h); got != "nvme1:live nvme2:live" {
		t.Errorf("back up: %s", got)
	}
	// A later outage starts its own clock.
	if err := h.SetTargetDown("10.42.68.1", 4421, true); err != nil {
		t.Fatal(err)
	}
	clk.Advance(5 * time.Second)
	if got := names(t, h); got != "nvme1:live nvme2:connecting" {
		t.Errorf("second outage: %s", got)
	}
	clk.Advance(time.Second)
	if got := names(t, h); got != "nvme1:live" {
		t.Errorf("second outage expired: %s", got)
	}
}

// IsRefused says whether err carries ECONNREFUSED.
func IsRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

func TestFailNextConnect(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	h1, h2 := open(t, dir, nil), open(t, dir, nil)
	h1.FailNextConnect("target busy", true)
	_, err := h2.Connect(ctx, req("a", -1, 5))
	if err == nil || !retryable.Is(err) || !strings.Contains(err.Error(), "target busy") {
		t.Errorf("first: %v", err)
	}
	if _, err := h1.Connect(ctx, req("a", -1, 5)); err != nil {
		t.Errorf("consumed: %v", err)
	}
	h2.FailNextConnect("bad options", false)
	if _, err := h1.Connect(ctx, req("b", -1, 5)); err == nil || retryable.Is(err) {
		t.Errorf("non-retryable: %v", err)
	}
}

func TestConcurrentHosts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	hosts := []*Host{open(t, dir, nil), open(t, dir, nil)}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i, h := range hosts {
		for j := 0; j < 10; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := h.Connect(ctx, req(fmt.Sprintf("v%d-%d", i, j), -1, 5)); err != nil {
					errs <- err
				}
				if _, err := h.List(ctx); err != nil {
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	list, err := hosts[1].List(ctx)
	if err != nil || len(list) != 20 {
		t.Fatalf("list %d %v", len(list), err)
	}
	for i, c := range list {
		if c.Instance != i {
			t.Errorf("instance %d at %d", c.Instance, i)
		}
	}
}

func TestPersistenceAndHostNQN(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	h := open(t, dir, nil)
	n1, _ := h.HostNQN(ctx)
	if _, err := h.Connect(ctx, req("a", -1, 5)); err != nil {
		t.Fatal(err)
	}
	h2 := open(t, dir, nil)
	n2, _ := h2.HostNQN(ctx)
	if n1 != n2 || !strings.HasPrefix(n1, "nqn.2014-08.org.nvmexpress:uuid:") {
		t.Errorf("host NQN %s vs %s", n1, n2)
	}
	if got := names(t, h2); got != "nvme0:live" {
		t.Errorf("reopened: %s", got)
	}
	fixed, _ := Open(dir, Options{HostNQN: "nqn.fixed"})
	if n, _ := fixed.HostNQN(ctx); n != "nqn.fixed" {
		t.Errorf("fixed %s", n)
	}
	if err := os.WriteFile(filepath.Join(dir, StateFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := h.List(ctx); err == nil {
		t.Error("corrupt state accepted")
	}
	if _, err := Open("", Options{}); err == nil {
		t.Error("empty dir accepted")
	}
}

func TestConnectLatencyHonoursContext(t *testing.T) {
	h, _ := Open(t.TempDir(), Options{ConnectLatency: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := h.Connect(ctx, req("a", -1, 5)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v", err)
	}
}

// BenchmarkSimList: one List on a state with 50 controllers, which is a
// lock, a read and parse of fabric.json and an outage evaluation.
func BenchmarkSimList(b *testing.B) {
	ctx := context.Background()
	h, err := Open(b.TempDir(), Options{ManagedPrefixes: []string{prefix}})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if _, err := h.Connect(ctx, req(fmt.Sprintf("v%d", i), -1, 5)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		list, err := h.List(ctx)
		if err != nil || len(list) != 50 {
			b.Fatal(len(list), err)
		}
	}
	b.ReportMetric(50, "controllers/op")
}
