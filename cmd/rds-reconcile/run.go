package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newRunCmd is a placeholder until its issue lands.
func newRunCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "run",
		Short:  "(not yet available)",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("run: not yet implemented")
		},
	}
}
