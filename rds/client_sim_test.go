package rds_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avast/retry-go/v4"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/rds-reconcile/rds-reconcile/internal/retryable"
	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/rds/sim"
)

const (
	base   = "storage-pool/volumes"
	prefix = "pvc-"
	nqnPfx = "nqn.2000-02.com.mikrotik:"
	gib    = int64(1) << 30
)

// startSim serves a simulator on loopback for the test's lifetime.
func startSim(t testing.TB, opts sim.Options) *sim.Server {
	t.Helper()
	if opts.Backend == nil {
		opts.Backend = sim.NewMemoryBackend(1 << 40)
	}
	srv, err := sim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// knownHosts writes a known_hosts file holding lines.
func knownHosts(t testing.TB, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// clientConfig is a working key-auth configuration for srv.
func clientConfig(t testing.TB, srv *sim.Server) rds.Config {
	return rds.Config{
		Address:        srv.Addr(),
		User:           "admin",
		PrivateKey:     srv.ClientKeyPEM(),
		KnownHostsFile: knownHosts(t, srv.KnownHostsLine()),
		Timeout:        5 * time.Second,
		SlotPrefix:     prefix,
		BasePath:       base,
	}
}

func newClient(t testing.TB, cfg rds.Config) *rds.SSHClient {
	t.Helper()
	c, err := rds.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func createReq(slot string, size int64) rds.CreateRequest {
	return rds.CreateRequest{Slot: slot, FilePath: base + "/" + slot + ".img", Size: size, Port: 4420, NQN: nqnPfx + slot}
}

// formats runs f against the JSON listing, detail parsing at 80 columns and
// detail parsing on a 40-column console.
var formats = []struct {
	name   string
	json   bool
	user   string
	noJSON bool
	crlf   bool
}{
	{"json", true, "admin", false, false},
	{"json-crlf", true, "admin", false, true},
	{"detail-old-routeros", false, "admin", false, false},
	{"detail-80", true, "admin+ct80w", true, false},
	{"detail-40-crlf", false, "admin+ct40w", false, true},
}

func TestSimAllOperations(t *testing.T) {
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			srv := startSim(t, sim.Options{JSON: f.json, CRLF: f.crlf})
			cfg := clientConfig(t, srv)
			cfg.User, cfg.DisableJSON = f.user, f.noJSON
			c := newClient(t, cfg)
			ctx := ctxT(t)

			v, err := c.Version(ctx)
			if err != nil || !strings.HasPrefix(v, "7.") {
				t.Fatalf("Version = %q, %v", v, err)
			}
			capBefore, err := c.Capacity(ctx)
			if err != nil || capBefore.Size != 1<<40 || capBefore.Free != 1<<40 {
				t.Fatalf("Capacity = %+v, %v", capBefore, err)
			}
			long := "pvc-0123456789abcdef0123456789abcdef0123456789abcdef-longname"
			for _, r := range []rds.CreateRequest{createReq("pvc-a", 20*gib), createReq(long, 1*gib)} {
				if err := c.Create(ctx, r); err != nil {
					t.Fatalf("Create %s: %v", r.Slot, err)
				}
			}
			// A disk we do not own must stay invisible; an exported one
			// we do not own is listed apart (Exports), for ownership.
			if out := srv.Exec(`/disk add type=file file-path=storage-pool/volumes/other.img file-size=1048576 slot="other"`); out != "" {
				t.Fatal(out)
			}
			if out := srv.Exec(`/disk add type=file file-path=storage-pool/hand.img file-size=1048576 slot="hand" nvme-tcp-export=yes nvme-tcp-server-port=4420 ` + srv.NQNProperty() + `="` + nqnPfx + `hand"`); out != "" {
				t.Fatal(out)
			}
			inv, err := c.List(ctx)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if len(inv.Exports) != 1 || inv.Exports[0].Slot != "hand" || inv.Exports[0].NQN != nqnPfx+"hand" || !inv.Exports[0].Export {
				t.Errorf("Exports = %+v, want the hand-made exported disk only", inv.Exports)
			}
			if len(inv.Disks) != 2 || inv.Pool == nil || inv.Pool.Free != 1<<40-21*gib-2<<20 {
				t.Fatalf("List = %+v pool %+v", inv.Disks, inv.Pool)
			}
			want := rds.Disk{Slot: "pvc-a", Type: "file", FilePath: base + "/pvc-a.img", Size: 20 * gib, Export: true, Port: 4420, NQN: nqnPfx + "pvc-a"}
			got := inv.Disks[0]
			if got.Slot != "pvc-a" {
				got = inv.Disks[1]
			}
			got.Fields = nil
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("listed disk = %+v\nwant %+v", got, want)
			}
			if len(inv.Files) != 2 {
				t.Errorf("files = %+v, want the two managed .img files", inv.Files)
			}
			d, err := c.Get(ctx, long)
			if err != nil || d.Slot != long || d.NQN != nqnPfx+long || d.Size != gib {
				t.Fatalf("Get long = %+v, %v", d, err)
			}
			if _, err := c.Get(ctx, "pvc-missing"); !errors.Is(err, rds.ErrNotFound) {
				t.Errorf("Get missing: %v, want ErrNotFound", err)
			}

			// Created with mount-filesystem=no; a disk set back to yes by
			// hand shows it, and SetExport turns it off again.
			for _, sd := range srv.Disks() {
				if strings.HasPrefix(sd.Slot, prefix) && sd.MountFilesystem {
					t.Errorf("created %s with mount-filesystem=yes", sd.Slot)
				}
			}
			if out := srv.Exec(`/disk set [find slot="pvc-a"] mount-filesystem=yes`); out != "" {
				t.Fatal(out)
			}
			if d, err := c.Get(ctx, "pvc-a"); err != nil || !d.MountFilesystem {
				t.Fatalf("Get after mount-filesystem=yes: %+v, %v", d, err)
			}
			if err := c.SetExport(ctx, rds.ExportRequest{Slot: "pvc-a", Port: 4421, NQN: nqnPfx + "pvc-a-2"}); err != nil {
				t.Fatalf("SetExport: %v", err)
			}
			if d, err := c.Get(ctx, "pvc-a"); err != nil || d.MountFilesystem {
				t.Fatalf("Get after SetExport: %+v, %v; want mount-filesystem off", d, err)
			}
			if err := c.Grow(ctx, "pvc-a", 30*gib); err != nil {
				t.Fatalf("Grow: %v", err)
			}
			d, err = c.Get(ctx, "pvc-a")
			if err != nil || d.Port != 4421 || d.NQN != nqnPfx+"pvc-a-2" || d.Size != 30*gib {
				t.Fatalf("after SetExport+Grow: %+v, %v", d, err)
			}
			sent := len(srv.Commands())
			if err := c.Grow(ctx, "pvc-a", 10*gib); !errors.Is(err, rds.ErrShrink) || retryable.Is(err) {
				t.Errorf("shrink: %v, want ErrShrink", err)
			}
			if cmds := srv.Commands()[sent:]; len(cmds) != 1 || !strings.Contains(cmds[0], "print") {
				t.Errorf("shrink sent %q, want only the read of the current size", cmds)
			}
			if err := c.Create(ctx, createReq("pvc-huge", 2<<40)); !errors.Is(err, rds.ErrNoSpace) || retryable.Is(err) {
				t.Errorf("Create too big: %v, want terminal ErrNoSpace", err)
			}

			if err := c.Delete(ctx, "pvc-a", base+"/pvc-a.img"); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if err := c.Delete(ctx, "pvc-a", base+"/pvc-a.img"); err != nil {
				t.Errorf("Delete again (idempotent): %v", err)
			}
			// A disk removed behind our back leaves its file: a leftover.
			if out := srv.Exec(`/disk remove [find slot="` + long + `"]`); out != "" {
				t.Fatal(out)
			}
			inv, err = c.List(ctx)
			if err != nil || len(inv.Disks) != 0 || len(inv.Files) != 1 || inv.Files[0].Name != base+"/"+long+".img" {
				t.Fatalf("List after deletes = %+v, %v", inv, err)
			}
			if err := c.RemoveFile(ctx, inv.Files[0].Name); err != nil {
				t.Fatalf("RemoveFile: %v", err)
			}
			if err := c.RemoveFile(ctx, inv.Files[0].Name); err != nil {
				t.Errorf("RemoveFile again: %v", err)
			}
			for _, f := range srv.Files() {
				if strings.HasPrefix(f.Name, base+"/pvc-") {
					t.Errorf("file %s left on the RDS", f.Name)
				}
			}
			capAfter, err := c.Capacity(ctx)
			if err != nil || capAfter.Free != 1<<40-2<<20 { // "other" and "hand" stay
				t.Errorf("Capacity after = %+v, %v", capAfter, err)
			}
			if c.Dials() != 1 {
				t.Errorf("Dials = %d, want one connection for everything", c.Dials())
			}
		})
	}
}

