package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newCSICmd is a placeholder until its issue lands.
func newCSICmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "csi",
		Short:  "(not yet available)",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("csi: not yet implemented")
		},
	}
}
