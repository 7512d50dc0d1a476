package rds

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshConfig builds the x/crypto/ssh client configuration: auth methods and
// the host key policy. Secrets stay inside the auth callbacks; nothing here
// formats them into errors.
func sshConfig(cfg Config) (*ssh.ClientConfig, error) {
	auths, err := authMethods(cfg)
	if err != nil {
		return nil, err
	}
	hostKey, err := hostKeyPolicy(cfg)
	if err != nil {
		return nil, err
	}
	return &ssh.ClientConfig{
		User:            cfg.User,
		Auth:            auths,
		Timeout:         cfg.Timeout,
		HostKeyCallback: hostKey,
	}, nil
}

// authMethods offers the private key, then the password (as password and
// keyboard-interactive).
func authMethods(cfg Config) ([]ssh.AuthMethod, error) {
	var auths []ssh.AuthMethod
	if len(cfg.PrivateKey) > 0 {
		signer, err := keySigner(cfg)
		if err != nil {
			return nil, err
		}
		auths = append(auths, ssh.PublicKeys(signer))
	}
	if cfg.Password != "" {
		pw := cfg.Password
		auths = append(auths,
			ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = pw
				}
				return answers, nil
			}))
	}
	if len(auths) == 0 {
		return nil, fmt.Errorf("%w: rds: a private key or a password is required", ErrInvalid)
	}
	return auths, nil
}

// keySigner parses the private key, decrypting it with the passphrase when
// one is given.
func keySigner(cfg Config) (ssh.Signer, error) {
	var signer ssh.Signer
	var err error
	if len(cfg.Passphrase) > 0 {
		signer, err = ssh.ParsePrivateKeyWithPassphrase(cfg.PrivateKey, cfg.Passphrase)
	} else {
		signer, err = ssh.ParsePrivateKey(cfg.PrivateKey)
	}
	var missing *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &missing):
		return nil, fmt.Errorf("%w: rds: private key is encrypted and no passphrase was given", ErrInvalid)
	case err != nil && strings.Contains(err.Error(), "password incorrect"):
		return nil, fmt.Errorf("%w: rds: private key passphrase is wrong", ErrInvalid)
	case err != nil:
		// Parse errors name the key type at most, never its bytes.
		return nil, fmt.Errorf("%w: rds: private key: %v", ErrInvalid, err)
	}
	return signer, nil
}

// hostKeyPolicy checks host keys against KnownHostsFile, or, only when
// InsecureIgnoreHostKey says so, logs each unverified key instead.
func hostKeyPolicy(cfg Config) (ssh.HostKeyCallback, error) {
	switch {
	case cfg.KnownHostsFile != "":
		if _, err := os.Stat(cfg.KnownHostsFile); err != nil {
			return nil, fmt.Errorf("%w: rds: known_hosts file: %v", ErrInvalid, err)
		}
		return knownHostsCallback(cfg.KnownHostsFile), nil
	case cfg.InsecureIgnoreHostKey:
		log := cfg.Logger
		return func(hostname string, _ net.Addr, key ssh.PublicKey) error {
			log.Warn("rds host key NOT verified (insecureIgnoreHostKey); anyone on the path can impersonate the RDS",
				"host", hostname, "fingerprint", ssh.FingerprintSHA256(key))
			return nil
		}, nil
	}
	return nil, fmt.Errorf("%w: rds: knownHostsFile is required (or insecureIgnoreHostKey: true, not recommended)", ErrInvalid)
}

// knownHostsCallback re-reads the file on every handshake, so an operator's
// fix takes effect without a restart, and turns knownhosts errors into
// messages that say what to do.
func knownHostsCallback(file string) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		cb, err := knownhosts.New(file)
		if err != nil {
			return fmt.Errorf("%w: reading %s: %v", ErrHostKey, file, err)
		}
		err = cb(hostname, remote, key)
		if err == nil {
			return nil
		}
		host, port, splitErr := net.SplitHostPort(hostname)
		if splitErr != nil {
			host, port = hostname, "22"
		}
		fp := ssh.FingerprintSHA256(key)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case errors.As(err, &re):
			return fmt.Errorf("%w: the %s host key %s of %s is marked @revoked in %s",
				ErrHostKey, key.Type(), fp, hostname, file)
		case errors.As(err, &ke) && len(ke.Want) == 0:
			return fmt.Errorf("%w: %s is not in %s (it offered %s key %s); after checking that fingerprint on the RDS console (/ip ssh print), add it with: ssh-keyscan -p %s %s >> %s",
				ErrHostKey, hostname, file, key.Type(), fp, port, host, file)
		case errors.As(err, &ke):
			var known []string
			for _, w := range ke.Want {
				known = append(known, fmt.Sprintf("%s %s (%s:%d)", w.Key.Type(), ssh.FingerprintSHA256(w.Key), w.Filename, w.Line))
			}
			return fmt.Errorf("%w: the host key of %s CHANGED: it now offers %s %s but %s expects %s. This can be a man-in-the-middle attack. If the RDS was re-keyed or replaced on purpose, remove the old entry with: ssh-keygen -R %s -f %s, then add the new key with: ssh-keyscan -p %s %s >> %s",
				ErrHostKey, hostname, key.Type(), fp, file, strings.Join(known, ", "),
				knownhosts.Normalize(hostname), file, port, host, file)
		default:
			return fmt.Errorf("%w: %v", ErrHostKey, err)
		}
	}
}

