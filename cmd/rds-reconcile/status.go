package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newStatusCmd is a placeholder until its issue lands.
func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "status",
		Short:  "(not yet available)",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("status: not yet implemented")
		},
	}
}
