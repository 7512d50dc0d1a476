package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newExportCmd is a placeholder until its issue lands.
func newExportCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "export",
		Short:  "(not yet available)",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("export: not yet implemented")
		},
	}
}
