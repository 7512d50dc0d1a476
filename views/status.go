package views

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/rds-reconcile/rds-reconcile/reconcile"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// Status is what the status command shows.
type Status interface {
	// Status shows s; rds names the RDS's RouterOS ("" when not read).
	Status(s *reconcile.Status, rds string) error
}

// NewStatus returns the status view for -o format: "table" or "json".
func NewStatus(format string, w io.Writer) (Status, error) {
	switch format {
	case Table:
		return statusTable{w: w}, nil
	case JSON:
		return statusJSON{w: w}, nil
	}
	return nil, badFormat(format, Table, JSON)
}

// statusJSON writes the document the run loop serves on /status.
type statusJSON struct{ w io.Writer }

func (v statusJSON) Status(s *reconcile.Status, _ string) error {
	enc := json.NewEncoder(v.w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// statusTable writes one row per volume, the orphans and the drift.
type statusTable struct{ w io.Writer }

func (v statusTable) Status(s *reconcile.Status, rds string) error {
	var b strings.Builder
	if rds != "" {
		fmt.Fprintf(&b, "RDS: %s\n", rds)
	}
	fmt.Fprintf(&b, "Status of host %q", s.Host)
	if s.Revision != "" {
		fmt.Fprintf(&b, " at revision %s", s.Revision)
	}
	b.WriteString("\n\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VOLUME\tRDS\tEXPORTED\tSIZE\tCONTROLLER\tSTATE\tDEVICE\tIN USE\tDRIFT\tCONDITION\tREASON")
	for _, vs := range s.Volumes {
		fmt.Fprintln(tw, statusRow(vs))
	}
	_ = tw.Flush()
	statusOrphans(&b, s.Orphans)
	statusDrift(&b, s.Drift)
	_, err := io.WriteString(v.w, b.String())
	return err
}

// statusRow is a volume's row, its cells separated by tabs.
func statusRow(v reconcile.VolumeStatus) string {
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
	return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s", v.Name, present, exported, sz, ctrl, state, dev,
		mounted, len(v.Drift), v.Condition, oneLine(v.Reason))
}

func statusOrphans(b *strings.Builder, orphans []reconcile.OrphanStatus) {
	if len(orphans) == 0 {
		return
	}
	b.WriteString("\nOrphan controllers (managed NQN, not declared here):\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for _, o := range orphans {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", o.Controller, o.NQN, o.State, o.InUse)
	}
	_ = tw.Flush()
}

func statusDrift(b *strings.Builder, drift []reconcile.Drift) {
	if len(drift) == 0 {
		return
	}
	b.WriteString("\nDrift (changed outside rds-reconcile):\n")
	for _, d := range drift {
		if d.Want == "" {
			fmt.Fprintf(b, "  %s %s %s: %s\n", d.Volume, d.Where, d.Field, d.Got)
			continue
		}
		fmt.Fprintf(b, "  %s %s %s: want %s, got %s\n", d.Volume, d.Where, d.Field, d.Want, d.Got)
	}
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
