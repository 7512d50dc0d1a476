package sim

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"golang.org/x/term"
)

// Options configure a simulated RDS.
type Options struct {
	// Backend stores and exports the disks' files; NewMemoryBackend(1<<40)
	// when nil. The server closes it on Close.
	Backend Backend
	// PoolSize overrides the backend's capacity as the storage pool's size.
	PoolSize int64
	// JSON enables :serialize to=json (RouterOS >= 7.13); without it the
	// simulator answers like an older RouterOS ("bad command name serialize").
	JSON bool
	// Version is the RouterOS release played (see Versions): what /system
	// resource prints, and the profile: :serialize from 7.13,
	// options=json.no-string-conversion from 7.17, /disk
	// nvme-tcp-server-nqn from 7.21 (nvme-tcp-name before). NewestVersion
	// by default, "7.12" when JSON is off.
	Version string
	// Width is the console width `print detail` wraps at (80 by default); a
	// login name such as "admin+ct120w" sets it per connection.
	Width int
	// Password, when set, is accepted for any user besides the keys.
	Password string
	// AuthorizedKeys may log in, as does the generated (or given) client key.
	AuthorizedKeys []ssh.PublicKey
	// HostKey is the server's key; an ed25519 key is generated when nil.
	HostKey ssh.Signer
	// ClientKey is the authorized client key ClientKeyPEM returns; one is
	// generated when nil.
	ClientKey ed25519.PrivateKey
	// Logger receives connection and command logs; discarded when nil.
	Logger *slog.Logger
	// StatePath, when set, keeps disks and files in this JSON file so a
	// restarted simulator finds them again.
	StatePath string
	// Now is the clock (time.Now when nil); tests pin it for stable output.
	Now func() time.Time
	// Faults are in force from the first connection; SetFaults changes them.
	Faults Faults
	// CRLF ends lines over SSH with "\r\n" as a RouterOS console does; off
	// by default. Exec always uses "\n".
	CRLF bool
}

// Faults are misbehaviours injected into the SSH service. The zero value
// injects nothing.
type Faults struct {
	// Latency delays every command; HandshakeLatency every new connection.
	Latency, HandshakeLatency time.Duration
	// SessionLatency delays every SSH session once, before its first
	// request is answered: the fixed cost of a round trip to an RDS that
	// benchmarks charge (an exec session, one command line, pays it once
	// however many commands the line holds). Sessions run concurrently,
	// so concurrent sessions pay it side by side.
	SessionLatency time.Duration
	// DropAfter N: after N commands are answered, the next one drops its TCP
	// connection unanswered and the count starts again (0 = never).
	DropAfter int
	// DropProbability drops the connection instead of answering a command.
	DropProbability float64
	// FailNext: the next len(FailNext) commands answer these texts instead of
	// running (e.g. "failure: not enough space").
	FailNext []string
	// MaxSessions caps concurrent SSH sessions; more are refused (0 = no cap).
	MaxSessions int
	// GlobalRequests says how connection-level requests (for example
	// keepalive@openssh.com) are answered: GlobalReject (the default, as
	// any x/crypto/ssh server), GlobalIgnore or GlobalUnimplemented.
	GlobalRequests GlobalMode
	// SlowMatch, when not empty, delays every command line containing it
	// by SlowLatency (on top of Latency) before it runs, so one command
	// can be slower than a client's command timeout while others are not.
	// The command still runs after the delay, as RouterOS would finish it.
	SlowMatch   string
	SlowLatency time.Duration
	// MaxPutBytes, when positive, cuts the string every :put prints to its
	// first MaxPutBytes bytes, as RouterOS might cap a long string (whether
	// and where it does is unverified): a large :serialize to=json then
	// prints cut JSON.
	MaxPutBytes int
}

// GlobalMode is how the simulator answers SSH global requests.
type GlobalMode string

const (
	// GlobalReject answers every global request with a failure, as
	// x/crypto/ssh servers do (ssh.DiscardRequests).
	GlobalReject GlobalMode = ""
	// GlobalIgnore never answers: a client waiting for the reply waits
	// forever.
	GlobalIgnore GlobalMode = "ignore"
	// GlobalUnimplemented emulates an SSH_MSG_UNIMPLEMENTED reply.
	// x/crypto/ssh's server side cannot send that message (its packet
	// writer is unexported and a global request's reply is success or
	// failure only), so the simulator does what the message does to an
	// x/crypto/ssh client: the client's read loop treats message 3 as a
	// packet of an unknown channel and fails ("ssh: unexpected message
	// type 3"), which closes the connection. The simulator closes the TCP
	// connection at once instead, with every session on it.
	GlobalUnimplemented GlobalMode = "unimplemented"
)

