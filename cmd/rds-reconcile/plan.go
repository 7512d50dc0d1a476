package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newPlanCmd is a placeholder until its issue lands.
func newPlanCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "plan",
		Short:  "(not yet available)",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("plan: not yet implemented")
		},
	}
}
