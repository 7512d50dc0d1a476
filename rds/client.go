package rds

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rds-reconcile/rds-reconcile/internal/retryable"
)

// Client is what the reconciler needs from an RDS. SSHClient implements it;
// tests elsewhere may fake it.
type Client interface {
	List(ctx context.Context) (Inventory, error)
	Get(ctx context.Context, slot string) (*Disk, error)
	Create(ctx context.Context, r CreateRequest) error
	SetExport(ctx context.Context, r ExportRequest) error
	Grow(ctx context.Context, slot string, size int64) error
	Delete(ctx context.Context, slot, filePath string) error
	RemoveFile(ctx context.Context, path string) error
	Capacity(ctx context.Context) (Capacity, error)
	Version(ctx context.Context) (string, error)
	Close() error
}

var _ Client = (*SSHClient)(nil)

// Config says how to reach and authenticate to one RDS, and which of its
// disks belong to us.
type Config struct {
	Address string // host:port
	// User is the RouterOS login. It may carry console options after '+'
	// (e.g. "admin+ct512w"); when it has none, DefaultLoginOptions is
	// appended so output is not coloured and rarely wrapped.
	User           string
	PrivateKey     []byte // PEM; nil when password auth
	Passphrase     []byte // for an encrypted key; never logged
	Password       string // never logged
	KnownHostsFile string
	// InsecureIgnoreHostKey skips host key checks (logs a warning).
	InsecureIgnoreHostKey bool
	// Timeout bounds TCP connect plus SSH handshake, and opening a
	// session on a live connection; default 10s.
	Timeout time.Duration
	// CommandTimeout bounds every RouterOS command from the moment it has
	// a session slot: opening the session (refused sessions are retried
	// within it), sending, and reading the whole answer. Default three
	// times Timeout. A command that runs out of it fails with a retryable
	// ErrTimeout, Ambiguous when it was a write already sent.
	CommandTimeout time.Duration
	// SlotPrefix: only disks whose slot starts with it are listed or
	// changed ("" = all file disks under BasePath).
	SlotPrefix string
	BasePath   string // e.g. storage-pool/volumes
	Logger     *slog.Logger
	// KeepAlive is the TCP keepalive idle time of the socket: the kernel
	// probes a connection idle that long, then every KeepAlive/3 (at least
	// 1s), and gives up after 3 unanswered probes. Default 30s; negative
	// disables. No SSH-level keepalive is ever sent: RouterOS does not
	// answer keepalive@openssh.com as OpenSSH does.
	KeepAlive time.Duration
	// MaxIdle: a connection no command used for longer is closed and a
	// new one dialled before the next command. Default 60s; negative
	// keeps idle connections.
	MaxIdle time.Duration
	// MaxSessions caps concurrent SSH sessions (RouterOS allows few);
	// default 4.
	MaxSessions int
	// DisableJSON forces `print detail` parsing even where RouterOS has
	// :serialize (for tests and odd firmware).
	DisableJSON bool
}

// DefaultLoginOptions are appended to a User without '+': no colours (c),
// no terminal detection (t) and a wide console (512w) so print detail
// wraps as little as possible. The parsers still handle wrapped output.
const DefaultLoginOptions = "+ct512w"

const (
	defaultTimeout     = 10 * time.Second
	defaultKeepAlive   = 30 * time.Second
	defaultMaxIdle     = 60 * time.Second
	defaultMaxSessions = 4
)

// SSHClient talks to one RDS over one reused SSH connection, one session per
// command. It is safe for concurrent use.
type SSHClient struct {
	cfg    Config
	v      validator
	log    *slog.Logger
	ssh    *ssh.ClientConfig
	sem    chan struct{} // session slots
	dialMu chan struct{} // held while dialling; a channel so waiting honours ctx

	mu     sync.Mutex
	conn   *connState
	closed bool

	roundTrips atomic.Int64
	dials      atomic.Int64
	jsonOff    atomic.Bool // JSON output proved unusable: stick to print detail
	// List reads in pages (JSON only) when the last List saw more than
	// listPageThreshold disks (bigList) or once a JSON section came back
	// cut (cutJSON, for the rest of the client).
	bigList, cutJSON atomic.Bool
	// lastProfile is the RouterOS release last read, for status.
	lastProfile atomic.Pointer[Profile]
}

