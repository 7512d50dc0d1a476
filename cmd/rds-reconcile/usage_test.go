package main

import (
	"strings"
	"testing"
)

// TestUsageSlips: typical mistakes get an error that says what to do.
func TestUsageSlips(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad log level", []string{"--log-level", "verbose", "validate", "-f", demo}, 1, "--log-level \"verbose\": want debug, info, warn or error"},
		{"bad log format", []string{"--log-format", "yaml", "validate", "-f", demo}, 1, "--log-format \"yaml\": want text or json"},
		{"plan without -f", []string{"plan", "state.yaml"}, 1, "rds-reconcile plan -f state.yaml"},
		{"status without -f", []string{"status", "a.yaml", "b.yaml"}, 1, "rds-reconcile status -f a.yaml -f b.yaml"},
		{"apply of a state file as a plan", []string{"apply", "state.yaml"}, 1, "use apply -f state.yaml"},
		{"validate --host not declared", []string{"--host", "node-x", "validate", "-f", demo}, 1, `--host "node-x" is not declared under hosts`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, want %d; stderr %q, want it to contain %q (stdout %q)", code, tc.code, errOut, tc.want, out)
			}
		})
	}
	if code, _, errOut := runCLI(t, "--host", "node-a", "validate", "-f", demo); code != 0 {
		t.Errorf("validate --host node-a (declared): exit %d: %s", code, errOut)
	}
}

// TestWrongHostOnAFreshHost: with no controller yet, a --host the state
// does not declare must not plan "only RDS actions" and exit 0.
func TestWrongHostOnAFreshHost(t *testing.T) {
	e2 := newEnv(t, `  - {name: t-a, size: 16Mi, attachments: [node-a]}
`) // a fresh host: nothing connected yet
	code, out, _ := e2.cli("--host", "node-x", "plan", "-f", e2.state, "--detailed-exitcode")
	if code != exitBlocked {
		t.Errorf("plan --host node-x: exit %d, want %d\n%s", code, exitBlocked, out)
	}
	for _, want := range []string{`host "node-x" is not declared under hosts (declared: node-a, node-b)`, "would connect", "unknown-host"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan --host node-x does not say %q:\n%s", want, out)
		}
	}
	// The RDS side is created; the connect stays held back, and a second
	// apply says so rather than "nothing to do".
	if code, out, _ = e2.cli("--host", "node-x", "apply", "-f", e2.state, "--auto-approve"); code != 0 {
		t.Fatalf("apply --host node-x: exit %d\n%s", code, out)
	}
	code, out, _ = e2.cli("--host", "node-x", "apply", "-f", e2.state, "--auto-approve")
	if !strings.Contains(out, "held back by safety rules") || !strings.Contains(out, "unknown-host") {
		t.Errorf("apply --host node-x (exit %d) does not say what it held back:\n%s", code, out)
	}
}
