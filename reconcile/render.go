package reconcile

// Rendering is kept apart from planning: the functions here only read a
// Plan, Result or Status and write text or JSON.

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// Symbol is the plan mark of an action kind.
func Symbol(k Kind) string {
	switch k {
	case KindCreate, KindConnect:
		return "+"
	case KindFixExport, KindGrow, KindSetTimeouts, KindRescan:
		return "~"
	case KindReconnect:
		return "-/+"
	case KindDisconnect, KindDisconnectOrphan:
		return "x"
	case KindDelete, KindRemoveFile:
		return "-"
	case KindBlocked:
		return "!"
	}
	return "?"
}

// Legend explains the marks.
const Legend = "Marks: + create  ~ change in place  -/+ reconnect  x disconnect (data kept)  - delete (data destroyed)  ! blocked by a safety rule"

func size(n int64) string { return spec.Quantity{Bytes: n}.String() }

// Describe says what an action does, in one line.
func Describe(a Action) string {
	switch a.Kind {
	case KindCreate:
		return fmt.Sprintf("create disk %s: %s file %s, export %s port %d", a.Slot, size(a.Size), a.FilePath, a.NQN, a.Port) + admits(a)
	case KindFixExport:
		return fmt.Sprintf("fix export of disk %s: %s port %d", a.Slot, a.NQN, a.Port) + admits(a)
	case KindGrow:
		if a.Size < a.FromSize {
			return fmt.Sprintf("shrink disk %s: %s -> %s", a.Slot, size(a.FromSize), size(a.Size))
		}
		return fmt.Sprintf("grow disk %s: %s -> %s", a.Slot, size(a.FromSize), size(a.Size))
	case KindDelete:
		return fmt.Sprintf("delete disk %s and its file %s (%s)", a.Slot, a.FilePath, size(a.Size))
	case KindRemoveFile:
		return fmt.Sprintf("remove leftover file %s", a.FilePath)
	case KindConnect:
		return fmt.Sprintf("connect %s at %s:%d (%s)", a.NQN, a.Address, a.Port, timeoutsOf(a.Timeouts))
	case KindSetTimeouts:
		return fmt.Sprintf("set timeouts of %s: %s -> %s", a.Controller, effective(a.FromTimeouts), effective(a.Timeouts))
	case KindRescan:
		return fmt.Sprintf("rescan %s (namespace grows to %s)", a.Controller, size(a.Size))
	case KindReconnect:
		return fmt.Sprintf("reconnect %s to %s at %s:%d (%s)", a.Controller, a.NQN, a.Address, a.Port, timeoutsOf(a.Timeouts))
	case KindDisconnect:
		return fmt.Sprintf("disconnect %s (%s)", a.Controller, a.NQN)
	case KindDisconnectOrphan:
		return fmt.Sprintf("disconnect orphan %s (%s)", a.Controller, a.NQN)
	case KindBlocked:
		w := a
		w.Kind = a.Wanted
		return "would " + Describe(w)
	}
	return string(a.Kind)
}

// admits names the hosts a create or fix-export admits, when it sets them.
func admits(a Action) string {
	if !a.SetAllowHosts {
		return ""
	}
	return ", admits " + fmtAllowHosts(a.AllowHosts)
}

// effective shows timeouts as the kernel holds them, so that an in-place
// change reads as what really changes.
func effective(t *fabric.Timeouts) string {
	if t == nil {
		return "kernel defaults"
	}
	return fmtTimeouts(t.Effective())
}

func timeoutsOf(t *fabric.Timeouts) string {
	if t == nil {
		return "kernel defaults"
	}
	return fmtTimeouts(*t)
}

// TextOptions tune RenderPlanText.
type TextOptions struct {
	// Verbose lists the foreign controllers one by one (else a count in
	// the notes).
	Verbose bool
}