// connState is one SSH connection and what we learned about the router
// through it.
type connState struct {
	client *ssh.Client
	done   chan struct{} // closed when the connection ends

	probeMu chan struct{} // held while probing; a channel so waiting honours ctx
	probed  bool
	profile Profile // the RouterOS release, read once per connection

	// Guarded by SSHClient.mu.
	users    int       // callers between connect and release
	lastUsed time.Time // when the last user released it
}

// New validates cfg and returns a client. It does not dial: the first call
// does.
func New(cfg Config) (*SSHClient, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = 3 * cfg.Timeout
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = defaultKeepAlive
	}
	if cfg.MaxIdle == 0 {
		cfg.MaxIdle = defaultMaxIdle
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = defaultMaxSessions
	}
	if cfg.Address == "" {
		return nil, fmt.Errorf("%w: rds: address is required", ErrInvalid)
	}
	if cfg.User == "" {
		return nil, fmt.Errorf("%w: rds: user is required", ErrInvalid)
	}
	if !strings.Contains(cfg.User, "+") {
		cfg.User += DefaultLoginOptions
	}
	if !prefixRe.MatchString(cfg.SlotPrefix) {
		return nil, fmt.Errorf("%w: rds: slot prefix %q must match %s", ErrInvalid, cfg.SlotPrefix, prefixRe)
	}
	base := strings.Trim(cfg.BasePath, "/")
	if base == "" || !pathRe.MatchString(base) || strings.Contains(base, "..") || strings.Contains(base, "//") {
		return nil, fmt.Errorf("%w: rds: base path %q must be a clean path of [A-Za-z0-9._/-]", ErrInvalid, cfg.BasePath)
	}
	cfg.BasePath = base
	sc, err := sshConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &SSHClient{
		cfg:    cfg,
		v:      validator{prefix: cfg.SlotPrefix, base: base},
		log:    cfg.Logger.With("rds", cfg.Address),
		ssh:    sc,
		sem:    make(chan struct{}, cfg.MaxSessions),
		dialMu: make(chan struct{}, 1),
	}, nil
}

// RoundTrips returns the number of commands sent so far.
func (c *SSHClient) RoundTrips() int64 { return c.roundTrips.Load() }

// Dials returns the number of SSH handshakes attempted so far.
func (c *SSHClient) Dials() int64 { return c.dials.Load() }

// Close closes the connection. Calls after Close fail.
func (c *SSHClient) Close() error {
	c.mu.Lock()
	c.closed = true
	cs := c.conn
	c.conn = nil
	c.mu.Unlock()
	if cs != nil {
		return cs.client.Close()
	}
	return nil
}

// errClosed is returned by calls after Close.
var errClosed = errors.New("client closed")

// connect returns the live connection, dialling when there is none, and
// takes a use of it: the caller must release it. A connection idle for
// longer than MaxIdle is closed and replaced first.
func (c *SSHClient) connect(ctx context.Context) (*connState, error) {
	if cs, err := c.current(); cs != nil || err != nil {
		return cs, err
	}
	select {
	case c.dialMu <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.dialMu }()
	// Another caller may have dialled while we waited.
	if cs, err := c.current(); cs != nil || err != nil {
		return cs, err
	}
	client, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	cs := &connState{client: client, done: make(chan struct{}), probeMu: make(chan struct{}, 1)}
	go func() {
		_ = client.Wait()
		close(cs.done)
	}()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = client.Close()
		return nil, errClosed
	}
	cs.users, cs.lastUsed = 1, time.Now()
	c.conn = cs
	c.mu.Unlock()
	return cs, nil
}

// current takes a use of the live connection; nil, nil when one must be
// dialled.
func (c *SSHClient) current() (*connState, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errClosed
	}
	cs := c.conn
	switch {
	case cs == nil:
		c.mu.Unlock()
		return nil, nil
	case cs.isDone():
		c.conn = nil
		c.mu.Unlock()
		return nil, nil
	case c.cfg.MaxIdle > 0 && cs.users == 0 && time.Since(cs.lastUsed) > c.cfg.MaxIdle:
		// Nobody uses it, so closing it cuts no command short. An idle
		// connection may have died silently (RDS rebooted, state lost on
		// the path); a fresh one costs one handshake.
		idle := time.Since(cs.lastUsed)
		c.conn = nil
		c.mu.Unlock()
		c.log.Debug("rds connection idle; closing it and dialling again", "idle", idle)
		_ = cs.client.Close()
		return nil, nil
	}
	cs.users++
	c.mu.Unlock()
	return cs, nil
}

