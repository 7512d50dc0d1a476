// Command e2etool is the e2e harness's helper inside the QEMU VM, for the few
// things busybox cannot do reliably: connect an NVMe/TCP controller by hand
// with one write to /dev/nvme-fabrics (what nvme-cli does, so scenarios can
// make orphans without the product's code), and read a field out of JSON
// (busybox has no jq). It is built static (CGO_ENABLED=0) and is not part of
// the product.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage:
  e2etool connect -nqn NQN -addr ADDR [-port 4420] [-hostnqn H] [-ctrl-loss-tmo N] [-reconnect-delay N] [-keep-alive-tmo N]
      connect over NVMe/TCP through /dev/nvme-fabrics; prints the controller name (nvmeN)
  e2etool http [-o FILE] [-timeout 5s] URL
      GET URL; the body to stdout or FILE; fails unless the status is 200
      (busybox wget in the static busybox crashes resolving addresses)
  e2etool ssh -addr HOST:PORT -user U -key FILE -known-hosts FILE COMMAND
      run one command over SSH (host key checked) and print its output: an
      operator changing the RDS behind the reconciler's back
  e2etool json PATH [FILE]
      print the value at PATH (a.b[0].c, list[key=value].field, list.#) of the JSON in FILE or stdin
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "connect":
		err = cmdConnect(ctx, args[1:], stdout, stderr)
	case "json":
		err = cmdJSON(args[1:], stdin, stdout)
	case "http":
		err = cmdHTTP(ctx, args[1:], stdout, stderr)
	case "ssh":
		err = cmdSSH(ctx, args[1:], stdout, stderr)
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "e2etool:", err)
		return 1
	}
	return 0
}

// connectOpts is one /dev/nvme-fabrics connect; negative timeouts other than
// ctrl_loss_tmo are left to the kernel's defaults.
type connectOpts struct {
	NQN, Addr, HostNQN                        string
	Port                                      int
	CtrlLossTmo, ReconnectDelay, KeepAliveTmo int
	SetCtrlLoss                               bool
}

// optionString renders the kernel's connect option string, in the token
// order nvme-cli uses. Values are checked because a comma or '=' would let a
// value inject another option.
func (o connectOpts) optionString() (string, error) {
	if o.NQN == "" || o.Addr == "" {
		return "", errors.New("connect: -nqn and -addr are required")
	}
	for _, v := range []string{o.NQN, o.Addr, o.HostNQN} {
		if strings.ContainsAny(v, ",=\n ") {
			return "", fmt.Errorf("connect: value %q contains a separator", v)
		}
	}
	if o.Port <= 0 || o.Port > 65535 {
		return "", fmt.Errorf("connect: port %d out of range", o.Port)
	}
	parts := []string{
		"transport=tcp",
		"traddr=" + o.Addr,
		"trsvcid=" + strconv.Itoa(o.Port),
		"nqn=" + o.NQN,
	}
	if o.HostNQN != "" {
		parts = append(parts, "hostnqn="+o.HostNQN)
	}
	if o.SetCtrlLoss {
		parts = append(parts, "ctrl_loss_tmo="+strconv.Itoa(o.CtrlLossTmo))
	}
	if o.ReconnectDelay > 0 {
		parts = append(parts, "reconnect_delay="+strconv.Itoa(o.ReconnectDelay))
	}
	if o.KeepAliveTmo >= 0 {
		parts = append(parts, "keep_alive_tmo="+strconv.Itoa(o.KeepAliveTmo))
	}
	return strings.Join(parts, ","), nil
}