// RenderText writes the plan like Terraform: a line per action with its
// mark and reason, drift, notes and a summary line.
func RenderText(w io.Writer, p *Plan) error { return RenderPlanText(w, p, TextOptions{}) }

// RenderPlanText is RenderText with options.
func RenderPlanText(w io.Writer, p *Plan, o TextOptions) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Plan for host %q", p.Host)
	if p.Revision != "" {
		fmt.Fprintf(&b, " at revision %s", p.Revision)
	}
	b.WriteString("\n\n")
	if len(p.Drift) > 0 {
		b.WriteString("Drift (changed outside rds-reconcile):\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, d := range p.Drift {
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
	if len(p.Reconnecting) > 0 {
		b.WriteString("Reconnecting (the kernel is at it; nothing to do unless it gives up):\n")
		for _, r := range p.Reconnecting {
			fmt.Fprintf(&b, "  %s (%s) is %s: %s\n", r.Volume, r.Controller, r.State, r.Reason)
		}
		b.WriteString("\n")
	}
	if len(p.Actions) == 0 && len(p.Reconnecting) > 0 {
		b.WriteString("No changes to make, but the live state is not converged yet: see Reconnecting above.\n")
	} else if len(p.Actions) == 0 {
		b.WriteString("No changes. The live state matches the desired state.\n")
	} else {
		b.WriteString(Legend + "\n")
		last := Phase(-1)
		for _, a := range p.Actions {
			if a.Phase != last {
				last = a.Phase
				fmt.Fprintf(&b, "\n%s:\n", phaseTitle(a.Phase, p.Host))
			}
			fmt.Fprintf(&b, "  %-3s %s\n", Symbol(a.Kind), Describe(a))
			fmt.Fprintf(&b, "        # %s: %s\n", label(a), a.Reason)
			if a.Kind == KindBlocked {
				fmt.Fprintf(&b, "        # rule %s\n", a.Blocked)
			}
		}
	}
	if len(p.Notes) > 0 {
		b.WriteString("\nNotes:\n")
		for _, n := range p.Notes {
			fmt.Fprintf(&b, "  - %s\n", n)
		}
	}
	if o.Verbose && len(p.Foreign) > 0 {
		b.WriteString("\nForeign controllers (never touched):\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, f := range p.Foreign {
			fmt.Fprintf(tw, "  %s\t%s\t%s:%s\t%s\t%s\n", f.Controller, f.NQN, f.Address, f.Port, f.State, f.Why)
		}
		_ = tw.Flush()
	}
	s := p.Summary()
	fmt.Fprintf(&b, "\nPlan: %d to create, %d to change, %d to disconnect, %d to delete, %d blocked.\n",
		s.Create, s.Change, s.Disconnect, s.Delete, s.Blocked)
	_, err := io.WriteString(w, b.String())
	return err
}

func label(a Action) string {
	switch {
	case a.Volume != "":
		return a.Volume
	case a.Controller != "":
		return a.Controller
	}
	return a.FilePath
}

func phaseTitle(p Phase, host string) string {
	switch p {
	case PhaseRDS:
		return "RDS: create and repair"
	case PhaseHost:
		return fmt.Sprintf("Host %s: connect and update", host)
	case PhaseHostDetach:
		return fmt.Sprintf("Host %s: disconnect", host)
	case PhaseRDSDelete:
		return "RDS: delete"
	}
	return p.String()
}

// RenderJSON writes the plan as JSON (format_version "1", documented in
// docs/reconcile.md). A saved plan is the same document.
func RenderJSON(w io.Writer, p *Plan) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}

// ReadPlan decodes a plan written by RenderJSON.
func ReadPlan(r io.Reader) (*Plan, error) {
	var p Plan
	dec := json.NewDecoder(r)
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	if p.FormatVersion != PlanFormatVersion {
		return nil, fmt.Errorf("read plan: format_version %q is not supported (want %q)", p.FormatVersion, PlanFormatVersion)
	}
	return &p, nil
}