// hostKeyAlgorithms returns the key algorithms known_hosts holds for addr,
// so the server is asked for a key type we can verify rather than one it
// prefers and we have never seen. It probes the callback with a throwaway
// key: knownhosts then lists the keys it wanted.
func hostKeyAlgorithms(file, addr string, remote net.Addr) []string {
	if file == "" {
		return nil
	}
	cb, err := knownhosts.New(file)
	if err != nil {
		return nil
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if !errors.As(cb(addr, remote, probe), &ke) || len(ke.Want) == 0 {
		return nil
	}
	seen := map[string]bool{}
	var algos []string
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			algos = append(algos, a)
		}
	}
	for _, w := range ke.Want {
		if w.Key.Type() == ssh.KeyAlgoRSA {
			add(ssh.KeyAlgoRSASHA512)
			add(ssh.KeyAlgoRSASHA256)
		}
		add(w.Key.Type())
	}
	return algos
}

// dial opens and authenticates one SSH connection, honouring ctx and
// cfg.Timeout for both TCP connect and handshake.
func (c *SSHClient) dial(ctx context.Context) (*ssh.Client, error) {
	c.dials.Add(1)
	dctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	nc, err := c.dialer().DialContext(dctx, "tcp", c.cfg.Address)
	if err != nil {
		// net's error already names the address ("dial tcp A: connect:
		// connection refused"); say which setting to check instead.
		return nil, fmt.Errorf("%w: %w (check target.ssh.address and that the RDS's SSH service is reachable)", ErrConnection, err)
	}
	if dl, ok := dctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	// Close the socket if ctx ends mid-handshake: the deadline covers the
	// timeout, this covers cancellation.
	stop := context.AfterFunc(dctx, func() { _ = nc.Close() })
	sc := *c.ssh
	sc.HostKeyAlgorithms = hostKeyAlgorithms(c.cfg.KnownHostsFile, c.cfg.Address, nc.RemoteAddr())
	start := time.Now()
	conn, chans, reqs, err := ssh.NewClientConn(nc, c.cfg.Address, &sc)
	if !stop() || err != nil {
		_ = nc.Close()
		if err == nil {
			if conn != nil {
				_ = conn.Close()
			}
			err = dctx.Err()
		}
		return nil, c.handshakeError(err)
	}
	_ = nc.SetDeadline(time.Time{})
	c.log.Debug("rds ssh connected", "took", time.Since(start), "server", string(conn.ServerVersion()))
	return ssh.NewClient(conn, chans, reqs), nil
}

// dialer sets TCP keepalive on the socket: the RDS's kernel answers the
// probes whatever its SSH server does with SSH-level keepalives, and a
// peer that is gone makes reads fail, so the connection ends and the next
// command dials again.
func (c *SSHClient) dialer() *net.Dialer {
	ka := c.cfg.KeepAlive
	if ka < 0 {
		return &net.Dialer{KeepAlive: -1}
	}
	return &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: ka, Interval: max(ka/3, time.Second), Count: 3,
	}}
}

// handshakeError classifies a failed handshake: host key and credential
// problems are terminal, the rest (EOF, resets, timeouts) retryable.
func (c *SSHClient) handshakeError(err error) error {
	switch {
	case errors.Is(err, ErrHostKey):
		return err
	case strings.Contains(err.Error(), "unable to authenticate"):
		return fmt.Errorf("%w: user %q on %s: %v", ErrAuth, c.cfg.User, c.cfg.Address, err)
	default:
		return fmt.Errorf("%w: ssh handshake with %s: %w", ErrConnection, c.cfg.Address, err)
	}
}
