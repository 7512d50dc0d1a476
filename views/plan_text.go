package views

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/rds-reconcile/rds-reconcile/reconcile"
)

// writePlanText writes the plan like Terraform: a line per action with its
// mark and reason, drift, notes and a summary line. verbose lists the
// foreign controllers one by one (else a count in the notes).
func writePlanText(w io.Writer, p *reconcile.Plan, verbose bool) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Plan for host %q", p.Host)
	if p.Revision != "" {
		fmt.Fprintf(&b, " at revision %s", p.Revision)
	}
	b.WriteString("\n\n")
	planDrift(&b, p.Drift)
	planReconnecting(&b, p.Reconnecting)
	planActions(&b, p)
	planNotes(&b, p.Notes)
	if verbose {
		planForeign(&b, p.Foreign)
	}
	s := p.Summary()
	fmt.Fprintf(&b, "\nPlan: %d to create, %d to change, %d to disconnect, %d to delete, %d blocked.\n",
		s.Create, s.Change, s.Disconnect, s.Delete, s.Blocked)
	_, err := io.WriteString(w, b.String())
	return err
}

func planDrift(b *strings.Builder, drift []reconcile.Drift) {
	if len(drift) == 0 {
		return
	}
	b.WriteString("Drift (changed outside rds-reconcile):\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for _, d := range drift {
		who := d.Volume
		if d.Controller != "" {
			who += " (" + d.Controller + ")"
		}
		if d.Want != "" {
			fmt.Fprintf(tw, "  %s\t%s %s:\twant %s, got %s\n", who, d.Where, d.Field, d.Want, d.Got)
		} else {
			fmt.Fprintf(tw, "  %s\t%s %s:\t%s\n", who, d.Where, d.Field, d.Got)
		}
	}
	_ = tw.Flush()
	b.WriteString("\n")
}

func planReconnecting(b *strings.Builder, rs []reconcile.Reconnecting) {
	if len(rs) == 0 {
		return
	}
	b.WriteString("Reconnecting (the kernel is at it; nothing to do unless it gives up):\n")
	for _, r := range rs {
		fmt.Fprintf(b, "  %s (%s) is %s: %s\n", r.Volume, r.Controller, r.State, r.Reason)
	}
	b.WriteString("\n")
}

// planActions writes the legend and the actions under a title per phase.
func planActions(b *strings.Builder, p *reconcile.Plan) {
	switch {
	case len(p.Actions) == 0 && len(p.Reconnecting) > 0:
		b.WriteString("No changes to make, but the live state is not converged yet: see Reconnecting above.\n")
		return
	case len(p.Actions) == 0:
		b.WriteString("No changes. The live state matches the desired state.\n")
		return
	}
	b.WriteString(Legend + "\n")
	last := reconcile.Phase(-1)
	for _, a := range p.Actions {
		if a.Phase != last {
			last = a.Phase
			fmt.Fprintf(b, "\n%s:\n", a.Phase.Title(p.Host))
		}
		fmt.Fprintf(b, "  %-3s %s\n", a.Kind.Mark(), reconcile.Describe(a))
		fmt.Fprintf(b, "        # %s: %s\n", label(a), a.Reason)
		if a.Kind == reconcile.KindBlocked {
			fmt.Fprintf(b, "        # rule %s\n", a.Blocked)
		}
	}
}

func planNotes(b *strings.Builder, notes []string) {
	if len(notes) == 0 {
		return
	}
	b.WriteString("\nNotes:\n")
	for _, n := range notes {
		fmt.Fprintf(b, "  - %s\n", n)
	}
}

func planForeign(b *strings.Builder, fs []reconcile.ForeignController) {
	if len(fs) == 0 {
		return
	}
	b.WriteString("\nForeign controllers (never touched):\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for _, f := range fs {
		fmt.Fprintf(tw, "  %s\t%s\t%s:%s\t%s\t%s\n", f.Controller, f.NQN, f.Address, f.Port, f.State, f.Why)
	}
	_ = tw.Flush()
}