// Server is a simulated RDS speaking RouterOS over SSH.
type Server struct {
	opts       Options
	log        *slog.Logger
	backend    Backend
	poolName   string
	poolSize   int64
	version    string
	prof       profile
	started    time.Time
	now        func() time.Time
	hostSigner ssh.Signer
	clientKey  ed25519.PrivateKey
	authorized map[string]bool
	cfg        *ssh.ServerConfig

	// mu serialises scripts: each runs atomically against st.
	mu sync.Mutex
	st *state

	fmu      sync.Mutex // guards the fields below
	faults   Faults
	cmdCount int
	commands []string
	sessions int
	conns    map[net.Conn]struct{}
	ln       net.Listener
	cancel   context.CancelFunc
	closed   bool

	handshakes     atomic.Int64
	globalRequests atomic.Int64
	refused        atomic.Int64
	sessionsOpened atomic.Int64
	statements     atomic.Int64
	wg             sync.WaitGroup

	// Set by ServeDir, for TargetYAML.
	keyFile, knownHostsFile string
}

// New prepares a simulator; Start serves it.
func New(opts Options) (*Server, error) {
	s := &Server{opts: opts, poolName: "storage-pool", conns: map[net.Conn]struct{}{}}
	s.faults = opts.Faults
	s.faults.FailNext = append([]string(nil), opts.Faults.FailNext...)
	s.log = opts.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.now = opts.Now
	if s.now == nil {
		s.now = time.Now
	}
	s.started = s.now()
	if s.opts.Width <= 0 {
		s.opts.Width = 80
	}
	s.version = opts.Version
	if s.version == "" {
		s.version = "7.12"
		if opts.JSON {
			s.version = NewestVersion
		}
	}
	s.prof = profileOf(s.version, opts.JSON)
	s.backend = opts.Backend
	if s.backend == nil {
		s.backend = NewMemoryBackend(1 << 40)
	}
	s.poolSize = opts.PoolSize
	if s.poolSize <= 0 {
		s.poolSize, _ = s.backend.Capacity()
	}
	var err error
	if opts.StatePath != "" {
		if s.st, err = loadState(opts.StatePath); err != nil {
			return nil, err
		}
	} else {
		s.st = newState()
	}
	s.hostSigner = opts.HostKey
	if s.hostSigner == nil {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate host key: %w", err)
		}
		if s.hostSigner, err = ssh.NewSignerFromKey(priv); err != nil {
			return nil, fmt.Errorf("host key: %w", err)
		}
	}
	s.clientKey = opts.ClientKey
	if s.clientKey == nil {
		if _, s.clientKey, err = ed25519.GenerateKey(rand.Reader); err != nil {
			return nil, fmt.Errorf("generate client key: %w", err)
		}
	}
	clientPub, err := ssh.NewPublicKey(s.clientKey.Public())
	if err != nil {
		return nil, fmt.Errorf("client key: %w", err)
	}
	s.authorized = map[string]bool{string(clientPub.Marshal()): true}
	for _, k := range opts.AuthorizedKeys {
		s.authorized[string(k.Marshal())] = true
	}
	s.cfg = &ssh.ServerConfig{
		ServerVersion: "SSH-2.0-ROSSSH",
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if s.authorized[string(key.Marshal())] {
				return nil, nil
			}
			return nil, errors.New("public key not authorized")
		},
	}
	if opts.Password != "" {
		s.cfg.PasswordCallback = func(_ ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			if subtle.ConstantTimeCompare(pw, []byte(opts.Password)) == 1 {
				return nil, nil
			}
			return nil, errors.New("password rejected")
		}
	}
	s.cfg.AddHostKey(s.hostSigner)
	return s, nil
}