// release gives back a use taken by connect.
func (c *SSHClient) release(cs *connState) {
	c.mu.Lock()
	cs.users--
	cs.lastUsed = time.Now()
	c.mu.Unlock()
}

func (cs *connState) isDone() bool {
	select {
	case <-cs.done:
		return true
	default:
		return false
	}
}

// drop forgets cs (if still current) and closes it, so the next call dials.
func (c *SSHClient) drop(cs *connState) {
	c.mu.Lock()
	if c.conn == cs {
		c.conn = nil
	}
	c.mu.Unlock()
	_ = cs.client.Close()
}

// errBeforeSend marks failures where the command certainly did not reach
// the router, so even a write may be retried on a fresh connection.
type errBeforeSend struct{ err error }

func (e errBeforeSend) Error() string { return e.err.Error() }
func (e errBeforeSend) Unwrap() error { return e.err }

// run sends one command and returns its output. Reads (mutating=false) are
// retried once on a fresh connection after any transport failure; writes
// only when the failure happened before the command was sent. A refused
// session is asked for again, waiting longer each time. All of it stays
// within CommandTimeout and ctx.
func (c *SSHClient) run(ctx context.Context, op, slot, cmd string, mutating bool) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", c.ctxError(op, slot, cmd, err, false)
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return "", c.ctxError(op, slot, cmd, ctx.Err(), false)
	}
	defer func() { <-c.sem }()
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CommandTimeout)
	defer cancel()

	var (
		out      string
		err      error
		redialed bool
		sent     bool // the failed attempt had sent the command
		refused  int
	)
	for {
		out, err = c.runOnce(cctx, cmd)
		if err == nil {
			break
		}
		var before errBeforeSend
		sent = !errors.As(err, &before)
		if cctx.Err() != nil || errors.Is(err, errClosed) || isTerminalDial(err) {
			break
		}
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) {
			// The RDS refused a session (its cap counts sessions we
			// already closed but it has not yet reaped, or another
			// client holds them): nothing was sent, so wait and ask
			// again until the command timeout.
			refused++
			if !sleepCtx(cctx, refusalWait(refused)) {
				break
			}
			continue
		}
		if redialed || (mutating && sent) {
			break
		}
		redialed = true
		c.log.Debug("rds command failed on transport; retrying on a fresh connection", "op", op, "err", err)
	}
	if err != nil {
		ambiguous := mutating && sent
		switch {
		case ctx.Err() != nil:
			return "", c.ctxError(op, slot, cmd, ctx.Err(), ambiguous)
		case cctx.Err() != nil:
			return "", c.timeoutError(op, slot, cmd, err, sent, refused, ambiguous)
		}
		e := c.transportError(op, slot, cmd, err)
		e.Ambiguous = ambiguous
		return "", e
	}
	return out, nil
}

// A refused session is asked for again after refusalBackoff, doubling each
// time up to maxRefusalWait, until the command timeout.
const (
	refusalBackoff = 10 * time.Millisecond
	maxRefusalWait = time.Second
)

func refusalWait(n int) time.Duration {
	if n > 7 {
		return maxRefusalWait
	}
	return min(refusalBackoff<<(n-1), maxRefusalWait)
}

// sleepCtx waits d or until ctx ends; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// isTerminalDial tells dial failures retrying cannot fix.
func isTerminalDial(err error) bool {
	return errors.Is(err, ErrHostKey) || errors.Is(err, ErrAuth) || errors.Is(err, ErrInvalid)
}

func (c *SSHClient) ctxError(op, slot, cmd string, err error, ambiguous bool) *Error {
	return &Error{Op: op, Slot: slot, Command: cmd, Ambiguous: ambiguous, Err: markIf(errors.Is(err, context.DeadlineExceeded), err)}
}

