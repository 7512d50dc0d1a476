package rds

// The RouterOS release: read once per connection (the probe) or on
// Version, it decides the read format and property names (profile.go).

import (
	"context"
	"fmt"
)

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
