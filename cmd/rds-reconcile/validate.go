package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

// addFileFlags registers the repeatable, required -f/--file flag every
// command that reads a state uses, with shell completion of YAML files.
func addFileFlags(cmd *cobra.Command, files *[]string) {
	cmd.Flags().StringArrayVarP(files, "file", "f", nil,
		"desired-state YAML file; repeat to layer files (-f base.yaml -f csi-volumes.yaml)")
	// Both calls only fail for a flag name that does not exist.
	_ = cmd.MarkFlagRequired("file")
	_ = cmd.MarkFlagFilename("file", "yaml", "yml")
}

// noFileArgs refuses positional arguments with the fix for the usual
// slip, a state file given without -f.
func noFileArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return &exitError{code: 1, err: fmt.Errorf("%s takes no arguments; give state files with -f: rds-reconcile %s -f %s",
		cmd.Name(), cmd.Name(), strings.Join(args, " -f "))}
}

// loadState loads and validates the layered state files. Validation
// problems come back as *spec.Errors, one FILE:LINE:COL line each.
func loadState(files []string) (*spec.State, error) {
	return spec.Load(files...)
}

func newValidateCmd(g *globals) *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "validate -f FILE [-f FILE...]",
		Short: "Check desired-state files and print a one-line summary",
		Long: `Load the desired-state files as apply would (layering, defaults) and check
them: unknown fields, duplicate keys, wrong types, ranges, names, sizes and
references between hosts and volumes. Every problem is printed at once on
stderr as FILE:LINE:COL: path.to.field: message, and the exit status is 1.
A valid state prints one summary line on stdout and exits 0. With --host
NAME it also checks that NAME is declared under hosts.`,
		Example: `  rds-reconcile validate -f examples/demo.yaml
  rds-reconcile validate -f base.yaml -f csi-volumes.yaml`,
		Args: noFileArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := loadState(files)
			if err != nil {
				var es *spec.Errors
				if errors.As(err, &es) {
					fmt.Fprintln(g.stderr, es.Error())
					return &exitError{code: 1}
				}
				return &exitError{code: 1, err: err}
			}
			if cmd.Flags().Changed("host") {
				if _, ok := st.Hosts[g.host]; !ok {
					return &exitError{code: 1, err: fmt.Errorf("--host %q is not declared under hosts (declared: %s): "+
						"plan and apply would connect nothing on it", g.host, strings.Join(st.HostNames(), ", "))}
				}
			}
			fmt.Fprintln(g.stdout, summary(files, st))
			return nil
		},
	}
	addFileFlags(cmd, &files)
	return cmd
}

// summary is the one line validate prints for a valid state, e.g.
// "examples/demo.yaml: valid: 3 volumes (2 present, 1 absent), 2 hosts".
func summary(files []string, st *spec.State) string {
	present, absent := 0, 0
	for _, v := range st.Volumes {
		if v.State == spec.Absent {
			absent++
		} else {
			present++
		}
	}
	line := fmt.Sprintf("%s: valid: %s (%d present, %d absent), %s",
		strings.Join(files, ", "), plural(len(st.Volumes), "volume"), present, absent, plural(len(st.Hosts), "host"))
	if len(st.Snapshots) > 0 { // said only when there are some: the line stays as it was without
		line += ", " + plural(len(st.Snapshots), "snapshot")
	}
	return line
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