// timeoutError is a command that ran out of CommandTimeout. last is the
// error of the last attempt; refused counts sessions the RDS refused.
func (c *SSHClient) timeoutError(op, slot, cmd string, last error, sent bool, refused int, ambiguous bool) *Error {
	var err error
	switch {
	case sent:
		err = fmt.Errorf("%w: no complete answer within %v (commandTimeout): %w", ErrTimeout, c.cfg.CommandTimeout, context.DeadlineExceeded)
	case refused > 0:
		err = fmt.Errorf("%w: not sent: the RDS refused a session %d times within %v (commandTimeout): %w", ErrTimeout, refused, c.cfg.CommandTimeout, context.DeadlineExceeded)
	default:
		err = fmt.Errorf("%w: not sent within %v (commandTimeout; last error: %v): %w", ErrTimeout, c.cfg.CommandTimeout, last, context.DeadlineExceeded)
	}
	return &Error{Op: op, Slot: slot, Command: cmd, Ambiguous: ambiguous, Err: retryable.Mark(err)}
}

func (c *SSHClient) transportError(op, slot, cmd string, err error) *Error {
	e := &Error{Op: op, Slot: slot, Command: cmd, Err: err}
	switch {
	case errors.Is(err, errClosed):
	case isTerminalDial(err):
	default:
		if !errors.Is(err, ErrConnection) {
			err = fmt.Errorf("%w: %w", ErrConnection, err)
		}
		e.Err = retryable.Mark(err)
	}
	return e
}

// runOnce runs cmd in a new session on the current connection.
func (c *SSHClient) runOnce(ctx context.Context, cmd string) (string, error) {
	cs, err := c.connect(ctx)
	if err != nil {
		return "", errBeforeSend{err}
	}
	defer c.release(cs)
	sess, err := c.newSession(ctx, cs)
	if err != nil {
		var oce *ssh.OpenChannelError
		if !errors.As(err, &oce) {
			// The connection is broken: forget it so the retry re-dials.
			c.drop(cs)
		}
		return "", errBeforeSend{fmt.Errorf("%w: open session: %w", ErrConnection, err)}
	}
	defer sess.Close()
	var out lockedBuffer
	sess.Stdout = &out
	sess.Stderr = &out
	start := time.Now()
	c.roundTrips.Add(1)
	done := make(chan error, 1)
	go func() {
		if err := sess.Start(cmd); err != nil {
			done <- err
			return
		}
		done <- sess.Wait()
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		// Closing the session ends the remote command's channel; the
		// goroutine then returns.
		_ = sess.Close()
		return "", ctx.Err()
	}
	// A connection that ends mid-command ends Wait too (EOF or no exit
	// status), so there is no separate case for it: output that arrived
	// complete just before a close is not thrown away.
	c.log.Debug("rds command", "cmd", cmd, "took", time.Since(start), "err", err)
	if err != nil {
		var exit *ssh.ExitError
		if errors.As(err, &exit) {
			// RouterOS exit status is unreliable; the text decides.
			return out.String(), nil
		}
		var missing *ssh.ExitMissingError
		if errors.As(err, &missing) && !c.connLost(cs) {
			// The channel closed without an exit status but the
			// connection lives: a server quirk, the output is whole.
			return out.String(), nil
		}
		c.drop(cs)
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: %w", ErrConnection, err)
		}
		return "", err
	}
	return out.String(), nil
}

// connLost reports whether cs ended. A dropped connection closes the
// session's channel a moment before the connection itself is seen to end,
// so it waits briefly for that.
func (c *SSHClient) connLost(cs *connState) bool {
	t := time.NewTimer(250 * time.Millisecond)
	defer t.Stop()
	select {
	case <-cs.done:
		return true
	case <-t.C:
		return false
	}
}

