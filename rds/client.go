package rds

// SSHClient, its Config and New. The client is built in layers, a file each:
//
//   - transport.go: dial, SSH handshake, host keys, auth, TCP keepalive;
//   - conn.go: the one reused connection, its liveness, drop and redial;
//   - session.go: one session per command within the session slots and
//     CommandTimeout, the safe retries, and the errors a failed run becomes;
//   - probe.go: the RouterOS release, read once per connection;
//   - list.go and ops.go: the RouterOS operations, built on run;
//   - command.go: the command lines, from validated values only.

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

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