func TestSimListIsOneRoundTrip(t *testing.T) {
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			srv := startSim(t, sim.Options{JSON: f.json, CRLF: f.crlf})
			if err := srv.SeedDisks(50, prefix); err != nil {
				t.Fatal(err)
			}
			cfg := clientConfig(t, srv)
			cfg.User, cfg.DisableJSON = f.user, f.noJSON
			c := newClient(t, cfg)
			ctx := ctxT(t)
			if _, err := c.List(ctx); err != nil { // connects and probes
				t.Fatal(err)
			}
			before, sent := c.RoundTrips(), len(srv.Commands())
			inv, err := c.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(inv.Disks) != 50 || len(inv.Files) != 50 || inv.Pool == nil {
				t.Fatalf("List: %d disks %d files pool %v", len(inv.Disks), len(inv.Files), inv.Pool)
			}
			if n := c.RoundTrips() - before; n != 1 {
				t.Errorf("List took %d round trips", n)
			}
			if n := len(srv.Commands()) - sent; n != 1 {
				t.Errorf("the simulator received %d commands for one List", n)
			}
			probes := 0
			for _, cmd := range srv.Commands() {
				if cmd == "/system resource print" {
					probes++
				}
			}
			if want := map[bool]int{true: 0, false: 1}[f.noJSON]; probes != want {
				t.Errorf("%d version probes, want %d", probes, want)
			}
		})
	}
}

