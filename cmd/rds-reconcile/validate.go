package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newValidateCmd is a placeholder until its issue lands.
func newValidateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "validate",
		Short:  "(not yet available)",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("validate: not yet implemented")
		},
	}
}