// newSession opens a session, giving up after Timeout or when ctx ends: a
// peer that went silent never answers the channel open. The connection is
// then dropped, since the next command would wait the same way; nothing
// was sent, so the caller may retry on a fresh connection.
func (c *SSHClient) newSession(ctx context.Context, cs *connState) (*ssh.Session, error) {
	type result struct {
		s   *ssh.Session
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := cs.client.NewSession()
		ch <- result{s, err}
	}()
	t := time.NewTimer(c.cfg.Timeout)
	defer t.Stop()
	var err error
	select {
	case r := <-ch:
		return r.s, r.err
	case <-t.C:
		err = fmt.Errorf("no answer to a session open within %v", c.cfg.Timeout)
		c.log.Warn("rds session open unanswered; closing the connection", "timeout", c.cfg.Timeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	c.drop(cs)
	go func() {
		if r := <-ch; r.s != nil {
			_ = r.s.Close()
		}
	}()
	return nil, err
}

// lockedBuffer collects stdout and stderr, which x/crypto/ssh copies from
// two goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// profile reads the RouterOS version once per connection (the release
// decides the output format and property names; a reconnect may find the
// RDS upgraded). A Version call on the connection counts as the read.
func (c *SSHClient) profile(ctx context.Context) (Profile, error) {
	cs, err := c.connect(ctx)
	if err != nil {
		return Profile{}, c.transportError("probe", "", cmdResource, err)
	}
	defer c.release(cs)
	select {
	case cs.probeMu <- struct{}{}:
	case <-ctx.Done():
		return Profile{}, c.ctxError("probe", "", cmdResource, ctx.Err(), false)
	}
	defer func() { <-cs.probeMu }()
	if cs.probed {
		return cs.profile, nil
	}
	raw, err := c.readVersion(ctx, "probe")
	if err != nil {
		return Profile{}, err
	}
	p := ProfileOf(raw)
	if !p.Known {
		c.log.Warn("rds version not understood; reading print detail and using the newest property names", "version", raw)
	}
	c.log.Debug("rds RouterOS profile", "version", p.Raw, "json", p.JSONReads(), "nqnProperty", p.NQNProperty())
	cs.profile, cs.probed = p, true
	c.lastProfile.Store(&p)
	return p, nil
}

// remember records a version read outside the probe on the current
// connection, so the probe need not ask again.
func (c *SSHClient) remember(raw string) {
	p := ProfileOf(raw)
	c.lastProfile.Store(&p)
	c.mu.Lock()
	cs := c.conn
	c.mu.Unlock()
	if cs == nil {
		return
	}
	select {
	case cs.probeMu <- struct{}{}:
		if !cs.probed {
			cs.profile, cs.probed = p, true
		}
		<-cs.probeMu
	default: // a probe is running: it will know
	}
}

// Profile returns the RouterOS release of the RDS and what it can do, read
// once per connection.
func (c *SSHClient) Profile(ctx context.Context) (Profile, error) { return c.profile(ctx) }

func (c *SSHClient) reads(ctx context.Context) (readCommands, error) {
	if c.cfg.DisableJSON || c.jsonOff.Load() {
		return readCommands{v: c.v}, nil
	}
	p, err := c.profile(ctx)
	return readCommands{json: p.JSONReads(), v: c.v}, err
}

// read runs a read command and parses its items.
func (c *SSHClient) read(ctx context.Context, op, slot string, rc readCommands, cmd string) ([]map[string]string, error) {
	out, err := c.run(ctx, op, slot, cmd, false)
	if err != nil {
		return nil, err
	}
	return parseSection(op, slot, cmd, out, rc.json)
}

func parseSection(op, slot, cmd, out string, asJSON bool) ([]map[string]string, error) {
	if line := errorLine(out); line != "" {
		return nil, outputError(op, slot, cmd, line)
	}
	var items []map[string]string
	var err error
	if asJSON {
		items, err = ParseJSON(out)
	} else {
		items, err = ParseDetail(out)
	}
	if err != nil {
		return nil, &Error{Op: op, Slot: slot, Command: cmd, Output: capOutput(out), Err: err}
	}
	return items, nil
}

// write runs a mutating command: any output at all is an error. A command
// carrying a property whose name depends on the release is adapted to the
// RDS's profile first, and a refusal is explained by what the release
// lacks.
func (c *SSHClient) write(ctx context.Context, op, slot, cmd string) error {
	var p Profile
	sent := cmd
	if needsProfile(cmd) {
		var err error
		if p, err = c.profile(ctx); err != nil {
			return err
		}
		sent = p.Adapt(cmd)
	}
	out, err := c.run(ctx, op, slot, sent, true)
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != "" {
		return p.explain(cmd, outputError(op, slot, sent, out))
	}
	return nil
}

// List reads managed disks, the other exported disks (Exports), .img files
// under BasePath and pool capacity in one round trip (plus, once per
// connection, the format probe).
//
// A large inventory is read in pages (see listPageThreshold): still one
// command, one :put per page, so a cap RouterOS may put on the string one
// :put prints cuts no JSON.
func (c *SSHClient) List(ctx context.Context) (Inventory, error) {
	rc, err := c.reads(ctx)
	if err != nil {
		return Inventory{}, err
	}
	paged := rc.json && (c.bigList.Load() || c.cutJSON.Load())
	inv, err := c.list(ctx, rc, paged)
	if err != nil && rc.json && !paged && errors.Is(err, ErrRejected) {
		// RouterOS may cap the length of a string :put prints, which
		// would cut the JSON of a large inventory: read it in pages from
		// now on.
		c.log.Warn("rds JSON listing unusable; listing in pages for this client", "err", err)
		c.cutJSON.Store(true)
		paged = true
		inv, err = c.list(ctx, rc, paged)
	}
	if err != nil && rc.json && errors.Is(err, ErrRejected) {
		// Even a page is unusable. `print detail` has no such limit: use
		// it from now on.
		c.log.Warn("rds JSON listing unusable; falling back to print detail for this client", "err", err)
		c.jsonOff.Store(true)
		rc.json = false
		return c.list(ctx, rc, false)
	}
	return inv, err
}

// pageItems parses the section mark, or its pages mark:0, mark:1, ... in
// order, and merges the pages' items, dropping repeats (by .id, else slot
// and name).
func pageItems(op, cmd string, sections map[string]string, mark string, asJSON bool) ([]map[string]string, error) {
	if text, ok := sections[mark]; ok {
		return parseSection(op, "", cmd, text, asJSON)
	}
	var all []map[string]string
	seen := map[string]bool{}
	for i := 0; ; i++ {
		text, ok := sections[mark+":"+strconv.Itoa(i)]
		if !ok {
			break
		}
		items, err := parseSection(op, "", cmd, text, asJSON)
		if err != nil {
			return nil, err
		}
		for _, m := range items {
			key := m[".id"]
			if key == "" {
				key = m["slot"] + "\x00" + m["name"] + "\x00" + m["file-path"]
			}
			if seen[key] {
				continue
			}
			seen[key] = true
			all = append(all, m)
		}
	}
	// Back to RouterOS's order (.id "*1A" counts up), as one print gives.
	slices.SortStableFunc(all, func(a, b map[string]string) int {
		x, okx := itemNumber(a)
		y, oky := itemNumber(b)
		switch {
		case okx && oky:
			return cmp.Compare(x, y)
		case okx:
			return -1
		case oky:
			return 1
		}
		return 0
	})
	return all, nil
}

// itemNumber is the number of a RouterOS item id ("*1A" = 26).
func itemNumber(m map[string]string) (uint64, bool) {
	id, ok := strings.CutPrefix(m[".id"], "*")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(id, 16, 64)
	return n, err == nil
}

func (c *SSHClient) list(ctx context.Context, rc readCommands, paged bool) (Inventory, error) {
	cmd := rc.list()
	if paged {
		cmd = rc.listPaged()
	}
	out, err := c.run(ctx, "list", "", cmd, false)
	if err != nil {
		return Inventory{}, err
	}
	sections, err := splitSections(out)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Command = cmd
			return Inventory{}, e
		}
		return Inventory{}, &Error{Op: "list", Command: cmd, Output: capOutput(out), Err: markIf(transportRetryable(err), err)}
	}
	var inv Inventory
	diskItems, err := pageItems("list disks", cmd, sections, markDisks, rc.json)
	if err != nil {
		return Inventory{}, err
	}
	for _, m := range diskItems {
		d, err := DiskFromFields(m)
		if err != nil {
			return Inventory{}, &Error{Op: "list disks", Command: cmd, Err: err}
		}
		if c.managed(d) {
			inv.Disks = append(inv.Disks, d)
		}
	}
	fileItems, err := pageItems("list files", cmd, sections, markFiles, rc.json)
	if err != nil {
		return Inventory{}, err
	}
	for _, m := range fileItems {
		f, err := FileFromFields(m)
		if err != nil {
			return Inventory{}, &Error{Op: "list files", Command: cmd, Err: err}
		}
		if _, err := c.v.leftoverFile(f.Name); err == nil {
			inv.Files = append(inv.Files, f)
		}
	}
	exportItems, err := pageItems("list exports", cmd, sections, markExports, rc.json)
	if err != nil {
		return Inventory{}, err
	}
	for _, m := range exportItems {
		d, err := DiskFromFields(m)
		if err != nil {
			return Inventory{}, &Error{Op: "list exports", Command: cmd, Err: err}
		}
		if !c.managed(d) && d.Export && d.NQN != "" {
			inv.Exports = append(inv.Exports, d)
		}
	}
	poolItems, err := parseSection("list pool", "", cmd, sections[markPool], rc.json)
	if err != nil {
		return Inventory{}, err
	}
	if rc.json {
		c.bigList.Store(max(len(diskItems), len(exportItems)) > listPageThreshold)
	}
	if len(poolItems) > 0 {
		p, err := CapacityFromFields(poolItems[0])
		if err != nil {
			return Inventory{}, &Error{Op: "list pool", Command: cmd, Err: err}
		}
		inv.Pool = &p
	}
	return inv, nil
}

