package main

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/rds-reconcile/rds-reconcile/reconcile"
)

func newExportCmd(g *globals) *cobra.Command {
	var from, out string
	cmd := &cobra.Command{
		Use:   "export --target-from FILE [-o FILE]",
		Short: "Write a desired state from what the RDS and this host have now",
		Long: `export adopts an existing setup: it reads target, defaults, policy and hosts
from --target-from, lists the RDS and this host, and writes a state that
declares every managed disk (slot prefix, <basePath>/<slot>.img,
<nqnPrefix><slot>) with its size, attached to this host when a controller for
it is connected here, with its live timeouts where they differ from the
defaults. A plan with the written state is empty. Volumes declared in
--target-from are not copied; disks outside the managed prefix are left out.`,
		Example: `  rds-reconcile export --target-from target.yaml -o state.yaml
  rds-reconcile --host node-a export --target-from target.yaml > node-a.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fail := func(err error) error { return &exitError{code: 1, err: err} }
			ctx := cmd.Context()
			files := []string{from}
			st, err := mustLoad(g, files)
			if err != nil {
				return err
			}
			w, err := wire(ctx, g, st, files)
			if err != nil {
				return fail(err)
			}
			defer w.close()
			obs, err := w.reconciler(g, 0, nil).Observe(ctx)
			if err != nil {
				return fail(err)
			}
			exported := reconcile.Export(st, obs, g.host)
			var b bytes.Buffer
			fmt.Fprintf(&b, "# Written by rds-reconcile export on host %q at %s from %s.\n", g.host,
				time.Now().UTC().Format(time.RFC3339), from)
			enc := yaml.NewEncoder(&b)
			enc.SetIndent(2)
			if err := enc.Encode(exported); err != nil {
				return fail(fmt.Errorf("export: %w", err))
			}
			if err := enc.Close(); err != nil {
				return fail(err)
			}
			if out == "" || out == "-" {
				_, err = g.stdout.Write(b.Bytes())
				return err
			}
			if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
				return fail(err)
			}
			fmt.Fprintf(g.stderr, "wrote %s: %d volumes\n", out, len(exported.Volumes))
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "target-from", "", "state file to take target, defaults, policy and hosts from")
	_ = cmd.MarkFlagRequired("target-from")
	_ = cmd.MarkFlagFilename("target-from", "yaml", "yml")
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the state to this file (default: stdout)")
	return cmd
}
