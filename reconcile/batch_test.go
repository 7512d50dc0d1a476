package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/rds/sim"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// TestApplyBatched: a phase's RDS writes cost one session whatever their
// number, plus the verification's one observation; results, order and
// counts are those of the per-action path.
func TestApplyBatched(t *testing.T) {
	for _, n := range []int{2, 50, 300} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			srv, c := simClient(t, sim.Options{})
			st := benchState(t, n, "1Mi", "")
			r := New(Options{RDS: c, Host: "node-a"})
			ctx := context.Background()
			p, err := r.Plan(ctx, st, Full(false))
			if err != nil || len(p.Actions) != n {
				t.Fatalf("plan: %v, %d actions", err, len(p.Actions))
			}
			s0 := srv.Sessions()
			res, err := r.Apply(ctx, st, p, ApplyOptions{})
			if err != nil || res.Err() != nil {
				t.Fatal(err, res.Err())
			}
			if res.Succeeded != n || len(res.Actions) != n {
				t.Errorf("%d succeeded of %d results, want %d", res.Succeeded, len(res.Actions), n)
			}
			for i, ar := range res.Actions {
				if ar.Action.Volume != p.Actions[i].Volume {
					t.Fatalf("result %d is %s, plan order has %s", i, ar.Action.Volume, p.Actions[i].Volume)
				}
			}
			// The batch (one line per 32 KiB: ~80 creates) and the
			// verification's List, nothing else.
			var lines int64
			for _, l := range srv.Commands() {
				if strings.HasPrefix(l, ":do {") {
					lines++
				}
			}
			if got := srv.Sessions() - s0; got != lines+1 || lines > int64(n/50+1) {
				t.Errorf("%d sessions, %d batch lines for %d creates, want the lines + 1 and at least 50 creates a line", got, lines, n)
			}
			if len(srv.Disks()) != n {
				t.Errorf("%d disks", len(srv.Disks()))
			}
		})
	}
}

// TestApplyBatchedFailingItem: one create of a batch fails (the pool is
// full for it): the others are done, the failed one is run again alone
// and reported with RouterOS's message and the typed error, and later
// items of the batch still ran.
func TestApplyBatchedFailingItem(t *testing.T) {
	srv, c := simClient(t, sim.Options{Backend: sim.NewMemoryBackend(64 << 20)})
	st, err := spec.LoadBytes("s.yaml", []byte(`apiVersion: rds-reconcile/v1
kind: State
target: {address: 127.0.0.1, basePath: storage-pool/volumes, slotPrefix: b-}
defaults:
  retry: {attempts: 3, initialDelay: 1ms, maxDelay: 2ms}
volumes:
  - {name: b-a, size: 1Mi}
  - {name: b-big, size: 1Gi}
  - {name: b-c, size: 1Mi}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := New(Options{RDS: c, Host: "node-a"})
	ctx := context.Background()
	p, err := r.Plan(ctx, st, Full(false))
	if err != nil {
		t.Fatal(err)
	}
	c0 := len(srv.Commands())
	var retries []RetryEvent
	res, err := r.Apply(ctx, st, p, ApplyOptions{OnRetry: func(ev RetryEvent) { retries = append(retries, ev) }})
	if err != nil {
		t.Fatal(err)
	}
	byVol := map[string]ActionResult{}
	for _, ar := range res.Actions {
		byVol[ar.Action.Volume] = ar
	}
	for _, v := range []string{"b-a", "b-c"} {
		if ar := byVol[v]; ar.Err != nil || ar.Skipped {
			t.Errorf("%s: %v (skipped %v)", v, ar.Err, ar.Skipped)
		}
	}
	big := byVol["b-big"]
	if !errors.Is(big.Err, rds.ErrNoSpace) || !strings.Contains(big.Error, "not enough space") {
		t.Errorf("b-big: %v, want ErrNoSpace with RouterOS's text", big.Err)
	}
	if res.Succeeded != 2 || res.Failed != 1 || len(retries) != 0 {
		t.Errorf("succeeded %d failed %d retries %d, want 2 1 0 (no space is not retried)", res.Succeeded, res.Failed, len(retries))
	}
	// One batch, then b-big alone, then the verification.
	cmds := srv.Commands()[c0:]
	var batches, alone int
	for _, l := range cmds {
		switch {
		case strings.HasPrefix(l, ":do {"):
			batches++
		case strings.HasPrefix(l, "/disk add") && strings.Contains(l, "b-big"):
			alone++
		}
	}
	if batches != 1 || alone != 1 {
		t.Errorf("%d batches and %d single creates of b-big, want 1 and 1:\n%s", batches, alone, strings.Join(cmds, "\n"))
	}
}

// TestApplyBatchedUnknown: the batch's answer has no mark of its own
// (RouterOS printed something else): no item is taken as done on the
// batch's word; the live state is looked at once and every create runs
// alone, as without a batch.
func TestApplyBatchedUnknown(t *testing.T) {
	srv, c := simClient(t, sim.Options{})
	st := benchState(t, 5, "1Mi", "")
	r := New(Options{RDS: c, Host: "node-a"})
	ctx := context.Background()
	p, err := r.Plan(ctx, st, Full(false))
	if err != nil {
		t.Fatal(err)
	}
	c0 := len(srv.Commands())
	srv.SetFaults(sim.Faults{FailNext: []string{"##rds-reconcile:batch:0000000000000000 ok 0"}})
	res, err := r.Apply(ctx, st, p, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Err() != nil || res.Succeeded != 5 {
		t.Fatalf("succeeded %d: %v", res.Succeeded, res.Err())
	}
	if len(srv.Disks()) != 5 {
		t.Errorf("%d disks, want 5", len(srv.Disks()))
	}
	var adds int
	for _, l := range srv.Commands()[c0:] {
		if strings.HasPrefix(l, "/disk add") {
			adds++
		}
	}
	if adds != 5 {
		t.Errorf("%d creates sent alone, want 5", adds)
	}
}
