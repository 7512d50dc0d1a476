package views

import (
	"fmt"
	"io"

	"github.com/rds-reconcile/rds-reconcile/reconcile"
	"github.com/rds-reconcile/rds-reconcile/views/jsonplan"
)

// Plan is what the plan command shows.
type Plan interface {
	// Plan shows p; rds names the RDS's RouterOS ("" when not read).
	Plan(p *reconcile.Plan, rds string) error
	// Saved says that the plan was saved to path (plan --out).
	Saved(path string) error
}

// PlanOptions tune the human view.
type PlanOptions struct {
	// Verbose lists the foreign controllers one by one (else a count in
	// the notes).
	Verbose bool
}

// NewPlan returns the plan view for -o format: "text" or "json".
func NewPlan(format string, w io.Writer, o PlanOptions) (Plan, error) {
	switch format {
	case Text:
		return &planText{w: w, o: o}, nil
	case JSON:
		return planJSON{w: w}, nil
	}
	return nil, badFormat(format, Text, JSON)
}

type planText struct {
	w io.Writer
	o PlanOptions
}

func (v *planText) Plan(p *reconcile.Plan, rds string) error {
	if rds != "" {
		if _, err := fmt.Fprintf(v.w, "RDS: %s\n", rds); err != nil {
			return err
		}
	}
	return writePlanText(v.w, p, v.o.Verbose)
}

func (v *planText) Saved(path string) error {
	_, err := fmt.Fprintf(v.w, "\nSaved the plan to %s; apply it with: rds-reconcile apply %s\n", path, path)
	return err
}

// planJSON writes the document alone, so that its output is the saved
// plan's and parses as one JSON value.
type planJSON struct{ w io.Writer }

func (v planJSON) Plan(p *reconcile.Plan, _ string) error { return jsonplan.Write(v.w, p) }
func (v planJSON) Saved(string) error                     { return nil }
