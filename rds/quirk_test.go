package rds

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// quirkServer is a minimal SSH server that answers every exec with out and
// closes the channel without an exit status, as some SSH servers do.
func quirkServer(t *testing.T, out string) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PasswordCallback: func(ssh.ConnMetadata, []byte) (*ssh.Permissions, error) { return nil, nil }}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				_, chans, reqs, err := ssh.NewServerConn(nc, cfg)
				if err != nil {
					return
				}
				go ssh.DiscardRequests(reqs)
				for newCh := range chans {
					ch, creqs, err := newCh.Accept()
					if err != nil {
						continue
					}
					go func() {
						for req := range creqs {
							if req.Type == "exec" {
								_ = req.Reply(true, nil)
								_, _ = io.WriteString(ch, out)
								_ = ch.Close()
								return
							}
							_ = req.Reply(false, nil)
						}
					}()
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestExitStatusMissingIsNotADrop(t *testing.T) {
	addr := quirkServer(t, "  version: 7.19 (stable)\n")
	c, err := New(Config{Address: addr, User: "admin", Password: "pw", InsecureIgnoreHostKey: true,
		BasePath: "storage-pool/volumes", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 3 {
		v, err := c.Version(ctx)
		if err != nil || v != "7.19 (stable)" {
			t.Fatalf("Version = %q, %v", v, err)
		}
	}
	if c.Dials() != 1 || c.RoundTrips() != 3 {
		t.Errorf("dials %d round trips %d, want 1 and 3", c.Dials(), c.RoundTrips())
	}
}