// Start listens on addr (e.g. "127.0.0.1:0") and serves in the background
// until ctx ends or Close is called. Disks persisted as exported are
// exported again first.
func (s *Server) Start(ctx context.Context, addr string) error {
	s.mu.Lock()
	for _, d := range s.st.Disks {
		if e := d.export(); e.On {
			if err := s.backend.Export(ctx, e); err != nil {
				s.mu.Unlock()
				return fmt.Errorf("re-export %s: %w", d.Slot, err)
			}
		}
	}
	s.mu.Unlock()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("sim listen: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	s.fmu.Lock()
	if s.closed {
		s.fmu.Unlock()
		cancel()
		ln.Close()
		return errors.New("sim: server closed")
	}
	s.ln, s.cancel = ln, cancel
	s.fmu.Unlock()
	s.log.Info("RouterOS simulator listening", "addr", ln.Addr().String(), "json", s.opts.JSON, "version", s.version)
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		<-ctx.Done()
		ln.Close()
		s.fmu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.fmu.Unlock()
	}()
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if ctx.Err() == nil {
					s.log.Error("sim accept", "err", err)
					cancel()
				}
				return
			}
			s.fmu.Lock()
			if ctx.Err() != nil {
				// The closer already ran: it would never see this one.
				s.fmu.Unlock()
				c.Close()
				return
			}
			s.conns[c] = struct{}{}
			s.fmu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serveConn(ctx, c)
			}()
		}
	}()
	return nil
}

// Addr is the listening address ("127.0.0.1:34567"), "" before Start.
func (s *Server) Addr() string {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close stops serving, drops every connection and closes the backend.
func (s *Server) Close() error {
	s.fmu.Lock()
	if s.closed {
		s.fmu.Unlock()
		return nil
	}
	s.closed = true
	cancel := s.cancel
	s.fmu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.wg.Wait()
	return s.backend.Close()
}

// HostKey is the server's public host key.
func (s *Server) HostKey() ssh.PublicKey { return s.hostSigner.PublicKey() }

// ClientKeyPEM is the authorized client private key (ed25519, OpenSSH PEM).
func (s *Server) ClientKeyPEM() []byte {
	blk, err := ssh.MarshalPrivateKey(s.clientKey, "")
	if err != nil {
		return nil
	}
	return pem.EncodeToMemory(blk)
}

// ClientSigner is the authorized client key as a signer, for tests.
func (s *Server) ClientSigner() ssh.Signer {
	sg, err := ssh.NewSignerFromKey(s.clientKey)
	if err != nil {
		return nil
	}
	return sg
}

// KnownHostsLine is a known_hosts line for Addr() and the host key.
func (s *Server) KnownHostsLine() string {
	return knownhosts.Line([]string{knownhosts.Normalize(s.Addr())}, s.HostKey())
}

// SetFaults replaces the injected faults; the drop counter restarts.
func (s *Server) SetFaults(f Faults) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	f.FailNext = append([]string(nil), f.FailNext...)
	s.faults = f
	s.cmdCount = 0
}

// Commands returns every command line received over SSH, in order.
func (s *Server) Commands() []string {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	return append([]string(nil), s.commands...)
}

// Handshakes counts completed SSH handshakes (one per TCP connection).
func (s *Server) Handshakes() int64 { return s.handshakes.Load() }

// GlobalRequests counts SSH global requests received (keepalives and the
// like), whatever Faults.GlobalRequests did with them.
func (s *Server) GlobalRequests() int64 { return s.globalRequests.Load() }

// Sessions counts the SSH sessions accepted so far (refused ones are not
// counted): the round trips a client made.
func (s *Server) Sessions() int64 { return s.sessionsOpened.Load() }

// Statements counts the RouterOS menu commands run so far (print, add,
// set, remove...; not the [find] and get inside them, nor :put): the
// work a command line asked of RouterOS, however many a session carried.
func (s *Server) Statements() int64 { return s.statements.Load() }

// RefusedSessions counts session opens refused by Faults.MaxSessions.
func (s *Server) RefusedSessions() int64 { return s.refused.Load() }

// Exec runs a script in-process, without faults and without recording it,
// and returns what RouterOS would print. For seeding and assertions.
func (s *Server) Exec(line string) string {
	return s.run(context.Background(), line, s.opts.Width)
}

// Disk is a snapshot of one file-backed disk, for assertions.
type Disk struct {
	Slot     string
	Type     string
	FilePath string // no leading '/'
	Size     int64
	Export   bool
	Port     int
	NQN      string // the effective NQN (the slot when none was set)
	Comment  string
	Disabled bool
	// MountFilesystem is RouterOS's mount-filesystem (default yes).
	MountFilesystem bool
	// AllowHost is nvme-tcp-server-allow-host-name as set ("" = any host).
	AllowHost string
}

// File is a snapshot of one file.
type File struct {
	Name string // no leading '/'
	Size int64
}

