package rds

import (
	"errors"
	"strings"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/internal/retryable"
)

func TestParseRouterOSVersion(t *testing.T) {
	for in, want := range map[string]RouterOSVersion{
		"7.16.2 (stable)":      {7, 16, 2},
		"7.21":                 {7, 21, 0},
		"7.22beta3 (testing)":  {7, 22, 0},
		"7.21rc1":              {7, 21, 0},
		"  7.12.1 (long-term)": {7, 12, 1},
	} {
		got, ok := ParseRouterOSVersion(in)
		if !ok || got != want {
			t.Errorf("ParseRouterOSVersion(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "stable", "7", "x.y", "0.9"} {
		if v, ok := ParseRouterOSVersion(in); ok {
			t.Errorf("ParseRouterOSVersion(%q) = %v, want not understood", in, v)
		}
	}
}

// TestProfileTable: what each modelled release gets from the capability
// table.
func TestProfileTable(t *testing.T) {
	for _, tc := range []struct {
		version   string
		serialize bool
		json      bool
		nqn       string
	}{
		{"7.12.1 (long-term)", false, false, "nvme-tcp-name"},
		{"7.13", true, false, "nvme-tcp-name"},
		{"7.16.2 (stable)", true, false, "nvme-tcp-name"},
		{"7.17", true, true, "nvme-tcp-name"},
		{"7.20.4 (stable)", true, true, "nvme-tcp-name"},
		{"7.21 (stable)", true, true, "nvme-tcp-server-nqn"},
		{"7.23.3 (stable)", true, true, "nvme-tcp-server-nqn"},
		{"8.0", true, true, "nvme-tcp-server-nqn"},
		// Unreadable: newest names, but detail reads (they parse everywhere).
		{"weird", false, false, "nvme-tcp-server-nqn"},
	} {
		p := ProfileOf(tc.version)
		if p.Has(CapSerialize) != tc.serialize || p.JSONReads() != tc.json || p.NQNProperty() != tc.nqn {
			t.Errorf("%s: serialize %v json %v nqn %s; want %v %v %s", tc.version,
				p.Has(CapSerialize), p.JSONReads(), p.NQNProperty(), tc.serialize, tc.json, tc.nqn)
		}
	}
}

func TestProfileAdapt(t *testing.T) {
	cmd := `/disk add type=file file-path="storage-pool/volumes/nvme-tcp-server-nqn.img" file-size=1 slot="nvme-tcp-server-nqn" nvme-tcp-export=yes nvme-tcp-server-nqn="nqn.x:y"`
	old := ProfileOf("7.20").Adapt(cmd)
	want := strings.Replace(cmd, ` nvme-tcp-server-nqn="nqn`, ` nvme-tcp-name="nqn`, 1)
	if old != want {
		t.Errorf("7.20: %s\nwant %s", old, want)
	}
	if got := ProfileOf("7.21").Adapt(cmd); got != cmd {
		t.Errorf("7.21 changed the command: %s", got)
	}
	if !needsProfile(cmd) || needsProfile(`/disk set [find slot="x"] file-size=2`) {
		t.Error("needsProfile: only commands carrying the NQN property need the version")
	}
}

// TestProfileExplain: a refusal on a release that lacks what the command
// uses names the release and what is needed; other errors pass unchanged.
func TestProfileExplain(t *testing.T) {
	cmd := `/disk add type=file file-path="storage-pool/volumes/pvc-a.img" file-size=1 slot="pvc-a" mount-filesystem=no nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn="nqn.x:a"`
	refused := outputError("create", "pvc-a", cmd, "expected end of command (line 1 column 90)\n")
	err := ProfileOf("7.16.2 (stable)").explain(cmd, refused)
	msg := err.Error()
	for _, want := range []string{"RouterOS 7.16.2 (stable)", "7.17 or later", "mount-filesystem", "7.21 or later", "sent as nvme-tcp-name", "expected end of command"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
	if !errors.Is(err, ErrUnsupported) || !errors.Is(err, ErrRejected) || retryable.Is(err) {
		t.Errorf("explained refusal: %v, want terminal ErrUnsupported (an ErrRejected)", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Command != cmd || e.Slot != "pvc-a" {
		t.Errorf("explained refusal lost its context: %+v", e)
	}
	if got := ProfileOf("7.21").explain(cmd, refused); got != error(refused) {
		t.Errorf("a release with everything: %v, want the refusal unchanged", got)
	}
	other := outputError("create", "pvc-a", cmd, "failure: not enough space\n")
	if got := ProfileOf("7.12").explain(cmd, other); got != error(other) {
		t.Errorf("not a refusal of syntax: %v, want unchanged", got)
	}
	if err := ProfileOf("7.12").Require(CapSerialize); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "RouterOS 7.12 on the RDS has no :serialize to=json (needs RouterOS 7.13 or later") {
		t.Errorf("Require: %v", err)
	}
}