// managed reports whether d belongs to us: slot prefix when one is set,
// otherwise a file disk under BasePath.
func (c *SSHClient) managed(d Disk) bool {
	if c.v.prefix != "" {
		return strings.HasPrefix(d.Slot, c.v.prefix)
	}
	return d.Type == "file" && strings.HasPrefix(d.FilePath, c.v.base+"/")
}

// splitSections cuts List output at the marker lines.
func splitSections(out string) (map[string]string, error) {
	sections := make(map[string]string, 3)
	cur := ""
	var b strings.Builder
	seenEnd := false
	for _, line := range splitLines(out) {
		if t := strings.TrimSpace(line); isMarker(t) {
			if cur != "" {
				sections[cur] = b.String()
			}
			b.Reset()
			cur = t
			if t == markEnd {
				seenEnd = true
			}
			continue
		}
		if cur == "" {
			if strings.TrimSpace(line) != "" {
				// Text before the first marker: RouterOS refused the
				// script as a whole.
				return nil, outputError("list", "", "", line)
			}
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	if !seenEnd {
		if line := errorLine(b.String()); line != "" {
			return nil, outputError("list", "", "", line)
		}
		return nil, fmt.Errorf("%w: list output truncated (no end marker)", ErrConnection)
	}
	return sections, nil
}

// Get returns one disk, or ErrNotFound.
func (c *SSHClient) Get(ctx context.Context, slot string) (*Disk, error) {
	if err := c.v.slot(slot); err != nil {
		return nil, &Error{Op: "get", Slot: slot, Err: err}
	}
	rc, err := c.reads(ctx)
	if err != nil {
		return nil, err
	}
	cmd, err := rc.disk(slot)
	if err != nil {
		return nil, &Error{Op: "get", Slot: slot, Err: err}
	}
	items, err := c.read(ctx, "get", slot, rc, cmd)
	if err != nil {
		return nil, err
	}
	for _, m := range items {
		if m["slot"] != slot {
			continue
		}
		d, err := DiskFromFields(m)
		if err != nil {
			return nil, &Error{Op: "get", Slot: slot, Command: cmd, Err: err}
		}
		return &d, nil
	}
	return nil, &Error{Op: "get", Slot: slot, Command: cmd, Err: ErrNotFound}
}

// Create adds a file-backed disk exported over NVMe/TCP in one command,
// with mount-filesystem=no: RouterOS must never mount the filesystem a host
// formats inside the disk.
func (c *SSHClient) Create(ctx context.Context, r CreateRequest) error {
	const op = "create"
	if err := c.v.slot(r.Slot); err != nil {
		return &Error{Op: op, Slot: r.Slot, Err: err}
	}
	fp, err := c.v.filePath(r.FilePath, r.Slot)
	if err != nil {
		return &Error{Op: op, Slot: r.Slot, Err: err}
	}
	r.FilePath = fp
	if err := firstErr(validSize(r.Size), validPort(r.Port), validNQN(r.NQN)); err != nil {
		return &Error{Op: op, Slot: r.Slot, Err: err}
	}
	cmd, err := cmdAdd(r)
	if err != nil {
		return &Error{Op: op, Slot: r.Slot, Err: err}
	}
	return c.write(ctx, op, r.Slot, cmd)
}

// SetExport (re)sets a disk's NVMe/TCP export: export on, port and NQN,
// and mount-filesystem=no (see Create).
func (c *SSHClient) SetExport(ctx context.Context, r ExportRequest) error {
	const op = "set-export"
	if err := firstErr(c.v.slot(r.Slot), validPort(r.Port), validNQN(r.NQN)); err != nil {
		return &Error{Op: op, Slot: r.Slot, Err: err}
	}
	cmd, err := cmdSetExport(r)
	if err != nil {
		return &Error{Op: op, Slot: r.Slot, Err: err}
	}
	return c.write(ctx, op, r.Slot, cmd)
}

// Grow sets a larger file size. It reads the current size first and refuses
// to shrink (ErrShrink) without sending anything; equal size is a no-op.
func (c *SSHClient) Grow(ctx context.Context, slot string, size int64) error {
	const op = "grow"
	if err := firstErr(c.v.slot(slot), validSize(size)); err != nil {
		return &Error{Op: op, Slot: slot, Err: err}
	}
	d, err := c.Get(ctx, slot)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			relabelled := *e
			relabelled.Op = op
			return &relabelled
		}
		return err
	}
	switch {
	case size < d.Size:
		return &Error{Op: op, Slot: slot, Err: fmt.Errorf("%w: %d bytes is less than the current %d", ErrShrink, size, d.Size)}
	case size == d.Size:
		return nil
	}
	cmd, err := cmdGrow(slot, size)
	if err != nil {
		return &Error{Op: op, Slot: slot, Err: err}
	}
	return c.write(ctx, op, slot, cmd)
}

