package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
)

func TestCSIRegistrationFlagErrors(t *testing.T) {
	long := "/" + strings.Repeat("k", 90)
	var out, errb strings.Builder
	code := run([]string{"csi", "--mode", "node", "--fabric", "sim:" + t.TempDir(), "--state-dir", t.TempDir(), "--endpoint", "unix://" + t.TempDir() + "/s.sock",
		"--kubelet-dir", long, "--kubelet-registration-path", long + "/plugins/x/csi.sock"}, strings.NewReader(""), &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "a unix socket path at most 107: use a shorter kubelet directory") {
		t.Errorf("a registration socket too long for bind(2): exit %d, stderr %q; want exit 1 and the length message", code, errb.String())
	}

	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{[]string{"csi", "--mode", "controller", "-f", "base.yaml", "--kubelet-registration-path", "/var/lib/kubelet/plugins/x/csi.sock", "--state-dir", t.TempDir()}, "use it with --mode node or all"},
		{[]string{"csi", "--mode", "node", "--kubelet-registration-path", "plugins/x/csi.sock", "--state-dir", t.TempDir()}, "as the kubelet sees it, an absolute, clean path"},
		{[]string{"csi", "--mode", "node", "--kubelet-registration-path", "unix:///var/lib/kubelet/plugins/x/csi.sock", "--state-dir", t.TempDir()}, "absolute, clean path"},
	} {
		var out, errb strings.Builder
		code := run(tt.args, strings.NewReader(""), &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), tt.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 mentioning %q", tt.args, code, errb.String(), tt.msg)
		}
	}
}

type rawBytesCodec struct{}

func (rawBytesCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawBytesCodec) Unmarshal(b []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), b...)
	return nil
}
func (rawBytesCodec) Name() string { return "proto" }

// TestCSINodeRegistersWithTheKubelet runs `csi --mode node
// --kubelet-registration-path P` and asks its registration socket, where the
// kubelet looks for it, what the kubelet asks: GetInfo must name P. When the
// command stops, the socket is gone (the kubelet then deregisters).
func TestCSINodeRegistersWithTheKubelet(t *testing.T) {
	// Short: the registration socket's path must fit a unix socket's 107
	// bytes, and t.TempDir() names are long.
	dir, err := os.MkdirTemp("", "reg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	kubelet := filepath.Join(dir, "kubelet")
	endpoint := filepath.Join(kubelet, "plugins", "rds.csi.rds-reconcile.io", "csi.sock")
	reg := filepath.Join(kubelet, "plugins_registry", "rds.csi.rds-reconcile.io-reg.sock")
	var out, errb syncBuffer
	root := newRootCmd(strings.NewReader(""), &out, &errb)
	root.SetArgs([]string{"csi", "--mode", "node", "--node-id", "node-a", "--host", "node-a", "--fabric", "sim:" + filepath.Join(dir, "host"),
		"--endpoint", "unix://" + endpoint, "--state-dir", filepath.Join(dir, "state"), "--kubelet-dir", kubelet,
		"--kubelet-registration-path", endpoint})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(reg); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("csi exited early: %v\n%s", err, errb.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no registration socket at %s after 20 s; stderr:\n%s", reg, errb.String())
		}
	}
	conn, err := grpc.NewClient("unix://"+reg, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawBytesCodec{}), grpc.WaitForReady(true)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
	defer ccancel()
	in, info := []byte{}, []byte(nil)
	if err := conn.Invoke(cctx, "/pluginregistration.Registration/GetInfo", &in, &info); err != nil {
		t.Fatalf("GetInfo: %v", err)
	}
	got := map[protowire.Number]string{}
	for b := info; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			t.Fatalf("PluginInfo %x: want only string fields", info)
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			t.Fatalf("PluginInfo %x: bad field %d", info, num)
		}
		got[num] = string(v)
		b = b[n+m:]
	}
	if got[1] != "CSIPlugin" || got[2] != "rds.csi.rds-reconcile.io" || got[3] != endpoint || got[4] != "1.0.0" {
		t.Errorf("PluginInfo = %q, want type CSIPlugin, name rds.csi.rds-reconcile.io, endpoint %s, version 1.0.0", got, endpoint)
	}
	// The CSI endpoint the kubelet is sent to serves.
	if _, err := os.Stat(endpoint); err != nil {
		t.Errorf("the CSI endpoint named in the registration: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("csi returned %v\n%s", err, errb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("csi did not stop on cancel")
	}
	if _, err := os.Stat(reg); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("registration socket left after stop: %v", err)
	}
}
