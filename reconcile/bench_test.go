package reconcile

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	fabsim "github.com/rds-reconcile/rds-reconcile/fabric/sim"
	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/rds/sim"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// simClient starts rds/sim on loopback and returns a real SSH client to it.
func simClient(tb testing.TB, opts sim.Options) (*sim.Server, *rds.SSHClient) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	opts.JSON = true
	srv, err := sim.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	if err := srv.Start(ctx, "127.0.0.1:0"); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	c, err := rds.New(rds.Config{Address: srv.Addr(), User: "admin", PrivateKey: srv.ClientKeyPEM(),
		InsecureIgnoreHostKey: true, BasePath: "storage-pool/volumes", SlotPrefix: "b-", MaxSessions: 8})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return srv, c
}

// benchState declares n volumes b-00000... of size, attached to attach.
func benchState(tb testing.TB, n int, size string, attach string) *spec.State {
	tb.Helper()
	var b strings.Builder
	b.WriteString(`apiVersion: rds-reconcile/v1
kind: State
target:
  address: 127.0.0.1
  basePath: storage-pool/volumes
  slotPrefix: b-
defaults:
  retry: {attempts: 5, initialDelay: 1ms, maxDelay: 10ms, multiplier: 2, jitter: 0.1}
hosts:
  node-a: {hostNQN: "nqn.2014-08.org.nvmexpress:uuid:a"}
volumes:
`)
	for i := range n {
		if attach != "" {
			fmt.Fprintf(&b, "  - {name: b-%05d, size: %s, attachments: [%s]}\n", i, size, attach)
		} else {
			fmt.Fprintf(&b, "  - {name: b-%05d, size: %s}\n", i, size)
		}
	}
	st, err := spec.LoadBytes("bench.yaml", []byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

// BenchmarkPlan1000Volumes: planning 1,000 converged volumes costs a
// constant number of RDS round trips (one List), not one per volume.
func BenchmarkPlan1000Volumes(b *testing.B) {
	srv, c := simClient(b, sim.Options{})
	if err := srv.SeedDisks(1000, "b-"); err != nil {
		b.Fatal(err)
	}
	st := benchState(b, 1000, "8Mi", "")
	r := New(Options{RDS: c, Host: "node-a"})
	ctx := context.Background()
	if _, err := r.Plan(ctx, st, Full(false)); err != nil { // warm up: dial, format probe
		b.Fatal(err)
	}
	before := c.RoundTrips()
	b.ResetTimer()
	for b.Loop() {
		p, err := r.Plan(ctx, st, Full(false))
		if err != nil {
			b.Fatal(err)
		}
		if !p.Empty() {
			b.Fatalf("plan not empty: %d actions", len(p.Actions))
		}
	}
	b.ReportMetric(float64(c.RoundTrips()-before)/float64(b.N), "roundtrips/op")
}

// BenchmarkApply100Creates: 100 creates with 20 ms injected per RouterOS
// command. ratio = wall time / (commands x 20 ms): 1 is serial, lower is
// the gain of RDSParallelism.
func BenchmarkApply100Creates(b *testing.B) {
	const latency = 20 * time.Millisecond
	for _, par := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("rds-parallelism=%d", par), func(b *testing.B) {
			srv, c := simClient(b, sim.Options{})
			st := benchState(b, 100, "1Mi", "")
			r := New(Options{RDS: c, Host: "node-a", RDSParallelism: par})
			ctx := context.Background()
			var wall time.Duration
			var cmds int64
			for b.Loop() {
				b.StopTimer()
				p, err := r.Plan(ctx, st, Full(false))
				if err != nil || len(p.Actions) != 100 {
					b.Fatalf("plan: %v, %d actions", err, len(p.Actions))
				}
				srv.SetFaults(sim.Faults{Latency: latency})
				before := c.RoundTrips()
				b.StartTimer()
				t0 := time.Now()
				res, err := r.Apply(ctx, st, p, ApplyOptions{})
				wall += time.Since(t0)
				b.StopTimer()
				if err != nil || res.Err() != nil {
					b.Fatalf("apply: %v %v", err, res.Err())
				}
				cmds += c.RoundTrips() - before
				srv.SetFaults(sim.Faults{})
				// Remove the disks for the next round, outside the timing.
				var del strings.Builder
				for i := range 100 {
					fmt.Fprintf(&del, "/disk remove [find slot=\"b-%05d\"]\n/file remove [find name=\"storage-pool/volumes/b-%05d.img\"]\n", i, i)
				}
				srv.Exec(del.String())
				b.StartTimer()
			}
			b.ReportMetric(float64(wall)/float64(time.Duration(cmds)*latency), "ratio")
			b.ReportMetric(float64(cmds)/float64(b.N), "commands/op")
		})
	}
}

// BenchmarkApply50Connects: 50 connects with 100 ms simulated connect
// latency each. ratio = wall time / (50 x 100 ms).
func BenchmarkApply50Connects(b *testing.B) {
	const latency = 100 * time.Millisecond
	for _, par := range []int{4, 16} {
		b.Run(fmt.Sprintf("parallelism=%d", par), func(b *testing.B) {
			h, err := fabsim.Open(b.TempDir(), fabsim.Options{ManagedPrefixes: []string{spec.DefaultNQNPrefix},
				ConnectLatency: latency})
			if err != nil {
				b.Fatal(err)
			}
			st := benchState(b, 50, "1Mi", "node-a")
			r := New(Options{Fabric: h, Host: "node-a", Parallelism: par})
			ctx := context.Background()
			var wall time.Duration
			for b.Loop() {
				b.StopTimer()
				p, err := r.Plan(ctx, st, Full(false))
				if err != nil || len(p.Actions) != 50 {
					b.Fatalf("plan: %v %d", err, len(p.Actions))
				}
				b.StartTimer()
				t0 := time.Now()
				res, err := r.Apply(ctx, st, p, ApplyOptions{})
				wall += time.Since(t0)
				b.StopTimer()
				if err != nil || res.Err() != nil {
					b.Fatalf("apply: %v %v", err, res.Err())
				}
				ctrls, _ := h.List(ctx)
				for _, c := range ctrls {
					_ = h.Disconnect(ctx, c.Name, true)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(wall)/float64(50*latency*time.Duration(b.N)), "ratio")
		})
	}
}