func TestSimInjectionRefused(t *testing.T) {
	srv := startSim(t, sim.Options{JSON: true})
	c := newClient(t, clientConfig(t, srv))
	ctx := ctxT(t)
	evil := []string{
		`x"; /system reset-configuration`,
		`pvc-x"; /system reset-configuration`,
		`pvc-x; /system reset-configuration`,
		`pvc-x] ; /file remove [find`,
		"pvc-x\n/system reset-configuration",
		`pvc-$(reboot)`,
		`pvc-x y`,
		`PVC-X`,
		`other`,
		``,
	}
	ops := map[string]func(string) error{
		"get":    func(s string) error { _, err := c.Get(ctx, s); return err },
		"create": func(s string) error { return c.Create(ctx, createReq(s, gib)) },
		"create-path": func(s string) error {
			r := createReq("pvc-ok", gib)
			r.FilePath = base + "/" + s + ".img"
			return c.Create(ctx, r)
		},
		"create-nqn": func(s string) error {
			r := createReq("pvc-ok", gib)
			r.NQN = nqnPfx + s
			return c.Create(ctx, r)
		},
		"set-export": func(s string) error {
			return c.SetExport(ctx, rds.ExportRequest{Slot: s, Port: 4420, NQN: nqnPfx + "a"})
		},
		"grow":   func(s string) error { return c.Grow(ctx, s, gib) },
		"delete": func(s string) error { return c.Delete(ctx, s, base+"/"+s+".img") },
		"delete-path": func(s string) error {
			return c.Delete(ctx, "pvc-ok", base+"/pvc-ok.img"+s)
		},
		"remove-file": func(s string) error { return c.RemoveFile(ctx, base+"/"+s+".img") },
	}
	for name, op := range ops {
		for _, s := range evil {
			if (name == "create-nqn" && (s == "" || s == "PVC-X" || s == "other")) || (name == "delete-path" && s == "") {
				continue // still a valid NQN or path
			}
			if err := op(s); !errors.Is(err, rds.ErrInvalid) || retryable.Is(err) {
				t.Errorf("%s(%q) = %v, want ErrInvalid", name, s, err)
			}
		}
	}
	// Bad numbers and paths outside the base path.
	for _, r := range []rds.CreateRequest{
		{Slot: "pvc-a", FilePath: base + "/pvc-a.img", Size: 0, Port: 4420, NQN: "n"},
		{Slot: "pvc-a", FilePath: base + "/pvc-a.img", Size: gib, Port: 0, NQN: "n"},
		{Slot: "pvc-a", FilePath: base + "/pvc-a.img", Size: gib, Port: 65536, NQN: "n"},
		{Slot: "pvc-a", FilePath: "/etc/pvc-a.img", Size: gib, Port: 4420, NQN: "n"},
		{Slot: "pvc-a", FilePath: base + "/../pvc-a.img", Size: gib, Port: 4420, NQN: "n"},
	} {
		if err := c.Create(ctx, r); !errors.Is(err, rds.ErrInvalid) {
			t.Errorf("Create(%+v) = %v, want ErrInvalid", r, err)
		}
	}
	if err := c.Grow(ctx, "pvc-a", -1); !errors.Is(err, rds.ErrInvalid) {
		t.Errorf("Grow negative: %v", err)
	}
	if cmds := srv.Commands(); len(cmds) != 0 {
		t.Errorf("commands reached the RDS: %q", cmds)
	}
	if c.Dials() != 0 {
		t.Errorf("invalid input dialled the RDS")
	}
}

func TestSimHostKeys(t *testing.T) {
	srv := startSim(t, sim.Options{JSON: true})
	ctx := ctxT(t)
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	otherPub, _ := ssh.NewPublicKey(other)

	t.Run("unknown", func(t *testing.T) {
		cfg := clientConfig(t, srv)
		cfg.KnownHostsFile = knownHosts(t, "# empty")
		_, err := newClient(t, cfg).List(ctx)
		if !errors.Is(err, rds.ErrHostKey) || retryable.Is(err) {
			t.Fatalf("err = %v, want terminal ErrHostKey", err)
		}
		for _, want := range []string{"ssh-keyscan -p", cfg.KnownHostsFile, "SHA256:"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
	})
	t.Run("changed", func(t *testing.T) {
		cfg := clientConfig(t, srv)
		cfg.KnownHostsFile = knownHosts(t, knownhosts.Line([]string{knownhosts.Normalize(srv.Addr())}, otherPub))
		_, err := newClient(t, cfg).List(ctx)
		if !errors.Is(err, rds.ErrHostKey) || retryable.Is(err) {
			t.Fatalf("err = %v, want terminal ErrHostKey", err)
		}
		for _, want := range []string{"CHANGED", "ssh-keygen -R", ssh.FingerprintSHA256(otherPub), ssh.FingerprintSHA256(srv.HostKey())} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
	})
	t.Run("insecure-warns", func(t *testing.T) {
		var logs bytes.Buffer
		cfg := clientConfig(t, srv)
		cfg.KnownHostsFile = ""
		cfg.InsecureIgnoreHostKey = true
		cfg.Logger = slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))
		if _, err := newClient(t, cfg).Version(ctx); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "NOT verified") {
			t.Errorf("no warning logged: %s", logs.String())
		}
	})
	t.Run("required", func(t *testing.T) {
		cfg := clientConfig(t, srv)
		cfg.KnownHostsFile = ""
		if _, err := rds.New(cfg); !errors.Is(err, rds.ErrInvalid) {
			t.Errorf("New without host key policy: %v", err)
		}
	})
	if n := len(srv.Commands()); n != 1 {
		t.Errorf("%d commands sent, want only the insecure client's", n)
	}
}

