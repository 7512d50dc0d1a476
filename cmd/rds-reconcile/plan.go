package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/rds-reconcile/rds-reconcile/reconcile"
	"github.com/rds-reconcile/rds-reconcile/views"
	"github.com/rds-reconcile/rds-reconcile/views/jsonplan"
)

// Exit codes of plan --detailed-exitcode.
const (
	exitNoChanges = 0
	exitFailed    = 1
	exitChanges   = 2
	exitBlocked   = 3
)

type planFlags struct {
	files    []string
	output   string
	detailed bool
	out      string
	prune    bool
	massOK   bool
	verbose  bool
}

func newPlanCmd(g *globals) *cobra.Command {
	f := &planFlags{}
	cmd := &cobra.Command{
		Use:   "plan -f FILE [-f FILE...]",
		Short: "Show what apply would change, without changing anything",
		Long: `plan reads the desired state, lists the RDS disks (one SSH round trip) and this
host's NVMe controllers, and prints the actions apply would take, in the order
it would take them, each with its reason:

  +    create (a disk, or a connection on this host)
  ~    change in place (fix an export, grow, set timeouts, rescan)
  -/+  reconnect (a change the kernel cannot make on a live controller)
  x    disconnect (data kept)
  -    delete a disk and its file (data destroyed)
  !    blocked: a safety rule stops the action; the rule is named

Drift (values changed outside rds-reconcile) and notes (orphans reported,
undeclared disks kept, foreign controllers counted) follow; the last line
counts the actions.

Only controllers that are provably this state's are ever touched: NQN under
the managed prefix AND this target's address and NVMe port AND (where the
RDS lists it) a managed disk. Others are foreign: counted in the notes,
listed with -v. A state that declares no volume for this host, or that would
disconnect more than half of this host's controllers at once, holds those
disconnects back (! mass-detach) unless --allow-mass-detach.

With --detailed-exitcode the exit status says what the plan holds:
0 no changes, 2 changes, 3 changes blocked by a safety rule, 1 error.
--out saves the plan (JSON) with a fingerprint of the live and desired
state it saw; apply PLANFILE refuses it once either has changed.`,
		Example: `  rds-reconcile plan -f state.yaml
  rds-reconcile plan -f base.yaml -f csi-volumes.yaml --host node-a -o json
  rds-reconcile plan -f state.yaml --detailed-exitcode --out tonight.plan`,
		Args: noFileArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runPlan(cmd, g, f) },
	}
	addFileFlags(cmd, &f.files)
	fl := cmd.Flags()
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or json (the JSON schema is in docs/reconcile.md)")
	fl.BoolVar(&f.detailed, "detailed-exitcode", false, "exit 0 when there is nothing to do, 2 when there are changes, 3 when a safety rule blocks one, 1 on error")
	fl.StringVar(&f.out, "out", "", "save the plan to this file, for apply PLANFILE")
	fl.BoolVar(&f.prune, "prune", false, "also delete managed RDS disks that no volume declares (never protected ones, never with an empty state)")
	fl.BoolVar(&f.massOK, "allow-mass-detach", false, massDetachHelp)
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "also list the foreign controllers (under the managed NQN prefix but another target, port or unmanaged disk)")
	return cmd
}

func runPlan(cmd *cobra.Command, g *globals, f *planFlags) error {
	fail := func(err error) error { return &exitError{code: exitFailed, err: err} }
	view, err := views.NewPlan(f.output, g.stdout, views.PlanOptions{Verbose: f.verbose})
	if err != nil {
		return fail(err)
	}
	ctx := cmd.Context()
	g.readOnly = true
	st, err := loadOrReport(g, f.files)
	if err != nil {
		return err
	}
	w, err := wire(ctx, g, st, f.files)
	if err != nil {
		return fail(err)
	}
	defer w.close()
	p, err := w.reconciler(g, 0, nil).Plan(ctx, st, scopeFor(st, f.prune, f.massOK))
	if err != nil {
		return fail(err)
	}
	p.Files = absFiles(f.files)
	if err := view.Plan(p, rdsProfile(w.rds)); err != nil {
		return fail(err)
	}
	if f.out != "" {
		if err := savePlan(f.out, p); err != nil {
			return fail(err)
		}
		if err := view.Saved(f.out); err != nil {
			return fail(err)
		}
	}
	if !f.detailed {
		return nil
	}
	switch {
	case p.HasBlocked():
		return &exitError{code: exitBlocked}
	case p.HasChanges():
		return &exitError{code: exitChanges}
	}
	return nil
}

// savePlan writes p for apply PLANFILE: the plan JSON document, readable
// by its owner only (it names the state files and the live inventory).
func savePlan(path string, p *reconcile.Plan) error {
	var b bytes.Buffer
	if err := jsonplan.Write(&b, p); err != nil {
		return err
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	return nil
}
