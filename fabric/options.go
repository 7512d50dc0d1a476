package fabric

import (
	"fmt"
	"strconv"
	"strings"
)

// Kernel defaults (drivers/nvme/host/fabrics.h) that apply when an option is
// left out of the connect string.
const (
	KernelDefaultCtrlLossTmo    = 600
	KernelDefaultReconnectDelay = 10
	KernelDefaultKeepAliveTmo   = 5
)

// Effective returns the timeouts as the kernel will hold and print them in
// sysfs for a connect (or a sysfs update) with t:
//   - ReconnectDelay 0 and KeepAliveTmo 0 mean "kernel default" (10 s, 5 s):
//     they are left out of the option string because the kernel rejects
//     reconnect_delay=0 and keep_alive_tmo=0 would switch keep-alive off;
//   - a negative CtrlLossTmo is -1 (sysfs "off", reconnect forever);
//   - otherwise the kernel keeps max_reconnects = ceil(ctrl_loss_tmo /
//     reconnect_delay) and prints max_reconnects * reconnect_delay, so 6 s
//     with a 4 s delay reads back as 8.
//
// Compare desired and live timeouts through Effective (or Matches), never
// field by field, or a plan never becomes empty.
func (t Timeouts) Effective() Timeouts {
	e := t
	if e.ReconnectDelay <= 0 {
		e.ReconnectDelay = KernelDefaultReconnectDelay
	}
	if e.KeepAliveTmo <= 0 {
		e.KeepAliveTmo = KernelDefaultKeepAliveTmo
	}
	if e.CtrlLossTmo < 0 {
		e.CtrlLossTmo = -1
	} else {
		n := (e.CtrlLossTmo + e.ReconnectDelay - 1) / e.ReconnectDelay
		e.CtrlLossTmo = n * e.ReconnectDelay
	}
	return e
}

// Matches says whether live timeouts (as listed) satisfy the desired t.
func (t Timeouts) Matches(live Timeouts) bool {
	return t.Effective() == live.Effective()
}

// IsManaged says whether nqn starts with one of the managed prefixes. Empty
// prefixes are ignored: an empty prefix would make every controller managed.
func IsManaged(nqn string, prefixes []string) bool {
	for _, p := range prefixes {
		if p != "" && strings.HasPrefix(nqn, p) {
			return true
		}
	}
	return false
}

// ValidateRequest checks what the kernel would reject or what could inject
// extra tokens into the comma separated option string.
func ValidateRequest(req ConnectRequest) error {
	check := func(field, v string, required bool) error {
		if v == "" {
			if required {
				return fmt.Errorf("%w: %s is empty", ErrInvalidRequest, field)
			}
			return nil
		}
		if strings.ContainsAny(v, ",= \t\r\n\x00") {
			return fmt.Errorf("%w: %s %q contains ',', '=' or white space", ErrInvalidRequest, field, v)
		}
		return nil
	}
	if err := check("nqn", req.NQN, true); err != nil {
		return err
	}
	if err := check("address", req.Address, true); err != nil {
		return err
	}
	if err := check("hostnqn", req.HostNQN, false); err != nil {
		return err
	}
	if req.Port < 1 || req.Port > 65535 {
		return fmt.Errorf("%w: port %d out of range", ErrInvalidRequest, req.Port)
	}
	if req.Timeouts.ReconnectDelay < 0 {
		return fmt.Errorf("%w: reconnect_delay %d < 0", ErrInvalidRequest, req.Timeouts.ReconnectDelay)
	}
	if req.Timeouts.KeepAliveTmo < 0 {
		return fmt.Errorf("%w: keep_alive_tmo %d < 0", ErrInvalidRequest, req.Timeouts.KeepAliveTmo)
	}
	return nil
}

// OptionString is the exact string written to /dev/nvme-fabrics for req.
// ctrl_loss_tmo is always given (negative as -1: reconnect forever);
// reconnect_delay and keep_alive_tmo are given when > 0, 0 leaves the kernel
// default (see Timeouts.Effective); hostnqn when set (Connect always sets it).
func OptionString(req ConnectRequest) string {
	var b strings.Builder
	b.WriteString("transport=tcp,traddr=")
	b.WriteString(req.Address)
	b.WriteString(",trsvcid=")
	b.WriteString(strconv.Itoa(req.Port))
	b.WriteString(",nqn=")
	b.WriteString(req.NQN)
	if req.HostNQN != "" {
		b.WriteString(",hostnqn=")
		b.WriteString(req.HostNQN)
	}
	clt := req.Timeouts.CtrlLossTmo
	if clt < 0 {
		clt = -1
	}
	b.WriteString(",ctrl_loss_tmo=")
	b.WriteString(strconv.Itoa(clt))
	if req.Timeouts.ReconnectDelay > 0 {
		b.WriteString(",reconnect_delay=")
		b.WriteString(strconv.Itoa(req.Timeouts.ReconnectDelay))
	}
	if req.Timeouts.KeepAliveTmo > 0 {
		b.WriteString(",keep_alive_tmo=")
		b.WriteString(strconv.Itoa(req.Timeouts.KeepAliveTmo))
	}
	return b.String()
}

// NVMeCLIArgs are the nvme-cli arguments for req (without the program name).
// -l, -c and -k are always passed; nvme-cli (libnvme) itself drops a 0 for
// -c and -k, so 0 means the kernel default on this path too.
func NVMeCLIArgs(req ConnectRequest) []string {
	clt := req.Timeouts.CtrlLossTmo
	if clt < 0 {
		clt = -1
	}
	args := []string{"connect", "-t", "tcp", "-a", req.Address, "-s", strconv.Itoa(req.Port), "-n", req.NQN}
	if req.HostNQN != "" {
		args = append(args, "-q", req.HostNQN)
	}
	return append(args,
		"-l", strconv.Itoa(clt),
		"-c", strconv.Itoa(req.Timeouts.ReconnectDelay),
		"-k", strconv.Itoa(req.Timeouts.KeepAliveTmo))
}