// syncWriter serialises writes from the logger.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func TestSimAuth(t *testing.T) {
	const password = "correct-horse-battery-staple"
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// An ed25519 key encrypted with passphrase "key-pass" and one bcrypt
	// round (ssh-keygen -a 1): the default 16 rounds take seconds under
	// -race. A test fixture, not a secret.
	encrypted, err := os.ReadFile("testdata/keys/ed25519_passphrase")
	if err != nil {
		t.Fatal(err)
	}
	edPubLine, err := os.ReadFile("testdata/keys/ed25519_passphrase.pub")
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, _, _, err := ssh.ParseAuthorizedKey(edPubLine)
	if err != nil {
		t.Fatal(err)
	}
	authorized := []ssh.PublicKey{edPub}
	for _, k := range []any{&rsaKey.PublicKey, &ecKey.PublicKey} {
		p, err := ssh.NewPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		authorized = append(authorized, p)
	}
	srv := startSim(t, sim.Options{JSON: true, Password: password, AuthorizedKeys: authorized})
	ctx := ctxT(t)
	pemOf := func(k any) []byte {
		blk, err := ssh.MarshalPrivateKey(k, "")
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(blk)
	}
	for _, tc := range []struct {
		name string
		key  []byte
		pass string
	}{
		{"rsa", pemOf(rsaKey), ""},
		{"ecdsa", pemOf(ecKey), ""},
		{"ed25519-passphrase", encrypted, "key-pass"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := clientConfig(t, srv)
			cfg.PrivateKey, cfg.Passphrase = tc.key, []byte(tc.pass)
			if _, err := newClient(t, cfg).Version(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("encrypted-without-passphrase", func(t *testing.T) {
		cfg := clientConfig(t, srv)
		cfg.PrivateKey = encrypted
		if _, err := rds.New(cfg); !errors.Is(err, rds.ErrInvalid) {
			t.Errorf("err = %v", err)
		}
		cfg.Passphrase = []byte("wrong-passphrase-42")
		_, err := rds.New(cfg)
		if !errors.Is(err, rds.ErrInvalid) || strings.Contains(err.Error(), "wrong-passphrase-42") {
			t.Errorf("wrong passphrase: err = %v", err)
		}
	})
	t.Run("password", func(t *testing.T) {
		cfg := clientConfig(t, srv)
		cfg.PrivateKey, cfg.Password = nil, password
		if _, err := newClient(t, cfg).Version(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("bad-password-not-leaked", func(t *testing.T) {
		var logs bytes.Buffer
		const wrong = "wrong-secret-pw-9876"
		cfg := clientConfig(t, srv)
		cfg.PrivateKey, cfg.Password = nil, wrong
		cfg.Logger = slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
		_, err := newClient(t, cfg).Version(ctx)
		if !errors.Is(err, rds.ErrAuth) || retryable.Is(err) {
			t.Fatalf("err = %v, want terminal ErrAuth", err)
		}
		if strings.Contains(err.Error(), wrong) || strings.Contains(logs.String(), wrong) {
			t.Errorf("password leaked: err %q logs %q", err, logs.String())
		}
	})
}

func TestSimFaults(t *testing.T) {
	t.Run("fail-next-typed", func(t *testing.T) {
		srv := startSim(t, sim.Options{JSON: true})
		c := newClient(t, clientConfig(t, srv))
		ctx := ctxT(t)
		if _, err := c.List(ctx); err != nil { // connect and probe first
			t.Fatal(err)
		}
		for _, tc := range []struct {
			msg       string
			want      error
			retryable bool
		}{
			{"failure: not enough space", rds.ErrNoSpace, false},
			{"invalid value for argument file-size", rds.ErrRejected, false},
			{"syntax error (line 1 column 12)", rds.ErrRejected, false},
			{"failure: disk busy", rds.ErrBusy, true},
			{"action timed out", rds.ErrBusy, true},
		} {
			srv.SetFaults(sim.Faults{FailNext: []string{tc.msg}})
			err := c.Create(ctx, createReq("pvc-f", gib))
			var e *rds.Error
			if !errors.Is(err, tc.want) || retryable.Is(err) != tc.retryable || !errors.As(err, &e) || e.Output != tc.msg {
				t.Errorf("%q: err = %v retryable=%v", tc.msg, err, retryable.Is(err))
			}
		}
		// A failing read is judged by its text too.
		srv.SetFaults(sim.Faults{FailNext: []string{"no such item"}})
		if _, err := c.Capacity(ctx); !errors.Is(err, rds.ErrNotFound) {
			t.Errorf("read failure: %v", err)
		}
	})
	t.Run("drop-after-reads-redial", func(t *testing.T) {
		srv := startSim(t, sim.Options{JSON: true})
		c := newClient(t, clientConfig(t, srv))
		ctx := ctxT(t)
		srv.SetFaults(sim.Faults{DropAfter: 3})
		for i := range 10 {
			if _, err := c.List(ctx); err != nil {
				t.Fatalf("List %d: %v", i, err)
			}
		}
		if c.Dials() < 3 {
			t.Errorf("Dials = %d: drops did not force re-dials", c.Dials())
		}
		// The version is probed once per connection, not per command. (A
		// probe may itself be the dropped command and be sent again.)
		probes := 0
		for _, cmd := range srv.Commands() {
			if cmd == "/system resource print" {
				probes++
			}
		}
		if probes < 1 || int64(probes) > 2*c.Dials() {
			t.Errorf("%d probes over %d connections", probes, c.Dials())
		}
	})
	t.Run("drop-during-write-is-retryable", func(t *testing.T) {
		srv := startSim(t, sim.Options{JSON: true})
		c := newClient(t, clientConfig(t, srv))
		ctx := ctxT(t)
		if _, err := c.Version(ctx); err != nil {
			t.Fatal(err)
		}
		srv.SetFaults(sim.Faults{DropAfter: 0, DropProbability: 1})
		err := c.Create(ctx, createReq("pvc-d", gib))
		if !errors.Is(err, rds.ErrConnection) || !retryable.Is(err) {
			t.Fatalf("err = %v, want retryable ErrConnection", err)
		}
		// The write was sent once and not repeated behind our back.
		n := 0
		for _, cmd := range srv.Commands() {
			if strings.HasPrefix(cmd, "/disk add") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("/disk add sent %d times, want 1", n)
		}
		srv.SetFaults(sim.Faults{})
		if err := c.Create(ctx, createReq("pvc-d", gib)); err != nil {
			t.Errorf("after the fault: %v", err)
		}
	})
	t.Run("drop-probability-with-retry-go", func(t *testing.T) {
		srv := startSim(t, sim.Options{JSON: true})
		c := newClient(t, clientConfig(t, srv))
		ctx := ctxT(t)
		srv.SetFaults(sim.Faults{DropProbability: 0.3})
		for i := range 10 {
			slot := fmt.Sprintf("pvc-r%d", i)
			err := retry.Do(func() error {
				// Re-read before writing: a dropped write may have landed.
				if _, err := c.Get(ctx, slot); err == nil {
					return nil
				} else if !errors.Is(err, rds.ErrNotFound) {
					return err
				}
				return c.Create(ctx, createReq(slot, gib))
			}, retry.RetryIf(retryable.Is), retry.Attempts(30), retry.Delay(time.Millisecond),
				retry.Context(ctx), retry.LastErrorOnly(true))
			if err != nil {
				t.Fatalf("create %s: %v", slot, err)
			}
		}
		srv.SetFaults(sim.Faults{})
		inv, err := c.List(ctx)
		if err != nil || len(inv.Disks) != 10 {
			t.Fatalf("List = %d disks, %v", len(inv.Disks), err)
		}
	})
	t.Run("latency-and-deadline", func(t *testing.T) {
		srv := startSim(t, sim.Options{JSON: true})
		c := newClient(t, clientConfig(t, srv))
		if _, err := c.Version(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		srv.SetFaults(sim.Faults{Latency: 5 * time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.List(ctx)
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("List took %v past a 150ms deadline", took)
		}
		if !errors.Is(err, context.DeadlineExceeded) || !retryable.Is(err) {
			t.Errorf("err = %v, want retryable deadline error", err)
		}
		srv.SetFaults(sim.Faults{Latency: 20 * time.Millisecond})
		if _, err := c.List(ctxT(t)); err != nil {
			t.Errorf("List with latency: %v", err)
		}
	})
	t.Run("handshake-timeout", func(t *testing.T) {
		srv := startSim(t, sim.Options{JSON: true})
		srv.SetFaults(sim.Faults{HandshakeLatency: 5 * time.Second})
		cfg := clientConfig(t, srv)
		cfg.Timeout = 200 * time.Millisecond
		start := time.Now()
		_, err := newClient(t, cfg).Version(ctxT(t))
		if !errors.Is(err, rds.ErrConnection) || !retryable.Is(err) {
			t.Errorf("err = %v, want retryable ErrConnection", err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("dial took %v with a 200ms timeout", took)
		}
	})
	t.Run("session-cap", func(t *testing.T) {
		srv := startSim(t, sim.Options{JSON: true})
		srv.SetFaults(sim.Faults{MaxSessions: 1, Latency: 20 * time.Millisecond})
		// A client that respects the cap never trips it.
		cfg := clientConfig(t, srv)
		cfg.MaxSessions = 1
		c := newClient(t, cfg)
		ctx := ctxT(t)
		errs := runConcurrently(8, func(i int) error { _, err := c.List(ctx); return err })
		for _, err := range errs {
			if err != nil {
				t.Errorf("capped client: %v", err)
			}
		}
		if n := srv.RefusedSessions(); n != 0 {
			t.Errorf("%d sessions refused to a client within the cap", n)
		}
		// One that opens more sessions than the RDS allows is refused,
		// backs off and asks again: every command gets through, once.
		srv.SetFaults(sim.Faults{MaxSessions: 1, Latency: 200 * time.Millisecond})
		cfg.MaxSessions = 8
		greedy := newClient(t, cfg)
		sent := len(srv.Commands())
		for _, err := range runConcurrently(4, func(i int) error {
			return greedy.Create(ctx, createReq(fmt.Sprintf("pvc-cap%d", i), gib))
		}) {
			if err != nil {
				t.Errorf("refused session not retried: %v", err)
			}
		}
		if srv.RefusedSessions() == 0 {
			t.Error("no session was refused: the cap was not exercised")
		}
		creates := 0
		for _, cmd := range srv.Commands()[sent:] {
			if strings.HasPrefix(cmd, "/disk add") {
				creates++
			}
		}
		if creates != 4 {
			t.Errorf("%d creates reached the RDS, want the 4 creates once each", creates)
		}
		// Bounded: when the slot stays taken past the command timeout,
		// the command fails as not sent, in about the timeout.
		cfg.CommandTimeout = 600 * time.Millisecond
		bounded := newClient(t, cfg)
		if _, err := bounded.Version(ctx); err != nil { // connect and probe
			t.Fatal(err)
		}
		srv.SetFaults(sim.Faults{MaxSessions: 1, Latency: 2 * time.Second})
		holder := make(chan error, 1)
		go func() { _, err := greedy.Version(ctx); holder <- err }()
		time.Sleep(200 * time.Millisecond)
		start := time.Now()
		err := bounded.Create(ctx, createReq("pvc-cap-bounded", gib))
		took := time.Since(start)
		if !errors.Is(err, rds.ErrTimeout) || !retryable.Is(err) || rds.IsAmbiguous(err) {
			t.Errorf("refused past the timeout: %v, want retryable, unambiguous ErrTimeout", err)
		}
		if took > 600*time.Millisecond+time.Second {
			t.Errorf("took %v with a 600ms command timeout", took)
		}
		for _, cmd := range srv.Commands() {
			if strings.Contains(cmd, "pvc-cap-bounded") {
				t.Errorf("refused command was sent: %q", cmd)
			}
		}
		<-holder
	})
}

// TestSimCommandTimeout: a command slower than the command timeout fails
// in about the timeout with a retryable ErrTimeout; the connection stays
// usable; a write that timed out is ambiguous (it does land later).
func TestSimCommandTimeout(t *testing.T) {
	const timeout = 500 * time.Millisecond
	const margin = 700 * time.Millisecond
	srv := startSim(t, sim.Options{JSON: true})
	cfg := clientConfig(t, srv)
	cfg.CommandTimeout = timeout
	c := newClient(t, cfg)
	ctx := ctxT(t)
	if _, err := c.List(ctx); err != nil {
		t.Fatal(err)
	}

	srv.SetFaults(sim.Faults{SlowMatch: "/system resource", SlowLatency: 20 * time.Second})
	start := time.Now()
	_, err := c.Version(ctx)
	took := time.Since(start)
	t.Logf("read answered after 20s, command timeout %v: failed after %v: %v", timeout, took, err)
	if !errors.Is(err, rds.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) || !retryable.Is(err) || rds.IsAmbiguous(err) {
		t.Errorf("slow read: %v, want a retryable, unambiguous ErrTimeout", err)
	}
	if took < timeout || took > timeout+margin {
		t.Errorf("slow read failed after %v, want about %v", took, timeout)
	}
	// The other commands still run on the same connection.
	if _, err := c.List(ctx); err != nil {
		t.Fatalf("List after a timed-out command: %v", err)
	}
	if c.Dials() != 1 {
		t.Errorf("Dials = %d, want the connection kept", c.Dials())
	}

	srv.SetFaults(sim.Faults{SlowMatch: "/disk add", SlowLatency: time.Second})
	start = time.Now()
	err = c.Create(ctx, createReq("pvc-slow", gib))
	took = time.Since(start)
	t.Logf("write answered after 1s, command timeout %v: failed after %v: %v", timeout, took, err)
	if !errors.Is(err, rds.ErrTimeout) || !retryable.Is(err) || !rds.IsAmbiguous(err) {
		t.Errorf("slow write: %v, want a retryable, ambiguous ErrTimeout", err)
	}
	if took > timeout+margin {
		t.Errorf("slow write failed after %v", took)
	}
	n := 0
	for _, cmd := range srv.Commands() {
		if strings.HasPrefix(cmd, "/disk add") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("/disk add sent %d times, want once (never repeated behind the caller's back)", n)
	}
	// Ambiguous indeed: RouterOS finishes it after the client gave up,
	// which is why a caller reads the state before sending it again.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if d, err := c.Get(ctx, "pvc-slow"); err == nil && d.Size == gib {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the timed-out create never landed")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The caller's context bounds a command too, when it ends first.
	srv.SetFaults(sim.Faults{SlowMatch: "/disk set", SlowLatency: 5 * time.Second})
	short, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = c.Grow(short, "pvc-slow", 2*gib)
	if took := time.Since(start); took > 150*time.Millisecond+margin {
		t.Errorf("Grow took %v past a 150ms caller deadline", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !retryable.Is(err) || !rds.IsAmbiguous(err) {
		t.Errorf("Grow past the caller's deadline: %v, want retryable, ambiguous", err)
	}
}

// TestSimCommandTimeoutDefault: without commandTimeout, a command is still
// bounded, by three times the dial timeout.
func TestSimCommandTimeoutDefault(t *testing.T) {
	srv := startSim(t, sim.Options{JSON: true})
	cfg := clientConfig(t, srv)
	cfg.Timeout = 300 * time.Millisecond
	c := newClient(t, cfg)
	ctx := ctxT(t)
	if _, err := c.Version(ctx); err != nil {
		t.Fatal(err)
	}
	srv.SetFaults(sim.Faults{Latency: 120 * time.Second})
	start := time.Now()
	_, err := c.List(ctx)
	took := time.Since(start)
	if !errors.Is(err, rds.ErrTimeout) || took > 900*time.Millisecond+time.Second {
		t.Errorf("List answered after 120s: %v after %v, want ErrTimeout after about 900ms", err, took)
	}
}

func runConcurrently(n int, f func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	return errs
}

func TestSimConcurrentCallers(t *testing.T) {
	srv := startSim(t, sim.Options{JSON: true})
	c := newClient(t, clientConfig(t, srv))
	ctx := ctxT(t)
	errs := runConcurrently(16, func(i int) error {
		slot := fmt.Sprintf("pvc-c%02d", i)
		if err := c.Create(ctx, createReq(slot, gib)); err != nil {
			return err
		}
		if _, err := c.List(ctx); err != nil {
			return err
		}
		if err := c.Grow(ctx, slot, 2*gib); err != nil {
			return err
		}
		d, err := c.Get(ctx, slot)
		if err != nil {
			return err
		}
		if d.Size != 2*gib {
			return fmt.Errorf("%s size %d", slot, d.Size)
		}
		if i%2 == 0 {
			return c.Delete(ctx, slot, d.FilePath)
		}
		return nil
	})
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	inv, err := c.List(ctx)
	if err != nil || len(inv.Disks) != 8 {
		t.Fatalf("List = %d disks, %v", len(inv.Disks), err)
	}
	if _, err := c.Version(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Dials() != 1 || srv.Handshakes() != 1 {
		t.Errorf("Dials = %d, sim handshakes = %d; want one shared connection", c.Dials(), srv.Handshakes())
	}
}

func TestSimClose(t *testing.T) {
	srv := startSim(t, sim.Options{JSON: true})
	c := newClient(t, clientConfig(t, srv))
	ctx := ctxT(t)
	if _, err := c.Version(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Version(ctx); err == nil || retryable.Is(err) {
		t.Errorf("call after Close: %v, want a terminal error", err)
	}
}

// blackhole is a TCP proxy to a simulator that can silently swallow all
// traffic of the connections open at the moment of Freeze, like an RDS that
// lost power: no FIN, no RST, just silence.
type blackhole struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []*holeConn
}

type holeConn struct {
	mu       sync.Mutex
	frozen   bool
	down, up net.Conn
}

func (h *holeConn) isFrozen() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.frozen
}

func newBlackhole(t *testing.T, target string) *blackhole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, target: target}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			hc := &holeConn{down: c, up: up}
			b.mu.Lock()
			b.conns = append(b.conns, hc)
			b.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				defer dst.Close()
				defer src.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					if err != nil {
						return
					}
					if hc.isFrozen() {
						continue // swallowed
					}
					if _, err := dst.Write(buf[:n]); err != nil {
						return
					}
				}
			}
			go pipe(up, c)
			go pipe(c, up)
			t.Cleanup(func() { _ = c.Close(); _ = up.Close() })
		}
	}()
	return b
}

// Kill closes every connection open now, as a router reboot would.
func (b *blackhole) Kill() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		_ = c.down.Close()
		_ = c.up.Close()
	}
	b.conns = nil
}

// Freeze silences every connection open now; later ones pass.
func (b *blackhole) Freeze() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		c.mu.Lock()
		c.frozen = true
		c.mu.Unlock()
	}
}

