package reconcile

import (
	"context"
	"errors"
	"testing"

	fabsim "github.com/rds-reconcile/rds-reconcile/fabric/sim"
	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/rds/sim"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// TestIntegrationFailingCommand: the real SSH client against rds/sim and
// the simulated host. RouterOS refuses one create ("not enough space"): that
// volume fails at once (not retryable) and its connect is skipped, the others
// converge; a second reconcile converges everything.
func TestIntegrationFailingCommand(t *testing.T) {
	// A disk nobody manages fills the pool so that the third create does
	// not fit: RouterOS refuses that one in the middle of the batch.
	srv, c := simClient(t, sim.Options{Backend: sim.NewMemoryBackend(56 << 20)})
	if out := srv.Exec(`/disk add type=file file-path=storage-pool/other/x.img file-size=24M slot=other`); out != "" {
		t.Fatal(out)
	}
	h, err := fabsim.Open(t.TempDir(), fabsim.Options{ManagedPrefixes: []string{spec.DefaultNQNPrefix}})
	if err != nil {
		t.Fatal(err)
	}
	st := benchState(t, 3, "16Mi", "node-a")
	r := New(Options{RDS: c, Fabric: h, Host: "node-a", RDSParallelism: 1})
	ctx := context.Background()
	p, err := r.Plan(ctx, st, Full(false))
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Apply(ctx, st, p, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 1 || res.Skipped != 1 || res.Succeeded != 4 {
		t.Fatalf("got %d ok, %d failed, %d skipped: %+v", res.Succeeded, res.Failed, res.Skipped, res.Actions)
	}
	if err := res.Err(); !errors.Is(err, rds.ErrNoSpace) {
		t.Errorf("Err() = %v, want ErrNoSpace", err)
	}
	for _, ar := range res.Actions {
		if ar.Err != nil && ar.Attempts != 1 {
			t.Errorf("%s %s: %d attempts for a terminal error", ar.Action.Kind, ar.Action.Volume, ar.Attempts)
		}
	}
	srv.Exec(`/disk remove [find slot=other]; /file remove [find name="storage-pool/other/x.img"]`)
	res, err = r.Reconcile(ctx, st, Full(false))
	if err != nil || res.Err() != nil {
		t.Fatalf("second reconcile: %v %v", err, res.Err())
	}
	if len(srv.Disks()) != 3 {
		t.Errorf("disks: %+v", srv.Disks())
	}
}
