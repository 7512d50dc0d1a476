package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/rds-reconcile/rds-reconcile/reconcile"
	"github.com/rds-reconcile/rds-reconcile/spec"
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
--target-from are not copied; disks outside the managed prefix are left out.
File paths (keys, known_hosts) are written relative to the output file's
folder, or absolute on stdout, so the state loads from anywhere.`,
		Example: `  rds-reconcile export --target-from target.yaml -o state.yaml
  rds-reconcile --host node-a export --target-from target.yaml > node-a.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fail := func(err error) error { return &exitError{code: 1, err: err} }
			ctx := cmd.Context()
			files := []string{from}
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
			obs, err := w.reconciler(g, 0, nil).Observe(ctx)
			if err != nil {
				return fail(err)
			}
			exported := reconcile.Export(st, obs, g.host)
			if err := rebaseFiles(exported, out); err != nil {
				return fail(err)
			}
			var b bytes.Buffer
			fmt.Fprintf(&b, "# Written by rds-reconcile export on host %q at %s from %s.\n", g.host,
				time.Now().UTC().Format(time.RFC3339), from)
			if err := encodeState(&b, exported); err != nil {
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

// encodeState writes st as a state file.
func encodeState(w io.Writer, st *spec.State) error {
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(st); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return enc.Close()
}

// rebaseFiles rewrites the target's file paths (keys, known_hosts,
// secrets files) so they resolve from where the exported state is read:
// relative to the output file's folder, or absolute on stdout. The loader
// resolves them against the file naming them, so a path written relative
// to the current folder would point elsewhere.
func rebaseFiles(st *spec.State, out string) error {
	if st.Target == nil {
		return nil
	}
	t := *st.Target // a copy: the target is shared with the loaded state
	base := ""
	if out != "" && out != "-" {
		dir, err := filepath.Abs(filepath.Dir(out))
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		base = dir
	}
	for _, p := range []*string{&t.SSH.PrivateKeyFile, &t.SSH.PassphraseFile, &t.SSH.PasswordFile, &t.SSH.KnownHostsFile} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		*p = abs
		if base != "" {
			if rel, err := filepath.Rel(base, abs); err == nil {
				*p = rel
			}
		}
	}
	st.Target = &t
	return nil
}