// Disks returns the file-backed disks (the pool itself is not listed).
func (s *Server) Disks() []Disk {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Disk, 0, len(s.st.Disks))
	for _, d := range s.st.Disks {
		var size int64
		if f := s.st.byName[d.FilePath]; f != nil {
			size = f.Size
		}
		out = append(out, Disk{Slot: d.Slot, Type: "file", FilePath: d.FilePath, Size: size,
			Export: d.Export, Port: d.Port, NQN: d.nqn(), Comment: d.Comment, Disabled: d.Disabled,
			MountFilesystem: !d.NoMountFS, AllowHost: d.AllowHost})
	}
	return out
}

// Files returns every file.
func (s *Server) Files() []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]File, 0, len(s.st.Files))
	for _, f := range s.st.Files {
		out = append(out, File{Name: f.Name, Size: f.Size})
	}
	return out
}

// Pool returns the storage pool's size and free bytes.
func (s *Server) Pool() (size, free int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.poolSize, s.poolSize - s.st.used
}

// Version is the RouterOS release the simulator plays.
func (s *Server) Version() string { return s.version }

// NQNProperty is the /disk property holding an export's NQN in the release
// played: nvme-tcp-server-nqn from 7.21, nvme-tcp-name before.
func (s *Server) NQNProperty() string { return s.prof.nqnProperty() }

// SeedDiskSize is the size of each disk SeedDisks creates.
const SeedDiskSize int64 = 8 << 20

