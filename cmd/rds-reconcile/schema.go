package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newSchemaCmd is a placeholder until its issue lands.
func newSchemaCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "schema",
		Short:  "(not yet available)",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("schema: not yet implemented")
		},
	}
}