func TestSimSilentPeer(t *testing.T) {
	srv := startSim(t, sim.Options{JSON: true})
	hole := newBlackhole(t, srv.Addr())
	cfg := clientConfig(t, srv)
	cfg.Address = hole.ln.Addr().String()
	cfg.KnownHostsFile = knownHosts(t, knownhosts.Line([]string{knownhosts.Normalize(cfg.Address)}, srv.HostKey()))
	// Long enough for a handshake on a loaded machine under -race.
	cfg.Timeout = time.Second
	t.Run("command-honours-deadline", func(t *testing.T) {
		c := newClient(t, cfg)
		if _, err := c.List(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		hole.Freeze()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := c.List(ctx); !errors.Is(err, context.DeadlineExceeded) || !retryable.Is(err) {
			t.Errorf("err = %v, want a retryable deadline error", err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("took %v", took)
		}
	})
	t.Run("write-after-connection-died", func(t *testing.T) {
		c := newClient(t, cfg)
		ctx := ctxT(t)
		if _, err := c.List(ctx); err != nil {
			t.Fatal(err)
		}
		hole.Kill()
		// Whether or not the client noticed the close yet, the write
		// had not been sent: it goes out once, on a fresh connection.
		if err := c.Create(ctx, createReq("pvc-after-kill", gib)); err != nil {
			t.Fatalf("Create after the connection died: %v", err)
		}
		n := 0
		for _, cmd := range srv.Commands() {
			if strings.Contains(cmd, `slot="pvc-after-kill"`) {
				n++
			}
		}
		if n != 1 || c.Dials() != 2 {
			t.Errorf("create sent %d times over %d dials, want once over 2", n, c.Dials())
		}
	})
	t.Run("idle-connection-redialled", func(t *testing.T) {
		cfg := cfg
		cfg.MaxIdle = 100 * time.Millisecond
		c := newClient(t, cfg)
		if _, err := c.List(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		hole.Freeze()
		// Idle past MaxIdle: the next command does not use the (dead)
		// connection at all, so it does not wait for anything.
		time.Sleep(300 * time.Millisecond)
		start := time.Now()
		if _, err := c.List(ctxT(t)); err != nil {
			t.Fatalf("List after the peer went silent: %v", err)
		}
		if took := time.Since(start); took > 900*time.Millisecond {
			t.Errorf("List took %v: it waited on the dead connection", took)
		}
		if c.Dials() != 2 {
			t.Errorf("Dials = %d, want 2 (the idle connection replaced once)", c.Dials())
		}
	})
	t.Run("unanswered-session-open-redials", func(t *testing.T) {
		cfg := cfg
		cfg.MaxIdle = -1
		c := newClient(t, cfg)
		ctx := ctxT(t)
		if _, err := c.List(ctx); err != nil {
			t.Fatal(err)
		}
		hole.Freeze()
		// The session open gets no answer within Timeout (1s): the
		// connection counts as dropped, nothing was sent, so even a write
		// goes out once on a fresh connection.
		start := time.Now()
		if err := c.Create(ctx, createReq("pvc-after-freeze", gib)); err != nil {
			t.Fatalf("Create after the peer went silent: %v", err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("Create took %v with a 1s timeout", took)
		}
		n := 0
		for _, cmd := range srv.Commands() {
			if strings.Contains(cmd, `slot="pvc-after-freeze"`) {
				n++
			}
		}
		if n != 1 || c.Dials() != 2 {
			t.Errorf("create sent %d times over %d dials, want once over 2", n, c.Dials())
		}
	})
}

// TestSimGlobalRequests: whatever RouterOS does with SSH global requests
// (answer failure, never answer, or SSH_MSG_UNIMPLEMENTED, which makes an
// x/crypto/ssh client drop the connection), the client keeps working
// through long idle periods and slow commands, because it never sends one.
func TestSimGlobalRequests(t *testing.T) {
	for name, mode := range map[string]sim.GlobalMode{"reject": sim.GlobalReject, "ignore": sim.GlobalIgnore, "unimplemented": sim.GlobalUnimplemented} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := startSim(t, sim.Options{JSON: true, Faults: sim.Faults{GlobalRequests: mode}})
			cfg := clientConfig(t, srv)
			cfg.Timeout = time.Second
			cfg.KeepAlive = 50 * time.Millisecond // TCP: the kernel rounds up to 1s
			cfg.MaxIdle = 300 * time.Millisecond
			c := newClient(t, cfg)
			ctx := ctxT(t)
			if _, err := c.Version(ctx); err != nil {
				t.Fatal(err)
			}
			// A long idle period: many former keepalive intervals, longer
			// than Timeout and MaxIdle.
			time.Sleep(1200 * time.Millisecond)
			if _, err := c.List(ctx); err != nil {
				t.Fatalf("List after idling: %v", err)
			}
			// Commands in flight longer than Timeout: not cut short.
			srv.SetFaults(sim.Faults{GlobalRequests: mode, Latency: 1500 * time.Millisecond})
			errs := runConcurrently(2, func(i int) error {
				if i == 0 {
					return c.Create(ctx, createReq("pvc-slow", gib))
				}
				_, err := c.Capacity(ctx)
				return err
			})
			for _, err := range errs {
				if err != nil {
					t.Errorf("command in flight: %v", err)
				}
			}
			srv.SetFaults(sim.Faults{GlobalRequests: mode})
			if d, err := c.Get(ctx, "pvc-slow"); err != nil || d.Size != gib {
				t.Errorf("Get = %+v, %v", d, err)
			}
			if n := srv.GlobalRequests(); n != 0 {
				t.Errorf("the client sent %d SSH global requests, want none", n)
			}
			// One dial, one re-dial after the idle period.
			if c.Dials() != 2 {
				t.Errorf("Dials = %d, want 2", c.Dials())
			}
		})
	}
}

// TestSimJSONFallback: if RouterOS cuts or mangles the JSON of a listing
// (long :put strings), List falls back to print detail and stays there.
func TestSimJSONFallback(t *testing.T) {
	srv := startSim(t, sim.Options{JSON: true})
	c := newClient(t, clientConfig(t, srv))
	ctx := ctxT(t)
	if err := c.Create(ctx, createReq("pvc-a", gib)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.List(ctx); err != nil { // probe: JSON
		t.Fatal(err)
	}
	// Cut JSON makes List page; a cut page too, print detail.
	cut := "##rds-reconcile:disks\n[{\".id\":\"*2\",\"slot\":\"pvc-a\",\"si\n##rds-reconcile:files\n[]\n##rds-reconcile:pool\n[]\n##rds-reconcile:end\n"
	cutPage := "##rds-reconcile:disks:0\n[{\".id\":\"*2\",\"slot\":\"pvc-a\",\"si\n##rds-reconcile:files:0\n[]\n##rds-reconcile:pool\n[]\n##rds-reconcile:end\n"
	srv.SetFaults(sim.Faults{FailNext: []string{cut, cutPage}})
	sent := len(srv.Commands())
	inv, err := c.List(ctx)
	if err != nil || len(inv.Disks) != 1 || inv.Disks[0].Size != gib {
		t.Fatalf("List = %+v, %v", inv, err)
	}
	cmds := srv.Commands()[sent:]
	if len(cmds) != 3 || strings.Contains(cmds[0], "disks:0") || !strings.Contains(cmds[1], "disks:0") ||
		strings.Contains(cmds[2], "serialize") {
		t.Errorf("fallback commands = %q, want the JSON list, the paged JSON list, then a detail list", cmds)
	}
	if _, err := c.List(ctx); err != nil {
		t.Fatal(err)
	}
	if last := srv.Commands()[len(srv.Commands())-1]; strings.Contains(last, "serialize") {
		t.Errorf("JSON used again after it proved unusable: %s", last)
	}
}
