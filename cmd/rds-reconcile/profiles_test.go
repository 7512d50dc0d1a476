package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/rds/sim"
)

// newEnvVersion is newEnv against a simulator playing one RouterOS release.
func newEnvVersion(t *testing.T, version, volumes string) *env {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv, err := sim.ServeDir(ctx, filepath.Join(dir, "rds"), "127.0.0.1:0", sim.Options{JSON: true, Version: version})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	e := &env{t: t, srv: srv, dir: dir, hostDir: filepath.Join(dir, "host"), state: filepath.Join(dir, "state.yaml")}
	e.write(volumes)
	return e
}

// TestRouterOSProfiles: plan, apply and an empty plan again against every
// RouterOS release the simulator models; plan and status name the release.
func TestRouterOSProfiles(t *testing.T) {
	for _, v := range sim.Versions {
		t.Run(v, func(t *testing.T) {
			e := newEnvVersion(t, v, twoVolumes)
			code, out, errOut := e.cli("plan", "-f", e.state, "--detailed-exitcode")
			if code != 2 || !strings.Contains(out, "Plan: 4 to create") {
				t.Fatalf("plan: exit %d, want 2\n%s%s", code, out, errOut)
			}
			if want := "RDS: RouterOS " + v + " (stable)"; !strings.Contains(out, want) {
				t.Errorf("plan does not name the release (%q):\n%s", want, out)
			}
			code, out, errOut = e.cli("apply", "-f", e.state, "--auto-approve")
			if code != 0 || !strings.Contains(out, "Apply: 4 done, 0 failed") {
				t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
			}
			e.mustPlanEmpty()
			for _, d := range e.srv.Disks() {
				if !strings.HasPrefix(d.NQN, testNQNPrefix) {
					t.Errorf("%s: disk %s exported as %q", v, d.Slot, d.NQN)
				}
			}
			code, out, _ = e.cli("status", "-f", e.state)
			if code != 0 || !strings.Contains(out, "RDS: RouterOS "+v) || !strings.Contains(out, "Ready") {
				t.Errorf("status: exit %d\n%s", code, out)
			}
			code, out, _ = e.cli("status", "-f", e.state, "-o", "json")
			if code != 0 || !strings.Contains(out, `"rdsVersion": "`+v+` (stable)"`) {
				t.Errorf("status JSON does not name the release: exit %d\n%s", code, out)
			}
		})
	}
}

// TestSimCommandRouterOSVersion: --routeros-version selects the profile:
// the version printed, :serialize and its options, the NQN property.
func TestSimCommandRouterOSVersion(t *testing.T) {
	for _, tc := range []struct {
		args                 []string
		version, serialize   string
		options, nqn, badNQN string
	}{
		{nil, sim.NewestVersion, "[]", "[]", "nvme-tcp-server-nqn", "nvme-tcp-name"},
		{[]string{"--routeros-version", "7.20"}, "7.20", "[]", "[]", "nvme-tcp-name", "nvme-tcp-server-nqn"},
		{[]string{"--routeros-version", "7.16"}, "7.16", "[]", "expected end of command", "nvme-tcp-name", "nvme-tcp-server-nqn"},
		{[]string{"--routeros-version", "7.12"}, "7.12", "bad command name serialize", "bad command name serialize", "nvme-tcp-name", "nvme-tcp-server-nqn"},
		{[]string{"--json=false"}, "7.12", "bad command name serialize", "bad command name serialize", "nvme-tcp-name", "nvme-tcp-server-nqn"},
	} {
		t.Run(tc.version+strings.Join(tc.args, ""), func(t *testing.T) {
			tg, _ := startSimCmd(t, tc.args...)
			c := dialTarget(t, tg)
			check := func(cmd, want string) {
				t.Helper()
				if out, err := simRun(c, cmd); err != nil || !strings.HasPrefix(out, want) {
					t.Errorf("%s: %q %v, want %q...", cmd, out, err, want)
				}
			}
			check(`:put [/system resource get version]`, tc.version+" (stable)")
			check(`:put [:serialize to=json [/disk print detail as-value where slot="none"]]`, tc.serialize)
			check(`:put [:serialize to=json options=json.no-string-conversion [/disk print detail as-value where slot="none"]]`, tc.options)
			check(`/disk add type=file file-path=storage-pool/volumes/pvc-a.img file-size=1M slot=pvc-a nvme-tcp-export=yes `+tc.badNQN+`="nqn.x:a"`, "expected end of command")
			check(`/disk add type=file file-path=storage-pool/volumes/pvc-a.img file-size=1M slot=pvc-a nvme-tcp-export=yes `+tc.nqn+`="nqn.x:a"; :put [/disk get pvc-a `+tc.nqn+`]`, "nqn.x:a")
		})
	}
}
