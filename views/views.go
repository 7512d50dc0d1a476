// Package views is what the commands show: one interface per command
// (Plan, Apply, Status), each with a human (text) and a JSON
// implementation chosen once from -o by its constructor, so a command
// never branches on the format. It only reads reconcile's types; reconcile
// computes and knows nothing of it. The plan's JSON wire format is in
// views/jsonplan.
package views

import (
	"fmt"
	"strings"
	"time"

	"github.com/rds-reconcile/rds-reconcile/reconcile"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// Output formats of -o.
const (
	Text  = "text"
	Table = "table" // status's human format
	JSON  = "json"
)

// badFormat names the flag and what it takes.
func badFormat(got string, want ...string) error {
	return fmt.Errorf("-o/--output %q: want %s", got, strings.Join(want, " or "))
}

// Legend explains the marks.
const Legend = "Marks: + create  ~ change in place  -/+ reconnect  x disconnect (data kept)  - delete (data destroyed)  ! blocked by a safety rule"

func size(n int64) string { return spec.Quantity{Bytes: n}.String() }

// label names what an action is about in its reason line.
func label(a reconcile.Action) string {
	switch {
	case a.Volume != "":
		return a.Volume
	case a.Controller != "":
		return a.Controller
	}
	return a.FilePath
}

// target names what an action is about in apply's retry and failure
// lines: the volume and its controller.
func target(a reconcile.Action) string {
	if a.Volume != "" && a.Controller != "" {
		return a.Volume + " (" + a.Controller + ")"
	}
	return label(a)
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }
