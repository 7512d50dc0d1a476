package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/rds-reconcile/rds-reconcile/reconcile"
	"github.com/rds-reconcile/rds-reconcile/spec"
	"github.com/rds-reconcile/rds-reconcile/views"
	"github.com/rds-reconcile/rds-reconcile/views/jsonplan"
)

type applyFlags struct {
	files       []string
	autoApprove bool
	prune       bool
	parallelism int
	stateDir    string
	massOK      bool
	verbose     bool
	quiet       bool
	output      string
}

func newApplyCmd(g *globals) *cobra.Command {
	f := &applyFlags{}
	cmd := &cobra.Command{
		Use:   "apply [-f FILE... | PLANFILE]",
		Short: "Converge the RDS and this host to the desired state",
		Long: `apply makes the plan (see plan --help), prints it, asks for confirmation and
then converges: RDS creates and repairs first, then this host's connects and
updates, then disconnects, and RDS deletes last. Host actions run in parallel
(--parallelism), RDS actions a few at a time over one SSH connection. Each
action is retried with exponential backoff and jitter from the state's
defaults.retry, only for errors that can go away (a dropped connection, a
busy RouterOS, a refused connect); each failed attempt prints a line with
its error and the wait before the next (-q hides them). One failed action skips the later steps of
its volume but not the other volumes. A line is printed as each action
finishes, then a summary; the exit status is 1 when anything failed.
-o json prints one JSON object per line instead: the plan, a retry per
retried attempt, a result per action and a summary (docs/cli.md); it
never asks, so it needs --auto-approve or a PLANFILE.

On a terminal apply asks "Enter yes"; otherwise pass --auto-approve.
apply PLANFILE applies a plan saved with plan --out, without asking, after
checking that neither the live nor the desired state changed since (else it
refuses: "plan is stale"). Only one apply runs per state at a time: a lock
file (.rds-reconcile.lock next to the first state file, or in --state-dir)
names the holder to a second one.`,
		Example: `  rds-reconcile apply -f state.yaml
  rds-reconcile apply -f state.yaml --auto-approve --parallelism 8
  rds-reconcile plan -f state.yaml --out tonight.plan && rds-reconcile apply tonight.plan`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			planFile := ""
			if len(args) == 1 {
				planFile = args[0]
			}
			return runApply(cmd, g, f, planFile)
		},
	}
	cmd.Flags().StringArrayVarP(&f.files, "file", "f", nil,
		"desired-state YAML file; repeat to layer files (-f base.yaml -f csi-volumes.yaml)")
	_ = cmd.MarkFlagFilename("file", "yaml", "yml")
	fl := cmd.Flags()
	fl.BoolVar(&f.autoApprove, "auto-approve", false, "apply without asking (needed when stdin is not a terminal)")
	fl.BoolVar(&f.prune, "prune", false, "also delete managed RDS disks that no volume declares (never protected ones, never with an empty state)")
	fl.IntVar(&f.parallelism, "parallelism", reconcile.DefaultParallelism, "host actions run at once")
	fl.StringVar(&f.stateDir, "state-dir", "", "folder for the lock file (default: the first state file's folder)")
	fl.BoolVar(&f.massOK, "allow-mass-detach", false, massDetachHelp)
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "also list the foreign controllers in the plan")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text, or json (one object per line: the plan, a result per action, retries, a summary; docs/cli.md)")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "no line per retried attempt (they still reach the log at debug level, or as warnings with --log-format json)")
	return cmd
}

func runApply(cmd *cobra.Command, g *globals, f *applyFlags, planFile string) error {
	fail := func(err error) error { return &exitError{code: 1, err: err} }
	if f.parallelism < 1 {
		return fail(errors.New("--parallelism must be at least 1"))
	}
	view, err := views.NewApply(f.output, g.stdout, views.PlanOptions{Verbose: f.verbose})
	if err != nil {
		return fail(err)
	}
	saved, err := readSavedPlan(cmd, g, f, planFile)
	if err != nil {
		return fail(err)
	}
	ctx := cmd.Context()
	st, w, release, err := openLocked(ctx, g, f.files, f.stateDir)
	if err != nil {
		return err
	}
	defer release()
	r := w.reconciler(g, f.parallelism, nil)
	sc := scopeFor(st, f.prune, f.massOK)
	if saved != nil {
		sc = saved.Scope
	}
	p, err := r.Plan(ctx, st, sc)
	if err != nil {
		return fail(err)
	}
	p.Files = absFiles(f.files)
	if saved != nil && saved.Fingerprint != p.Fingerprint {
		return fail(fmt.Errorf("%s: %w", planFile, reconcile.ErrStalePlan))
	}
	if err := view.Plan(p); err != nil {
		return fail(err)
	}
	if !p.HasChanges() {
		r.Record(st, p)
		return view.NothingToApply(p)
	}
	if err := approve(g, f, saved, view); err != nil {
		return fail(err)
	}
	if err := execute(ctx, g, f, r, st, p, view); err != nil {
		return fail(err)
	}
	return nil
}

// approve asks for approval on a terminal, unless the plan was saved or
// --auto-approve says yes already.
func approve(g *globals, f *applyFlags, saved *reconcile.Plan, view views.Apply) error {
	if saved != nil || f.autoApprove {
		return nil
	}
	if !isTerminal(g.stdin) {
		return errors.New("stdin is not a terminal: pass --auto-approve to apply without confirmation")
	}
	return view.Ask(g.stdin)
}

// execute applies p, showing each result as it comes (and each retried
// attempt) and the summary; a failed action is an error.
func execute(ctx context.Context, g *globals, f *applyFlags, r *reconcile.Reconciler, st *spec.State, p *reconcile.Plan, view views.Apply) error {
	view.Start()
	ao := reconcile.ApplyOptions{Progress: view.Result}
	if !f.quiet && g.logFormat != "json" {
		// With JSON logs the retries are structured log events instead.
		ao.OnRetry = view.Retry
	}
	res, err := r.Apply(ctx, st, p, ao)
	if err != nil {
		return err
	}
	if err := view.Summary(res); err != nil {
		return err
	}
	return res.Err()
}

// readSavedPlan reads apply's PLANFILE, if given, and takes its host and
// state files; nil without one.
func readSavedPlan(cmd *cobra.Command, g *globals, f *applyFlags, planFile string) (*reconcile.Plan, error) {
	switch {
	case planFile != "" && len(f.files) > 0:
		return nil, errors.New("give either -f FILE... or a saved PLANFILE, not both")
	case planFile != "" && (strings.HasSuffix(planFile, ".yaml") || strings.HasSuffix(planFile, ".yml")):
		return nil, fmt.Errorf("%s looks like a state file: use apply -f %s (a positional argument is a plan saved with plan --out)", planFile, planFile)
	case planFile == "" && len(f.files) == 0:
		return nil, errors.New("give the desired state with -f FILE (or a saved PLANFILE)")
	case planFile == "":
		return nil, nil
	}
	fh, err := os.Open(planFile)
	if err != nil {
		return nil, err
	}
	saved, err := jsonplan.ReadPlan(fh)
	fh.Close()
	if err != nil {
		return nil, err
	}
	if len(saved.Files) == 0 {
		return nil, fmt.Errorf("%s names no state files", planFile)
	}
	if cmd.Flags().Changed("host") && g.host != saved.Host {
		return nil, fmt.Errorf("%s was made for host %q, not %q", planFile, saved.Host, g.host)
	}
	g.host = saved.Host
	f.files = saved.Files
	return saved, nil
}

// isTerminal says whether r is a terminal a person can answer on.
func isTerminal(r any) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
