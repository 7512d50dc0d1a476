package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/rds/sim"
)

func TestOptionString(t *testing.T) {
	tests := []struct {
		name    string
		in      connectOpts
		want    string
		wantErr bool
	}{
		{
			name: "all timeouts",
			in: connectOpts{NQN: "nqn.2000-02.com.mikrotik:a", Addr: "127.0.0.1", Port: 4420, HostNQN: "nqn.h",
				CtrlLossTmo: -1, SetCtrlLoss: true, ReconnectDelay: 2, KeepAliveTmo: 5},
			want: "transport=tcp,traddr=127.0.0.1,trsvcid=4420,nqn=nqn.2000-02.com.mikrotik:a,hostnqn=nqn.h,ctrl_loss_tmo=-1,reconnect_delay=2,keep_alive_tmo=5",
		},
		{
			name: "kernel defaults",
			in:   connectOpts{NQN: "n", Addr: "127.0.0.1", Port: 4421, KeepAliveTmo: -1},
			want: "transport=tcp,traddr=127.0.0.1,trsvcid=4421,nqn=n",
		},
		{name: "injection", in: connectOpts{NQN: "n,duplicate_connect", Addr: "a", Port: 1}, wantErr: true},
		{name: "no nqn", in: connectOpts{Addr: "a", Port: 1}, wantErr: true},
		{name: "bad port", in: connectOpts{NQN: "n", Addr: "a", Port: 70000}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.optionString()
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestParseInstance(t *testing.T) {
	for in, want := range map[string]int{"instance=3,cntlid=1\n": 3, "cntlid=1,instance=12": 12} {
		got, err := parseInstance(in)
		if err != nil || got != want {
			t.Errorf("parseInstance(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "cntlid=1", "instance=x"} {
		if _, err := parseInstance(in); err == nil {
			t.Errorf("parseInstance(%q): want error", in)
		}
	}
}

func TestLookup(t *testing.T) {
	const doc = `{"volumes":[{"name":"a","condition":"Ready","size":1048576},{"name":"b","condition":"Degraded","host":{"state":"connecting"}}],"empty":[]}`
	tests := []struct{ path, want string }{
		{"volumes[name=b].condition", "Degraded"},
		{"volumes[1].host.state", "connecting"},
		{".volumes[0].size", "1048576"},
		{"volumes.#", "2"},
		{"empty.#", "0"},
		{"volumes[name=a]", `{"condition":"Ready","name":"a","size":1048576}`},
	}
	for _, tc := range tests {
		var out bytes.Buffer
		code := run(context.Background(), []string{"json", tc.path}, strings.NewReader(doc), &out, &out)
		if code != 0 || strings.TrimSpace(out.String()) != tc.want {
			t.Errorf("json %s = %d %q, want %q", tc.path, code, out.String(), tc.want)
		}
	}
	for _, bad := range []string{"volumes[name=z]", "volumes[5]", "volumes.name", "nope", "volumes[0"} {
		var v any
		if err := json.Unmarshal([]byte(doc), &v); err != nil {
			t.Fatal(err)
		}
		if _, err := lookup(v, bad); err == nil {
			t.Errorf("lookup %s: want error", bad)
		}
	}
}

func TestUsage(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), nil, nil, &out, &out); code != 2 {
		t.Fatalf("no args: code %d", code)
	}
	if code := run(context.Background(), []string{"connect"}, nil, &out, &out); code != 1 {
		t.Fatalf("connect without nqn: code %d", code)
	}
}

func TestHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/status" {
			w.Write([]byte(`{"volumes":[]}`))
			return
		}
		http.Error(w, "no pass finished yet", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "status.json")
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"http", "-o", out, srv.URL + "/status"}, nil, &stderr, &stderr); code != 0 {
		t.Fatalf("http /status: code %d: %s", code, stderr.String())
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != `{"volumes":[]}` {
		t.Fatalf("body %q, %v", b, err)
	}
	stderr.Reset()
	if code := run(context.Background(), []string{"http", srv.URL + "/other"}, nil, &stderr, &stderr); code != 1 {
		t.Fatalf("503: code %d", code)
	}
	if !strings.Contains(stderr.String(), "no pass finished yet") {
		t.Fatalf("503 error does not carry the body: %s", stderr.String())
	}
}

func TestSSH(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	srv, err := sim.ServeDir(ctx, dir, "127.0.0.1:0", sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	args := []string{"ssh", "-addr", srv.Addr(), "-key", filepath.Join(dir, sim.ClientKeyFile),
		"-known-hosts", filepath.Join(dir, sim.KnownHostsFile), "/system resource print"}
	var out, stderr bytes.Buffer
	if code := run(ctx, args, nil, &out, &stderr); code != 0 {
		t.Fatalf("ssh: code %d: %s", code, stderr.String())
	}
	if !strings.Contains(out.String(), "version") {
		t.Fatalf("ssh output has no version: %q", out.String())
	}

	// A known_hosts without the server's key is refused.
	other := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	args[6] = other
	stderr.Reset()
	if code := run(ctx, args, nil, &out, &stderr); code != 1 {
		t.Fatalf("unknown host key accepted: code %d", code)
	}
}
