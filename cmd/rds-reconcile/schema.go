package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

func newSchemaCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of the desired-state format",
		Long: `Print the JSON Schema (draft-07) of the desired-state format, for editors. Save it and point yaml-language-server at it from a state file:

  rds-reconcile schema > rds-reconcile.schema.json
  # first line of state.yaml:
  # yaml-language-server: $schema=./rds-reconcile.schema.json

The schema checks shapes and ranges; validate checks everything.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if _, err := g.stdout.Write(spec.Schema()); err != nil {
				return fmt.Errorf("writing the schema: %w", err)
			}
			return nil
		},
	}
}
