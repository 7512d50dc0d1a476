package csi

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
)

// rawCodec sends and receives protobuf bytes as they are, so the test's
// encoding and decoding (protowire, by hand, from the kubelet's api.proto)
// are independent of the dynamicpb code under test.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// wireFields decodes a message of string, bytes and varint fields into
// field number -> values (varints as their decimal text).
func wireFields(t *testing.T, b []byte) map[protowire.Number][]string {
	t.Helper()
	out := map[protowire.Number][]string{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag in %x", b)
		}
		b = b[n:]
		switch typ {
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				t.Fatalf("bad bytes field %d", num)
			}
			out[num] = append(out[num], string(v))
			b = b[m:]
		case protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				t.Fatalf("bad varint field %d", num)
			}
			out[num] = append(out[num], strconv.FormatUint(v, 10))
			b = b[m:]
		default:
			t.Fatalf("unexpected wire type %d for field %d", typ, num)
		}
	}
	return out
}

type regStatus struct {
	ok  bool
	msg string
}

// startRegistration serves the registration API in a temp kubelet dir and
// returns a client connection to it (the way the kubelet dials: unix socket,
// no TLS) and the channel of statuses.
func startRegistration(t *testing.T) (*grpc.ClientConn, string, chan regStatus, context.CancelFunc, chan error) {
	t.Helper()
	kdir := t.TempDir()
	sock := RegistrationSocket(kdir, DefaultDriverName)
	if want := filepath.Join(kdir, "plugins_registry", "rds.csi.rds-reconcile.io-reg.sock"); sock != want {
		t.Fatalf("RegistrationSocket = %s, want %s", sock, want)
	}
	statuses := make(chan regStatus, 4)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- ServeRegistration(ctx, Registration{
			Driver: DefaultDriverName, Endpoint: "/var/lib/kubelet/plugins/rds.csi.rds-reconcile.io/csi.sock", Socket: sock,
			OnStatus: func(ok bool, msg string) { statuses <- regStatus{ok, msg} },
		})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if fi, err := os.Stat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no registration socket at %s after 10 s: %v", sock, <-done)
		}
		time.Sleep(10 * time.Millisecond)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); cancel() })
	return conn, sock, statuses, cancel, done
}

func TestRegistrationGetInfo(t *testing.T) {
	conn, _, _, _, _ := startRegistration(t)
	in, out := []byte{}, []byte(nil) // InfoRequest has no fields
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	// Retried while the server's accept loop may not run yet (a loaded host).
	var err error
	for range 50 {
		if err = conn.Invoke(ctx, "/pluginregistration.Registration/GetInfo", &in, &out); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("GetInfo: %v", err)
	}
	f := wireFields(t, out)
	if got := f[1]; !slices.Equal(got, []string{"CSIPlugin"}) {
		t.Errorf("PluginInfo.type = %q, want CSIPlugin", got)
	}
	if got := f[2]; !slices.Equal(got, []string{DefaultDriverName}) {
		t.Errorf("PluginInfo.name = %q, want %s", got, DefaultDriverName)
	}
	if got := f[3]; !slices.Equal(got, []string{"/var/lib/kubelet/plugins/rds.csi.rds-reconcile.io/csi.sock"}) {
		t.Errorf("PluginInfo.endpoint = %q", got)
	}
	if got := f[4]; !slices.Equal(got, []string{"1.0.0"}) {
		t.Errorf("PluginInfo.supported_versions = %q, want [1.0.0]", got)
	}
	if len(f) != 4 {
		t.Errorf("PluginInfo has fields %v, want 1..4 only", f)
	}
}

func TestRegistrationNotifyAndStop(t *testing.T) {
	conn, sock, statuses, cancel, done := startRegistration(t)
	ctx, ccancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer ccancel()
	notify := func(ok bool, msg string) {
		t.Helper()
		var in []byte
		if ok {
			in = protowire.AppendTag(in, 1, protowire.VarintType)
			in = protowire.AppendVarint(in, 1)
		}
		if msg != "" {
			in = protowire.AppendTag(in, 2, protowire.BytesType)
			in = protowire.AppendString(in, msg)
		}
		var out []byte
		if err := conn.Invoke(ctx, "/pluginregistration.Registration/NotifyRegistrationStatus", &in, &out, grpc.WaitForReady(true)); err != nil {
			t.Fatalf("NotifyRegistrationStatus: %v", err)
		}
		if len(out) != 0 {
			t.Errorf("RegistrationStatusResponse = %x, want empty", out)
		}
		select {
		case s := <-statuses:
			if s.ok != ok || s.msg != msg {
				t.Errorf("OnStatus(%v, %q), want (%v, %q)", s.ok, s.msg, ok, msg)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("OnStatus was not called")
		}
	}
	notify(false, "RegisterPlugin error -- plugin registration failed with err: no NodeGetInfo")
	notify(true, "")

	// An unknown method is refused, not answered with an empty message.
	var in, out []byte
	if err := conn.Invoke(ctx, "/pluginregistration.Registration/Other", &in, &out); err == nil {
		t.Error("an unknown method was answered")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeRegistration after cancel: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("ServeRegistration did not stop 20 s after its context ended")
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the registration socket is still there after stop (the kubelet would keep the plugin): %v", err)
	}
}

func TestRegistrationRefusesARelativeEndpoint(t *testing.T) {
	for _, ep := range []string{"", "csi.sock", "unix:///var/lib/kubelet/plugins/x/csi.sock", "/var/lib/kubelet/plugins/x/../csi.sock"} {
		err := ServeRegistration(t.Context(), Registration{Driver: DefaultDriverName, Endpoint: ep, Socket: filepath.Join(t.TempDir(), "r.sock")})
		if err == nil || !strings.Contains(err.Error(), "absolute, clean socket path") {
			t.Errorf("endpoint %q: err = %v, want the absolute-path message", ep, err)
		}
	}
}