// Delete removes the disk, then its file (RouterOS keeps the file when a
// disk is removed). A missing disk or file is not an error.
func (c *SSHClient) Delete(ctx context.Context, slot, filePath string) error {
	const op = "delete"
	if err := c.v.slot(slot); err != nil {
		return &Error{Op: op, Slot: slot, Err: err}
	}
	fp, err := c.v.filePath(filePath, slot)
	if err != nil {
		return &Error{Op: op, Slot: slot, Err: err}
	}
	cmd, err := cmdRemoveDisk(slot)
	if err != nil {
		return &Error{Op: op, Slot: slot, Err: err}
	}
	if err := c.write(ctx, op, slot, cmd); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return c.removeFile(ctx, op, slot, fp)
}

// RemoveFile removes a leftover <BasePath>/<slot>.img file. A missing file
// is not an error.
func (c *SSHClient) RemoveFile(ctx context.Context, path string) error {
	const op = "remove-file"
	fp, err := c.v.leftoverFile(path)
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	return c.removeFile(ctx, op, "", fp)
}

func (c *SSHClient) removeFile(ctx context.Context, op, slot, fp string) error {
	cmd, err := cmdRemoveFile(fp)
	if err != nil {
		return &Error{Op: op, Slot: slot, Err: err}
	}
	if err := c.write(ctx, op, slot, cmd); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// Capacity returns the size and free space of the pool holding BasePath.
func (c *SSHClient) Capacity(ctx context.Context) (Capacity, error) {
	rc, err := c.reads(ctx)
	if err != nil {
		return Capacity{}, err
	}
	cmd := rc.pool()
	items, err := c.read(ctx, "capacity", "", rc, cmd)
	if err != nil {
		return Capacity{}, err
	}
	if len(items) == 0 {
		return Capacity{}, &Error{Op: "capacity", Command: cmd, Err: fmt.Errorf("%w: no disk mounted at the pool of %q", ErrNotFound, c.v.base)}
	}
	p, err := CapacityFromFields(items[0])
	if err != nil {
		return Capacity{}, &Error{Op: "capacity", Command: cmd, Err: err}
	}
	return p, nil
}

// Version returns the RouterOS version as printed, e.g. "7.16 (stable)". It
// always asks the RDS, and the answer serves as the connection's profile.
func (c *SSHClient) Version(ctx context.Context) (string, error) {
	v, err := c.readVersion(ctx, "version")
	if err == nil {
		c.remember(v)
	}
	return v, err
}

// LastProfile is the profile most recently read, without asking the RDS;
// ok is false before the first read.
func (c *SSHClient) LastProfile() (Profile, bool) {
	if p := c.lastProfile.Load(); p != nil {
		return *p, true
	}
	return Profile{}, false
}

func (c *SSHClient) readVersion(ctx context.Context, op string) (string, error) {
	out, err := c.run(ctx, op, "", cmdResource, false)
	if err != nil {
		return "", err
	}
	if line := errorLine(out); line != "" {
		return "", outputError(op, "", cmdResource, line)
	}
	v := parseKeyValueLines(out)["version"]
	if v == "" {
		return "", &Error{Op: op, Command: cmdResource, Output: capOutput(out), Err: fmt.Errorf("%w: no version in output", ErrRejected)}
	}
	return v, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
