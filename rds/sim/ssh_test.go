package sim

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// startServer runs a simulator on a loopback port for the test's lifetime.
func startServer(t testing.TB, opts Options) *Server {
	t.Helper()
	s := newTestServer(t, opts)
	if err := s.Start(context.Background(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	return s
}

func clientConfig(s *Server, user string) *ssh.ClientConfig {
	return &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(s.ClientSigner())},
		HostKeyCallback: ssh.FixedHostKey(s.HostKey()),
		Timeout:         5 * time.Second,
	}
}

func dial(t testing.TB, s *Server, user string) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", s.Addr(), clientConfig(s, user))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// run executes one command line the way the client does: one session each.
func run(c *ssh.Client, cmd string) (string, error) {
	sess, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer sess.Close()
	out, err := sess.Output(cmd)
	return string(out), err
}

func mustRun(t testing.TB, c *ssh.Client, cmd string) string {
	t.Helper()
	out, err := run(c, cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return out
}

func TestSSHErrorsAreTextWithExitZero(t *testing.T) {
	s := startServer(t, Options{})
	c := dial(t, s, "admin")
	for _, tc := range []struct{ cmd, want string }{
		{`/nonsense`, "bad command name nonsense (line 1 column 2)\n"},
		{`/disk set x file-size=1G`, "no such item\n"},
		{`/disk set [find slot="x"] file-size=1G`, ""}, // an empty find does nothing, silently
		{`/disk add type=file file-path=storage-pool/a.img file-size=1000T slot=a`, "failure: not enough space\n"},
		{`/disk add type=file file-path=storage-pool/a.img file-size=1G slot=a`, ""},
		{`:put [:serialize to=json [/disk print as-value]]`, "bad command name serialize (line 1 column 8)\n"},
		{`/disk add type=file file-path=storage-pool/b.img file-size=1G slot=a`, "failure: slot already used\n"},
	} {
		cmd, want := tc.cmd, tc.want
		got := mustRun(t, c, cmd) // err == nil means exit status 0
		if got != want {
			t.Errorf("%s: got %q, want %q", cmd, got, want)
		}
	}
}

func TestSSHWidthFromLogin(t *testing.T) {
	s := startServer(t, Options{})
	mustExec(t, s, refAdd)
	narrow := mustRun(t, dial(t, s, "admin+ct40w"), `/disk print detail where slot~"^pvc"`)
	wide := mustRun(t, dial(t, s, "admin+ct200w"), `/disk print detail where slot~"^pvc"`)
	if want := s.Exec(`/disk print detail where slot~"^pvc"`); mustRun(t, dial(t, s, "admin"), `/disk print detail where slot~"^pvc"`) != want {
		t.Error("plain login does not wrap at 80")
	}
	// At 200 columns only the field groups break lines: header, 10 groups,
	// the blank line after the item.
	if n, w := strings.Count(narrow, "\n"), strings.Count(wide, "\n"); n <= w || w != 12 {
		t.Errorf("lines at 40: %d, at 200: %d (want more at 40, 12 at 200)\n%s\n%s", n, w, narrow, wide)
	}
}

func TestSSHAuth(t *testing.T) {
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherSigner, _ := ssh.NewSignerFromKey(other)
	s := startServer(t, Options{Password: "s3cret"})
	cfg := clientConfig(s, "admin")
	cfg.Auth = []ssh.AuthMethod{ssh.PublicKeys(otherSigner)}
	if c, err := ssh.Dial("tcp", s.Addr(), cfg); err == nil {
		c.Close()
		t.Error("unknown key accepted")
	}
	cfg.Auth = []ssh.AuthMethod{ssh.Password("wrong")}
	if c, err := ssh.Dial("tcp", s.Addr(), cfg); err == nil {
		c.Close()
		t.Error("wrong password accepted")
	}
	cfg.Auth = []ssh.AuthMethod{ssh.Password("s3cret")}
	c, err := ssh.Dial("tcp", s.Addr(), cfg)
	if err != nil {
		t.Fatalf("password: %v", err)
	}
	c.Close()
	// Authorized extra keys work too.
	s2 := startServer(t, Options{AuthorizedKeys: []ssh.PublicKey{otherSigner.PublicKey()}})
	cfg = clientConfig(s2, "admin")
	cfg.Auth = []ssh.AuthMethod{ssh.PublicKeys(otherSigner)}
	if c, err = ssh.Dial("tcp", s2.Addr(), cfg); err != nil {
		t.Fatalf("authorized key: %v", err)
	}
	c.Close()
	// The PEM key parses and is the authorized one.
	signer, err := ssh.ParsePrivateKey(s2.ClientKeyPEM())
	if err != nil || string(signer.PublicKey().Marshal()) != string(s2.ClientSigner().PublicKey().Marshal()) {
		t.Fatalf("ClientKeyPEM: %v", err)
	}
}

func TestSSHOneConnectionManyCommands(t *testing.T) {
	s := startServer(t, Options{JSON: true})
	c := dial(t, s, "admin")
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slot := fmt.Sprintf("pvc-%02d", i)
			out, err := run(c, fmt.Sprintf(`/disk add type=file file-path=storage-pool/volumes/%s.img file-size=1G slot=%s nvme-tcp-export=yes`, slot, slot))
			if err != nil || out != "" {
				errs <- fmt.Errorf("%s: %q %v", slot, out, err)
				return
			}
			out, err = run(c, fmt.Sprintf(`:put [:serialize to=json [/disk print detail as-value where slot=%q]]`, slot))
			if err != nil || !strings.Contains(out, `"slot":"`+slot+`"`) {
				errs <- fmt.Errorf("%s: %q %v", slot, out, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := s.Handshakes(); got != 1 {
		t.Errorf("handshakes = %d, want 1", got)
	}
	if got := len(s.Commands()); got != 32 {
		t.Errorf("commands = %d, want 32", got)
	}
	if got := len(s.Disks()); got != 16 {
		t.Errorf("disks = %d, want 16", got)
	}
}

func TestFaultLatency(t *testing.T) {
	s := startServer(t, Options{})
	s.SetFaults(Faults{HandshakeLatency: 150 * time.Millisecond, Latency: 100 * time.Millisecond})
	start := time.Now()
	c := dial(t, s, "admin")
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("handshake took %v, want >= 150ms", d)
	}
	start = time.Now()
	mustRun(t, c, `/disk print`)
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("command took %v, want >= 100ms", d)
	}
}

func TestFaultDropAfter(t *testing.T) {
	s := startServer(t, Options{})
	s.SetFaults(Faults{DropAfter: 2})
	c := dial(t, s, "admin")
	mustRun(t, c, `:put 1`)
	mustRun(t, c, `:put 2`)
	if out, err := run(c, `/disk add type=file file-path=storage-pool/a.img file-size=1G slot=a`); err == nil {
		t.Fatalf("third command answered %q, want dropped connection", out)
	}
	if len(s.Disks()) != 0 {
		t.Error("a dropped command ran")
	}
	// The connection is gone; a new one works and the count starts again.
	c2 := dial(t, s, "admin")
	for i := range 2 {
		if out := mustRun(t, c2, fmt.Sprintf(`:put %d`, i)); out != fmt.Sprintf("%d\n", i) {
			t.Errorf("got %q", out)
		}
	}
	if _, err := run(c2, `:put x`); err == nil {
		t.Error("second drop did not happen")
	}
	if s.Handshakes() != 2 {
		t.Errorf("handshakes = %d, want 2", s.Handshakes())
	}
}

func TestFaultDropProbability(t *testing.T) {
	s := startServer(t, Options{})
	s.SetFaults(Faults{DropProbability: 1})
	c := dial(t, s, "admin")
	if _, err := run(c, `:put x`); err == nil {
		t.Error("not dropped at probability 1")
	}
	s.SetFaults(Faults{})
	if out := mustRun(t, dial(t, s, "admin"), `:put x`); out != "x\n" {
		t.Errorf("got %q", out)
	}
}

func TestFaultFailNext(t *testing.T) {
	s := startServer(t, Options{})
	s.SetFaults(Faults{FailNext: []string{"failure: not enough space", "action cancelled"}})
	c := dial(t, s, "admin")
	add := `/disk add type=file file-path=storage-pool/a.img file-size=1G slot=a`
	for _, want := range []string{"failure: not enough space\n", "action cancelled\n", ""} {
		if got := mustRun(t, c, add); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	if len(s.Disks()) != 1 {
		t.Errorf("disks = %d, want 1 (failed commands must not run)", len(s.Disks()))
	}
}

func TestFaultMaxSessions(t *testing.T) {
	s := startServer(t, Options{})
	s.SetFaults(Faults{MaxSessions: 1})
	c := dial(t, s, "admin")
	// An open shell holds the one session.
	held, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	stdin, _ := held.StdinPipe()
	stdout, _ := held.StdoutPipe()
	if err := held.Shell(); err != nil {
		t.Fatal(err)
	}
	if _, err := run(c, `:put x`); err == nil {
		t.Error("second session accepted over the cap")
	}
	// The shell still works, then frees its slot.
	io.WriteString(stdin, ":put hello\n")
	buf := make([]byte, 6)
	if _, err := io.ReadFull(stdout, buf); err != nil || string(buf) != "hello\n" {
		t.Errorf("shell: %q %v", buf, err)
	}
	io.WriteString(stdin, "quit\n")
	held.Wait()
	held.Close()
	deadline := time.Now().Add(2 * time.Second)
	for {
		out, err := run(c, `:put x`)
		if err == nil && out == "x\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session slot not released: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCloseDropsClients(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s, "admin")
	mustRun(t, c, `:put x`)
	// A client stuck before its handshake must not hold Close up.
	raw, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	cancel()
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs")
	}
	if _, err := run(c, `:put x`); err == nil {
		t.Error("client still served after Close")
	}
}

func TestKnownHostsLine(t *testing.T) {
	s := startServer(t, Options{})
	line := s.KnownHostsLine()
	_, port, _ := net.SplitHostPort(s.Addr())
	if !strings.HasPrefix(line, "[127.0.0.1]:"+port+" ssh-ed25519 ") {
		t.Errorf("known hosts line %q", line)
	}
}

func TestSSHShellWithPTY(t *testing.T) {
	s := startServer(t, Options{})
	c := dial(t, s, "admin")
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.RequestPty("vt100", 40, 80, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	stdin, _ := sess.StdinPipe()
	var out strings.Builder
	sess.Stdout = &out
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, ":put hello\r")
	io.WriteString(stdin, "quit\r")
	if err := sess.Wait(); err != nil {
		t.Fatalf("shell exit: %v", err)
	}
	if !strings.Contains(out.String(), "[admin@RDS] > ") || !strings.Contains(out.String(), "hello\r\n") {
		t.Errorf("shell output %q", out.String())
	}
}

func TestSSHCRLF(t *testing.T) {
	s := startServer(t, Options{CRLF: true})
	s.SetFaults(Faults{FailNext: []string{"failure: busy"}})
	c := dial(t, s, "admin")
	if out := mustRun(t, c, `:put a`); out != "failure: busy\r\n" {
		t.Errorf("got %q", out)
	}
	if out := mustRun(t, c, `:put a; :put b`); out != "a\r\nb\r\n" {
		t.Errorf("got %q", out)
	}
	if out := s.Exec(`:put a`); out != "a\n" {
		t.Errorf("Exec got %q", out)
	}
}

// TestFaultGlobalRequests: each way of answering a global request, seen
// from an x/crypto/ssh client sending keepalive@openssh.com.
func TestFaultGlobalRequests(t *testing.T) {
	keepalive := func(c *ssh.Client) (bool, error) {
		type result struct {
			ok  bool
			err error
		}
		ch := make(chan result, 1)
		go func() {
			ok, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
			ch <- result{ok, err}
		}()
		select {
		case r := <-ch:
			return r.ok, r.err
		case <-time.After(500 * time.Millisecond):
			return false, context.DeadlineExceeded
		}
	}
	t.Run("reject", func(t *testing.T) {
		s := startServer(t, Options{})
		c := dial(t, s, "admin")
		if ok, err := keepalive(c); ok || err != nil {
			t.Errorf("reply = %v, %v; want a failure reply", ok, err)
		}
		if out := mustRun(t, c, `:put x`); out != "x\n" {
			t.Errorf("after the request: %q", out)
		}
	})
	t.Run("ignore", func(t *testing.T) {
		s := startServer(t, Options{Faults: Faults{GlobalRequests: GlobalIgnore}})
		c := dial(t, s, "admin")
		if _, err := keepalive(c); err != context.DeadlineExceeded {
			t.Errorf("err = %v, want no reply at all", err)
		}
		if out := mustRun(t, c, `:put x`); out != "x\n" {
			t.Errorf("sessions still work: %q", out)
		}
	})
	t.Run("unimplemented", func(t *testing.T) {
		s := startServer(t, Options{Faults: Faults{GlobalRequests: GlobalUnimplemented}})
		c := dial(t, s, "admin")
		if _, err := keepalive(c); err == nil || err == context.DeadlineExceeded {
			t.Errorf("err = %v, want the connection gone", err)
		}
		if _, err := run(c, `:put x`); err == nil {
			t.Error("a session opened on the dropped connection")
		}
		if s.GlobalRequests() != 1 {
			t.Errorf("GlobalRequests = %d", s.GlobalRequests())
		}
	})
}

// TestFaultSlowMatch: only commands containing SlowMatch are slow.
func TestFaultSlowMatch(t *testing.T) {
	s := startServer(t, Options{})
	s.SetFaults(Faults{SlowMatch: "/disk add", SlowLatency: 400 * time.Millisecond})
	c := dial(t, s, "admin")
	start := time.Now()
	mustRun(t, c, `:put x`)
	if took := time.Since(start); took > 300*time.Millisecond {
		t.Errorf(":put took %v", took)
	}
	start = time.Now()
	mustRun(t, c, `/disk add type=file file-path=storage-pool/a.img file-size=1G slot=a`)
	if took := time.Since(start); took < 400*time.Millisecond {
		t.Errorf("/disk add took %v, want >= 400ms", took)
	}
}