// SeedDisks adds n exported disks named prefix00000, prefix00001, ... of
// SeedDiskSize each, under storage-pool/volumes, for benchmarks.
func (s *Server) SeedDisks(n int, prefix string) error {
	const chunk = 500
	for start := 0; start < n; start += chunk {
		var b strings.Builder
		for i := start; i < min(n, start+chunk); i++ {
			slot := fmt.Sprintf("%s%05d", prefix, i)
			fmt.Fprintf(&b, "/disk add type=file file-path=%s/volumes/%s.img file-size=%d slot=%s "+
				"nvme-tcp-export=yes nvme-tcp-server-port=4420 %s=%s\n",
				s.poolName, slot, SeedDiskSize, quote(slot), s.prof.nqnProperty(), quote("nqn.2000-02.com.mikrotik:"+slot))
		}
		if out := s.Exec(b.String()); out != "" {
			return fmt.Errorf("seed disks: %s", strings.TrimSpace(out))
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

const handshakeTimeout = 30 * time.Second

var widthRe = regexp.MustCompile(`(\d+)w`)

// widthFor reads the console width from a login name such as
// "admin+ct120w"; RouterOS takes terminal options after '+'.
func widthFor(user string, def int) int {
	i := strings.LastIndexByte(user, '+')
	if i < 0 {
		return def
	}
	m := widthRe.FindStringSubmatch(user[i+1:])
	if m == nil {
		return def
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n < 20 || n > 10000 {
		return def
	}
	return n
}

func (s *Server) forget(c net.Conn) {
	s.fmu.Lock()
	delete(s.conns, c)
	s.fmu.Unlock()
}

// drop closes a connection abruptly, with a TCP reset where possible.
func drop(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer s.forget(c)
	defer c.Close()
	s.fmu.Lock()
	hl := s.faults.HandshakeLatency
	s.fmu.Unlock()
	sleepCtx(ctx, hl)
	// A client that never finishes its handshake must not hold Close up.
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	sc, chans, reqs, err := ssh.NewServerConn(c, s.cfg)
	if err != nil {
		s.log.Debug("sim handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	_ = c.SetDeadline(time.Time{})
	defer sc.Close()
	s.handshakes.Add(1)
	go s.serveGlobal(c, reqs)
	width := widthFor(sc.User(), s.opts.Width)
	s.log.Debug("sim connection", "remote", c.RemoteAddr().String(), "user", sc.User(), "width", width)
	var sessions sync.WaitGroup
	defer sessions.Wait()
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "unknown channel type")
			continue
		}
		if !s.acquireSession() {
			s.refused.Add(1)
			_ = nc.Reject(ssh.ResourceShortage, "too many sessions")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			s.releaseSession()
			continue
		}
		sessions.Add(1)
		s.sessionsOpened.Add(1)
		go func() {
			defer sessions.Done()
			release := sync.OnceFunc(s.releaseSession)
			defer release()
			s.fmu.Lock()
			sl := s.faults.SessionLatency
			s.fmu.Unlock()
			sleepCtx(ctx, sl)
			s.serveSession(ctx, c, ch, creqs, width, release)
		}()
	}
}

// serveGlobal answers global requests as Faults.GlobalRequests says.
func (s *Server) serveGlobal(c net.Conn, reqs <-chan *ssh.Request) {
	for req := range reqs {
		s.globalRequests.Add(1)
		s.fmu.Lock()
		mode := s.faults.GlobalRequests
		s.fmu.Unlock()
		s.log.Debug("sim global request", "type", req.Type, "mode", string(mode))
		switch mode {
		case GlobalIgnore:
			// Never answered.
		case GlobalUnimplemented:
			drop(c)
		default:
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
		}
	}
}

func (s *Server) acquireSession() bool {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if s.faults.MaxSessions > 0 && s.sessions >= s.faults.MaxSessions {
		return false
	}
	s.sessions++
	return true
}

func (s *Server) releaseSession() {
	s.fmu.Lock()
	s.sessions--
	s.fmu.Unlock()
}

// release frees the session's place under Faults.MaxSessions; an exec
// session frees it once its answer is complete, before the client can see
// the end of it, so a client that waits for one command to end before
// opening the next session never trips the cap.
func (s *Server) serveSession(ctx context.Context, c net.Conn, ch ssh.Channel, reqs <-chan *ssh.Request, width int, release func()) {
	defer ch.Close()
	pty := false
	for req := range reqs {
		switch req.Type {
		case "exec":
			var p struct{ Command string }
			if err := ssh.Unmarshal(req.Payload, &p); err != nil {
				_ = req.Reply(false, nil)
				continue
			}
			_ = req.Reply(true, nil)
			out, dropped := s.command(ctx, p.Command, width)
			if dropped {
				drop(c)
				return
			}
			_, _ = io.WriteString(ch, out)
			release()
			// RouterOS reports errors as text; the exit status is always 0.
			_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
			return
		case "shell":
			_ = req.Reply(true, nil)
			go ssh.DiscardRequests(reqs)
			s.shell(ctx, c, ch, width, pty)
			_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
			return
		case "pty-req":
			pty = true
			_ = req.Reply(true, nil)
		case "env", "window-change":
			_ = req.Reply(true, nil)
		default:
			_ = req.Reply(false, nil)
		}
	}
}

// shell is the interactive console: a prompt, one script per line.
func (s *Server) shell(ctx context.Context, c net.Conn, ch ssh.Channel, width int, pty bool) {
	const prompt = "[admin@RDS] > "
	var readLine func() (string, error)
	var w io.Writer = ch
	if pty {
		t := term.NewTerminal(ch, prompt)
		readLine, w = t.ReadLine, t
	} else {
		sc := bufio.NewScanner(ch)
		readLine = func() (string, error) {
			if !sc.Scan() {
				if sc.Err() != nil {
					return "", sc.Err()
				}
				return "", io.EOF
			}
			return sc.Text(), nil
		}
	}
	for {
		line, err := readLine()
		if err != nil {
			return
		}
		line = strings.TrimSpace(line)
		if line == "quit" || line == "/quit" {
			return
		}
		if line == "" {
			continue
		}
		out, dropped := s.command(ctx, line, width)
		if dropped {
			drop(c)
			return
		}
		_, _ = io.WriteString(w, out)
	}
}

// command applies the faults to one received command line and runs it.
func (s *Server) command(ctx context.Context, line string, width int) (out string, dropped bool) {
	s.fmu.Lock()
	s.commands = append(s.commands, line)
	f := s.faults
	if f.DropAfter > 0 {
		if s.cmdCount >= f.DropAfter {
			dropped = true
			s.cmdCount = 0
		} else {
			s.cmdCount++
		}
	}
	if !dropped && f.DropProbability > 0 && mrand.Float64() < f.DropProbability {
		dropped = true
	}
	failing := false
	if !dropped && len(s.faults.FailNext) > 0 {
		out, failing = s.faults.FailNext[0], true
		s.faults.FailNext = s.faults.FailNext[1:]
	}
	s.fmu.Unlock()
	s.log.Debug("sim command", "line", line, "dropped", dropped, "failed", failing)
	sleepCtx(ctx, f.Latency)
	if f.SlowMatch != "" && strings.Contains(line, f.SlowMatch) {
		sleepCtx(ctx, f.SlowLatency)
	}
	switch {
	case dropped:
		return "", true
	case failing:
		if !strings.HasSuffix(out, "\n") {
			out += "\n"
		}
		if s.opts.CRLF {
			out = strings.ReplaceAll(out, "\n", "\r\n")
		}
		return out, false
	}
	out = s.runCapped(ctx, line, width, f.MaxPutBytes)
	if s.opts.CRLF {
		out = strings.ReplaceAll(out, "\n", "\r\n")
	}
	return out, false
}
