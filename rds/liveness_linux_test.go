package rds

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// TestDialerTCPKeepAlive: the socket the client dials carries TCP
// keepalive with Config.KeepAlive as its idle time, and none when it is
// negative.
func TestDialerTCPKeepAlive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for _, tc := range []struct {
		ka              time.Duration
		on              bool
		idle, intvl, nr int
	}{
		{0, true, 30, 10, 3}, // the default
		{45 * time.Second, true, 45, 15, 3},
		{2 * time.Second, true, 2, 1, 3},
		{-1, false, 0, 0, 0},
	} {
		c, err := New(Config{Address: ln.Addr().String(), User: "u", Password: "p", InsecureIgnoreHostKey: true,
			BasePath: "storage-pool/volumes", KeepAlive: tc.ka})
		if err != nil {
			t.Fatal(err)
		}
		nc, err := c.dialer().Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		raw, err := nc.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var on, idle, intvl, nr int
		_ = raw.Control(func(fd uintptr) {
			on, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
			idle, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)
			intvl, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL)
			nr, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT)
		})
		nc.Close()
		if (on != 0) != tc.on || (tc.on && (idle != tc.idle || intvl != tc.intvl || nr != tc.nr)) {
			t.Errorf("KeepAlive %v: SO_KEEPALIVE=%d idle=%d interval=%d count=%d, want %v %d %d %d",
				tc.ka, on, idle, intvl, nr, tc.on, tc.idle, tc.intvl, tc.nr)
		}
	}
}
