package fabric

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzOptionString: whatever a request holds, a request that validates
// renders to an option string with exactly the expected keys, each once,
// whose values round-trip — nothing can smuggle in extra options.
func FuzzOptionString(f *testing.F) {
	f.Add("nqn.2000-02.com.mikrotik:db", "10.0.0.1", "nqn.h", 4420, -1, 5, 0)
	f.Add("nqn.x,duplicate_connect", "10.0.0.1", "", 4420, 600, 0, 5)
	f.Add("nqn.x", "fe80::1", "nqn.h=1", 1, 0, 1, 1)
	f.Fuzz(func(t *testing.T, nqn, addr, host string, port, clt, rd, kato int) {
		r := ConnectRequest{NQN: nqn, Address: addr, HostNQN: host, Port: port,
			Timeouts: Timeouts{CtrlLossTmo: clt, ReconnectDelay: rd, KeepAliveTmo: kato}}
		args := NVMeCLIArgs(r) // must not panic whatever the input
		if ValidateRequest(r) != nil {
			return
		}
		got := map[string]string{}
		for _, kv := range strings.Split(OptionString(r), ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("token %q without '='", kv)
			}
			if _, dup := got[k]; dup {
				t.Fatalf("duplicate key %q", k)
			}
			got[k] = v
		}
		want := map[string]string{"transport": "tcp", "traddr": addr, "trsvcid": strconv.Itoa(port), "nqn": nqn}
		if host != "" {
			want["hostnqn"] = host
		}
		want["ctrl_loss_tmo"] = strconv.Itoa(max(clt, -1))
		if rd > 0 {
			want["reconnect_delay"] = strconv.Itoa(rd)
		}
		if kato > 0 {
			want["keep_alive_tmo"] = strconv.Itoa(kato)
		}
		if len(got) != len(want) {
			t.Fatalf("keys %v, want %v", got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("%s=%q, want %q", k, got[k], v)
			}
		}
		if args[0] != "connect" || args[len(args)-1] != strconv.Itoa(kato) {
			t.Fatalf("args %q", args)
		}
	})
}

// FuzzMountinfo: arbitrary mountinfo text never panics, and every parsed
// major:minor came from the third field of some line.
func FuzzMountinfo(f *testing.F) {
	f.Add([]byte("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n40 22 259:0 / /a\\040b rw - ext4 /dev/nvme0n1 rw\n"))
	f.Add([]byte("x\n\n1 2 3 4\n1 2 3 4 \\\\\\0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for mm := range parseMountinfo(b) {
			if !strings.Contains(string(b), mm) {
				t.Fatalf("key %q not in input", mm)
			}
		}
		parseAddress(string(b))
		UnescapeMountInfo(string(b))
	})
}

func TestTransportsAndAddresses(t *testing.T) {
	for tr, want := range map[string]bool{"tcp": true, "rdma": true, "fc": true, "loop": true, "": true, "pcie": false, "apple-nvme": false} {
		if fabricsTransport(tr) != want {
			t.Errorf("fabricsTransport(%q) != %v", tr, want)
		}
	}
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"10.0.0.1", "10.0.0.1", true},
		{"fe80::1", "fe80:0:0::1", true},
		{"10.0.0.1", "10.0.0.2", false},
		{"host-a", "host-b", false},
		{"host-a", "host-a", true},
	} {
		if sameAddr(c.a, c.b) != c.want {
			t.Errorf("sameAddr(%q, %q) != %v", c.a, c.b, c.want)
		}
	}
}
