package main

import (
	"github.com/spf13/cobra"

	"github.com/rds-reconcile/rds-reconcile/views"
)

func newStatusCmd(g *globals) *cobra.Command {
	var files []string
	var output string
	cmd := &cobra.Command{
		Use:   "status -f FILE [-f FILE...]",
		Short: "Show each volume's health on the RDS and on this host",
		Long: `status prints one row per declared volume: on the RDS (present, exported,
size), on this host (controller, kernel state, device, mounted), the number of
drift items, and a condition with its reason:

  Ready        as declared
  Progressing  apply has work to do (a create, a connect, a grow...)
  Degraded     the controller is connecting or resetting: the kernel is
               reconnecting within ctrl_loss_tmo
  Blocked      a safety rule stops an action (the rule is named)

Orphan controllers (a managed NQN no volume attached here declares) and the
drift follow. -o json prints the same as the run loop's /status endpoint.`,
		Example: `  rds-reconcile status -f state.yaml
  rds-reconcile status -f state.yaml -o json | jq '.volumes[] | select(.condition != "Ready")'`,
		Args: noFileArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runStatusCmd(cmd, g, files, output)
		},
	}
	addFileFlags(cmd, &files)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

func runStatusCmd(cmd *cobra.Command, g *globals, files []string, output string) error {
	fail := func(err error) error { return &exitError{code: 1, err: err} }
	view, err := views.NewStatus(output, g.stdout)
	if err != nil {
		return fail(err)
	}
	ctx := cmd.Context()
	g.readOnly = true
	st, err := loadOrReport(g, files)
	if err != nil {
		return err
	}
	w, err := wire(ctx, g, st, files)
	if err != nil {
		return fail(err)
	}
	defer w.close()
	s, err := w.reconciler(g, 0, nil).Status(ctx, st)
	if err != nil {
		return fail(err)
	}
	return view.Status(s, rdsProfile(w.rds))
}