// parseInstance reads the kernel's answer "instance=N,cntlid=M".
func parseInstance(s string) (int, error) {
	for _, f := range strings.Split(strings.TrimSpace(s), ",") {
		if v, ok := strings.CutPrefix(f, "instance="); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return 0, fmt.Errorf("bad instance in %q: %w", s, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("no instance in kernel answer %q", s)
}

func cmdConnect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("connect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o connectOpts
	fs.StringVar(&o.NQN, "nqn", "", "subsystem NQN")
	fs.StringVar(&o.Addr, "addr", "", "target address")
	fs.IntVar(&o.Port, "port", 4420, "target port")
	fs.StringVar(&o.HostNQN, "hostnqn", "", "host NQN (kernel default when empty)")
	ctrlLoss := fs.String("ctrl-loss-tmo", "", "ctrl_loss_tmo (kernel default when empty)")
	fs.IntVar(&o.ReconnectDelay, "reconnect-delay", 0, "reconnect_delay (kernel default when 0)")
	fs.IntVar(&o.KeepAliveTmo, "keep-alive-tmo", -1, "keep_alive_tmo (kernel default when negative)")
	dev := fs.String("dev", "/dev/nvme-fabrics", "fabrics control device")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ctrlLoss != "" {
		n, err := strconv.Atoi(*ctrlLoss)
		if err != nil {
			return fmt.Errorf("connect: -ctrl-loss-tmo: %w", err)
		}
		o.CtrlLossTmo, o.SetCtrlLoss = n, true
	}
	opts, err := o.optionString()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.OpenFile(*dev, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer f.Close()
	// The kernel parses exactly one write per open; a short or split write
	// would be a different (broken) request.
	n, err := f.Write([]byte(opts))
	if err != nil {
		return fmt.Errorf("connect %s: %w", opts, err)
	}
	if n != len(opts) {
		return fmt.Errorf("connect: short write %d of %d", n, len(opts))
	}
	buf := make([]byte, 256)
	m, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("connect: read answer: %w", err)
	}
	inst, err := parseInstance(string(buf[:m]))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	fmt.Fprintf(stdout, "nvme%d\n", inst)
	return nil
}

func cmdSSH(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ssh", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:2222", "SSH server host:port")
	user := fs.String("user", "admin", "login name")
	keyFile := fs.String("key", "", "private key file (unencrypted)")
	khFile := fs.String("known-hosts", "", "known_hosts file the server's key must be in")
	timeout := fs.Duration("timeout", 20*time.Second, "whole command deadline")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *keyFile == "" || *khFile == "" {
		return errors.New("ssh: want -key, -known-hosts and one COMMAND")
	}
	pem, err := os.ReadFile(*keyFile)
	if err != nil {
		return fmt.Errorf("ssh: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return fmt.Errorf("ssh: key %s: %w", *keyFile, err)
	}
	hostKeys, err := knownhosts.New(*khFile)
	if err != nil {
		return fmt.Errorf("ssh: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", *addr)
	if err != nil {
		return fmt.Errorf("ssh: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	cc, chans, reqs, err := ssh.NewClientConn(conn, *addr, &ssh.ClientConfig{
		User: *user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: hostKeys,
	})
	if err != nil {
		return fmt.Errorf("ssh: %w", err)
	}
	client := ssh.NewClient(cc, chans, reqs)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return fmt.Errorf("ssh: session: %w", err)
	}
	defer sess.Close()
	out, err := sess.CombinedOutput(fs.Arg(0))
	stdout.Write(out)
	if err != nil {
		return fmt.Errorf("ssh: %s: %w", fs.Arg(0), err)
	}
	return nil
}

func cmdHTTP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("http", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "write the body to this file (atomically) instead of stdout")
	timeout := fs.Duration("timeout", 5*time.Second, "whole request deadline")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("http: want one URL")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fs.Arg(0), nil)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("http: read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("http: %s: %s: %s", fs.Arg(0), resp.Status, strings.TrimSpace(string(body)))
	}
	if *out == "" {
		_, err = stdout.Write(body)
		return err
	}
	// A poller reading FILE never sees half a body.
	tmp := *out + ".tmp"
	if err := os.WriteFile(tmp, body, 0o644); err != nil {
		return fmt.Errorf("http: %w", err)
	}
	if err := os.Rename(tmp, *out); err != nil {
		return fmt.Errorf("http: %w", err)
	}
	return nil
}

func cmdJSON(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) < 1 || len(args) > 2 {
		return errors.New("json: want PATH [FILE]")
	}
	r := stdin
	if len(args) == 2 {
		f, err := os.Open(args[1])
		if err != nil {
			return fmt.Errorf("json: %w", err)
		}
		defer f.Close()
		r = f
	}
	var doc any
	dec := json.NewDecoder(r)
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("json: decode: %w", err)
	}
	v, err := lookup(doc, args[0])
	if err != nil {
		return fmt.Errorf("json: %w", err)
	}
	out, err := render(v)
	if err != nil {
		return fmt.Errorf("json: %w", err)
	}
	fmt.Fprintln(stdout, out)
	return nil
}

// render prints strings raw (for shell comparisons) and anything else as JSON.
func render(v any) (string, error) {
	switch t := v.(type) {
	case string:
		return t, nil
	case nil:
		return "null", nil
	case json.Number:
		return t.String(), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// splitPath turns "a.b[0].c[name=x]" into steps "a", "b", "[0]", "c", "[name=x]".
func splitPath(p string) ([]string, error) {
	var steps []string
	p = strings.TrimPrefix(p, ".")
	for p != "" {
		switch {
		case p[0] == '.':
			p = p[1:]
		case p[0] == '[':
			end := strings.IndexByte(p, ']')
			if end < 0 {
				return nil, fmt.Errorf("unclosed [ in path")
			}
			steps = append(steps, p[:end+1])
			p = p[end+1:]
		default:
			end := strings.IndexAny(p, ".[")
			if end < 0 {
				end = len(p)
			}
			steps = append(steps, p[:end])
			p = p[end:]
		}
	}
	return steps, nil
}

func lookup(doc any, path string) (any, error) {
	steps, err := splitPath(path)
	if err != nil {
		return nil, err
	}
	cur := doc
	for _, s := range steps {
		switch {
		case s == "#":
			switch t := cur.(type) {
			case []any:
				cur = json.Number(strconv.Itoa(len(t)))
			case map[string]any:
				cur = json.Number(strconv.Itoa(len(t)))
			case nil:
				cur = json.Number("0")
			default:
				return nil, fmt.Errorf("%s: # of a %T", path, cur)
			}
		case strings.HasPrefix(s, "["):
			arr, ok := cur.([]any)
			if !ok {
				return nil, fmt.Errorf("%s: %s on a %T, not a list", path, s, cur)
			}
			inner := s[1 : len(s)-1]
			if k, want, ok := strings.Cut(inner, "="); ok {
				found := false
				for _, el := range arr {
					m, ok := el.(map[string]any)
					if !ok {
						continue
					}
					if got, err := render(m[k]); err == nil && got == want {
						cur, found = el, true
						break
					}
				}
				if !found {
					return nil, fmt.Errorf("%s: no element with %s", path, inner)
				}
				continue
			}
			i, err := strconv.Atoi(inner)
			if err != nil || i < 0 || i >= len(arr) {
				return nil, fmt.Errorf("%s: index %s out of range (len %d)", path, inner, len(arr))
			}
			cur = arr[i]
		default:
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: field %q of a %T", path, s, cur)
			}
			v, ok := m[s]
			if !ok {
				return nil, fmt.Errorf("%s: no field %q", path, s)
			}
			cur = v
		}
	}
	return cur, nil
}
