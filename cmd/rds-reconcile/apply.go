package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newApplyCmd is a placeholder until its issue lands.
func newApplyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "apply",
		Short:  "(not yet available)",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("apply: not yet implemented")
		},
	}
}
