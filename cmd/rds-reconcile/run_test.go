package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rds-reconcile/rds-reconcile/reconcile"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// startLimited serves h like run --listen does, with lim, and returns the
// address.
func startLimited(t *testing.T, h http.Handler, lim httpLimits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, lln := newHTTPServer(ln, h, lim)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return ln.Addr().String()
}

// closedWithin reports whether the server closes c within d (a read ends
// in EOF or a reset, not in our own deadline).
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestHTTPServerBounded: many idle connections, before and after a
// request, neither pile up goroutines nor stay open: at most maxConns are
// served at once and idle ones are closed after the timeouts.
func TestHTTPServerBounded(t *testing.T) {
	lim := httpLimits{readHeader: 150 * time.Millisecond, read: time.Second, write: time.Second, idle: 300 * time.Millisecond, maxConns: 8}
	ls := newLoopState(time.Minute, 0)
	addr := startLimited(t, loopHandler(prometheus.NewRegistry(), ls), lim)
	base := runtime.NumGoroutine()

	// 120 connections that never send a request.
	const n = 120
	var conns []net.Conn
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		t.Cleanup(func() { c.Close() })
	}
	time.Sleep(100 * time.Millisecond)
	if g := runtime.NumGoroutine() - base; g > lim.maxConns+4 {
		t.Errorf("%d idle connections run %d more goroutines, want at most %d", n, g, lim.maxConns+4)
	}
	// All are closed in turn: 120/8 rounds of the header timeout.
	wait := time.Duration(n/lim.maxConns)*lim.readHeader + 5*time.Second
	deadline := time.Now().Add(wait)
	for i, c := range conns {
		if !closedWithin(c, time.Until(deadline)) {
			t.Fatalf("connection %d still open after %s", i, wait)
		}
	}

	// A keep-alive connection idle after a request is closed after idle,
	// not before.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("healthz: %d close=%v", resp.StatusCode, resp.Close)
	}
	start := time.Now()
	if !closedWithin(c, 5*time.Second) {
		t.Fatal("idle keep-alive connection not closed")
	}
	if d := time.Since(start); d < lim.idle/2 {
		t.Errorf("idle connection closed after %s, before the idle timeout %s", d, lim.idle)
	}
	// The server still answers once the flood is gone.
	hc := &http.Client{Timeout: 5 * time.Second}
	r, err := hc.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	time.Sleep(100 * time.Millisecond)
	if g := runtime.NumGoroutine() - base; g > lim.maxConns+4 {
		t.Errorf("%d goroutines left over", g)
	}
}

// TestDefaultHTTPLimits: the real server has every timeout and a cap.
func TestDefaultHTTPLimits(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv, lln := newHTTPServer(ln, http.NotFoundHandler(), defaultHTTPLimits)
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 {
		t.Errorf("server timeouts: %+v", srv)
	}
	if l, ok := lln.(*limitListener); !ok || cap(l.sem) != defaultHTTPLimits.maxConns || cap(l.sem) <= 0 {
		t.Errorf("listener %T is not capped", lln)
	}
}

func healthz(t *testing.T, h http.Handler) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	return rec.Code, body
}

// TestHealthzStuckPass: a loop whose pass blocks turns /healthz to 503
// once the pass has run longer than stuckAfter, and back to 200 when the
// pass ends.
func TestHealthzStuckPass(t *testing.T) {
	const stuckAfter = 300 * time.Millisecond
	ls := newLoopState(time.Hour, stuckAfter)
	h := loopHandler(prometheus.NewRegistry(), ls)
	block := make(chan struct{})
	loaded := make(chan struct{}, 1)
	passes := make(chan reconcile.PassResult, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := reconcile.New(reconcile.Options{Host: "h"})
	errc := make(chan error, 1)
	go func() {
		errc <- r.Run(ctx, ls.track(reconcile.LoopOptions{
			Interval: time.Hour,
			Settle:   time.Millisecond,
			Load: func(ctx context.Context) (*spec.State, string, error) {
				loaded <- struct{}{}
				<-block // the pass hangs here
				return nil, "", errors.New("no state")
			},
			OnPass: func(p reconcile.PassResult) { passes <- p },
		}))
	}()
	<-loaded
	if code, body := healthz(t, h); code != http.StatusOK {
		t.Fatalf("healthz at the start of a pass: %d %v", code, body)
	}
	time.Sleep(stuckAfter + 100*time.Millisecond)
	code, body := healthz(t, h)
	if code != http.StatusServiceUnavailable || body["status"] != "stuck" {
		t.Fatalf("healthz of a pass blocked for %s: %d %v", stuckAfter+100*time.Millisecond, code, body)
	}
	close(block)
	<-passes
	if code, body := healthz(t, h); code == http.StatusServiceUnavailable && body["status"] == "stuck" {
		t.Errorf("healthz after the pass ended: %d %v", code, body)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestStuckRules: the bound defaults to max(2 x interval, 5m); with no
// pass running, the loop counts as stuck only past the longest wait
// between passes plus the bound.
func TestStuckRules(t *testing.T) {
	if d := defaultStuckAfter(time.Minute); d != 5*time.Minute {
		t.Errorf("default for 1m = %s", d)
	}
	if d := defaultStuckAfter(10 * time.Minute); d != 20*time.Minute {
		t.Errorf("default for 10m = %s", d)
	}
	t0 := time.Now()
	ls := &loopState{interval: time.Minute, stuckAfter: 5 * time.Minute, started: t0}
	for _, tt := range []struct {
		at    time.Duration
		stuck bool
	}{{0, false}, {6 * time.Minute, false}, {6*time.Minute + 7*time.Second, true}} {
		if _, got := ls.stuck(t0.Add(tt.at)); got != tt.stuck {
			t.Errorf("idle %s: stuck=%v, want %v", tt.at, got, tt.stuck)
		}
	}
	ls.running = t0
	if _, got := ls.stuck(t0.Add(5*time.Minute + time.Second)); !got {
		t.Error("a pass running 5m1s is not stuck")
	}
	if _, got := ls.stuck(t0.Add(4 * time.Minute)); got {
		t.Error("a pass running 4m is stuck")
	}
}

// TestRunHelpListen: the help says what :PORT binds.
func TestRunHelpListen(t *testing.T) {
	cmd := newRunCmd(&globals{})
	if !strings.Contains(cmd.Long, "--listen :PORT binds every interface") {
		t.Error("run --help does not say what --listen :PORT binds")
	}
}
