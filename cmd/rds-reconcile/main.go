// Command rds-reconcile converges MikroTik RDS NVMe/TCP volumes and this
// host's NVMe controllers to a desired state kept in YAML, and serves CSI.
// This package only parses flags and wires the other packages together.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exitError carries a specific exit status out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// globals are the flags every command shares.
type globals struct {
	fabric    string // "linux" or "sim:DIR"
	host      string // this host's name in the state's hosts map
	logLevel  string
	logFormat string
	// readOnly: the command only looks (plan, status, export): nothing on
	// this host is written, not even a generated host NQN.
	readOnly bool
	stdout   io.Writer
	stderr   io.Writer
	stdin    io.Reader
}

func (g *globals) logger() *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if g.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(g.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(g.stderr, opts))
}

// check refuses global flag values that would otherwise fall back to a
// default without a word.
func (g *globals) check() error {
	switch strings.ToLower(g.logLevel) {
	case "debug", "info", "warn", "error":
	default:
		return &exitError{code: 1, err: fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)}
	}
	if g.logFormat != "text" && g.logFormat != "json" {
		return &exitError{code: 1, err: fmt.Errorf("--log-format %q: want text or json", g.logFormat)}
	}
	return nil
}

func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	hostname, _ := os.Hostname()
	g := &globals{stdout: stdout, stderr: stderr, stdin: stdin}
	root := &cobra.Command{
		Use:   "rds-reconcile",
		Short: "Declarative NVMe/TCP volumes for MikroTik RDS",
		Long: `rds-reconcile keeps MikroTik RDS (ROSE Data Server) NVMe/TCP volumes and this
host's kernel NVMe controllers in the state a YAML file declares.

  rds-reconcile validate -f state.yaml     check a state file
  rds-reconcile plan -f state.yaml         show what apply would change
  rds-reconcile apply -f state.yaml        converge
  rds-reconcile status -f state.yaml       per-volume health
  rds-reconcile run -f state.yaml          reconcile continuously
  rds-reconcile csi ...                    serve Kubernetes CSI
  rds-reconcile sim ...                    a RouterOS simulator over SSH`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return g.check()
		},
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.fabric, "fabric", "linux", `host NVMe side: "linux" (the kernel; root, nvme-tcp), "sim:DIR" (simulated host, state in DIR/fabric.json) or "none" (no host side)`)
	pf.StringVar(&g.host, "host", hostname, "this host's name in the state's hosts map")
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	pf.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.AddCommand(
		newValidateCmd(g),
		newSchemaCmd(g),
		newSimCmd(g),
		newPlanCmd(g),
		newApplyCmd(g),
		newStatusCmd(g),
		newRunCmd(g),
		newExportCmd(g),
		newCSICmd(g),
		newCSILayerCmd(g),
	)
	return root
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd(stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "Error:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "Error:", err)
	return 1
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