// ResultLine is the one line apply prints as an action finishes.
func ResultLine(ar ActionResult) string {
	head := fmt.Sprintf("%-3s %s", Symbol(ar.Action.Kind), Describe(ar.Action))
	switch {
	case ar.Skipped:
		return head + ": skipped (" + ar.SkipReason + ")"
	case ar.Err != nil:
		return fmt.Sprintf("%s: FAILED after %s, %s: %v", head, ar.Duration.Round(time.Millisecond), attempts(ar.Attempts), ar.Err)
	}
	return fmt.Sprintf("%s: done in %s, %s", head, ar.Duration.Round(time.Millisecond), attempts(ar.Attempts))
}

// RetryLine is the line apply prints when an attempt failed and the
// action will be tried again.
func RetryLine(ev RetryEvent) string {
	return fmt.Sprintf("    %s %s: attempt %d of %d failed: %v; next try in %s", ev.Action.Kind, target(ev.Action),
		ev.Attempt, ev.Attempts, ev.Err, ev.Next.Round(10*time.Millisecond))
}

func attempts(n uint) string {
	if n == 1 {
		return "1 attempt"
	}
	return fmt.Sprintf("%d attempts", n)
}

// RenderResultSummary writes apply's closing line(s).
func RenderResultSummary(w io.Writer, res *Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\nApply: %d done, %d failed, %d skipped, %d blocked in %s.\n",
		res.Succeeded, res.Failed, res.Skipped, res.Blocked, res.Duration.Round(time.Millisecond))
	for _, a := range res.Actions {
		if a.Err != nil {
			fmt.Fprintf(&b, "  failed: %s %s: %v\n", a.Action.Kind, target(a.Action), a.Err)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// RenderStatusTable writes one row per volume and one per orphan.
func RenderStatusTable(w io.Writer, s *Status) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Status of host %q", s.Host)
	if s.Revision != "" {
		fmt.Fprintf(&b, " at revision %s", s.Revision)
	}
	b.WriteString("\n\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VOLUME\tRDS\tEXPORTED\tSIZE\tCONTROLLER\tSTATE\tDEVICE\tIN USE\tDRIFT\tCONDITION\tREASON")
	for _, v := range s.Volumes {
		present, exported, sz := "-", "-", "-"
		if v.RDS != nil {
			present, exported = yesNo(v.RDS.Present), yesNo(v.RDS.Exported)
			if v.RDS.Present {
				sz = size(v.RDS.Size)
			}
		}
		if v.State == spec.Absent {
			present += " (absent)"
		}
		ctrl, state, dev, mounted := "-", "-", "-", "-"
		if v.Host != nil {
			if v.Host.Controller != "" {
				ctrl, state = v.Host.Controller, v.Host.State
				if v.Host.Device != "" {
					dev = v.Host.Device
				}
				mounted = yesNo(v.Host.InUse)
			} else if !v.Host.Attached {
				ctrl = "(not attached)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", v.Name, present, exported, sz, ctrl, state, dev,
			mounted, len(v.Drift), v.Condition, oneLine(v.Reason))
	}
	_ = tw.Flush()
	if len(s.Orphans) > 0 {
		b.WriteString("\nOrphan controllers (managed NQN, not declared here):\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, o := range s.Orphans {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", o.Controller, o.NQN, o.State, o.InUse)
		}
		_ = tw.Flush()
	}
	if len(s.Drift) > 0 {
		b.WriteString("\nDrift (changed outside rds-reconcile):\n")
		for _, d := range s.Drift {
			if d.Want == "" {
				fmt.Fprintf(&b, "  %s %s %s: %s\n", d.Volume, d.Where, d.Field, d.Got)
				continue
			}
			fmt.Fprintf(&b, "  %s %s %s: want %s, got %s\n", d.Volume, d.Where, d.Field, d.Want, d.Got)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func oneLine(s string) string {
	if len(s) > 100 {
		return s[:97] + "..."
	}
	return s
}
