package csi

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

func ip(i int) *int { return &i }

func TestParseParams(t *testing.T) {
	tests := []struct {
		name    string
		in      map[string]string
		want    Params
		wantErr []string // substrings, all must appear
	}{
		{name: "empty inherits everything", in: nil, want: Params{}},
		{name: "all set", in: map[string]string{"ctrlLossTmo": "600", "reconnectDelay": "5", "keepAliveTmo": "10", "fsType": "xfs"},
			want: Params{Connection: spec.Connection{CtrlLossTmo: ip(600), ReconnectDelay: ip(5), KeepAliveTmo: ip(10)}, FSType: "xfs"}},
		{name: "reconnect forever", in: map[string]string{"ctrlLossTmo": "-1"}, want: Params{Connection: spec.Connection{CtrlLossTmo: ip(-1)}}},
		{name: "zero keep-alive is the kernel default", in: map[string]string{"keepAliveTmo": "0"}, want: Params{Connection: spec.Connection{KeepAliveTmo: ip(0)}}},
		{name: "spaces trimmed", in: map[string]string{"reconnectDelay": " 7 "}, want: Params{Connection: spec.Connection{ReconnectDelay: ip(7)}}},
		{name: "provisioner metadata ignored", in: map[string]string{"csi.storage.k8s.io/pvc/name": "data"}, want: Params{}},
		{name: "ctrlLossTmo below -1", in: map[string]string{"ctrlLossTmo": "-2"}, wantErr: []string{"ctrlLossTmo: -2 is out of range", "-1 (reconnect forever)"}},
		{name: "reconnectDelay zero", in: map[string]string{"reconnectDelay": "0"}, wantErr: []string{"reconnectDelay: 0 is out of range", ">= 1"}},
		{name: "keepAliveTmo negative", in: map[string]string{"keepAliveTmo": "-5"}, wantErr: []string{"keepAliveTmo: -5 is out of range"}},
		{name: "not a number", in: map[string]string{"ctrlLossTmo": "10s"}, wantErr: []string{`ctrlLossTmo: "10s" is not a whole number`}},
		{name: "too large", in: map[string]string{"ctrlLossTmo": "999999999"}, wantErr: []string{"at most 604800 (a week)"}},
		{name: "empty value", in: map[string]string{"reconnectDelay": ""}, wantErr: []string{"reconnectDelay is empty"}},
		{name: "unknown fs", in: map[string]string{"fsType": "btrfs"}, wantErr: []string{`fsType: "btrfs" is not supported; use one of ext4, xfs`}},
		{name: "typo reported", in: map[string]string{"ctrlLossTimeout": "5"}, wantErr: []string{`parameter "ctrlLossTimeout" is unknown`, "ctrlLossTmo"}},
		{name: "every problem at once", in: map[string]string{"ctrlLossTmo": "x", "reconnectDelay": "0"},
			wantErr: []string{"ctrlLossTmo", "reconnectDelay"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseParams(tt.in)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("ParseParams(%v) = %+v, want an error", tt.in, got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseParams(%v): %v", tt.in, err)
			}
			eq := func(a, b *int) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
			if !eq(got.Connection.CtrlLossTmo, tt.want.Connection.CtrlLossTmo) || !eq(got.Connection.ReconnectDelay, tt.want.Connection.ReconnectDelay) ||
				!eq(got.Connection.KeepAliveTmo, tt.want.Connection.KeepAliveTmo) || got.FSType != tt.want.FSType {
				t.Errorf("ParseParams(%v) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestVolumeContextRoundTrip(t *testing.T) {
	st := &spec.State{
		Target:   &spec.Target{Address: "10.0.0.1", NVMePort: 4421, BasePath: "pool/v", NQNPrefix: "nqn.2000-02.com.mikrotik:"},
		Defaults: &spec.Defaults{Connection: spec.Connection{ReconnectDelay: ip(3)}, FSType: "ext4"},
	}
	v := &spec.Volume{Name: "pvc-1", Size: spec.Quantity{Bytes: 32 << 20}, Connection: spec.Connection{CtrlLossTmo: ip(120)}, FSType: "xfs"}
	vc := volumeContext(st, v)
	nv, err := parseVolumeContext("pvc-1", vc)
	if err != nil {
		t.Fatal(err)
	}
	want := nodeVolume{Address: "10.0.0.1", Port: 4421, NQN: "nqn.2000-02.com.mikrotik:pvc-1", NQNPrefix: "nqn.2000-02.com.mikrotik:",
		BasePath: "pool/v", Size: 32 << 20, Timeouts: spec.Timeouts{CtrlLossTmo: 120, ReconnectDelay: 3, KeepAliveTmo: 0}, FSType: "xfs"}
	if nv != want {
		t.Errorf("round trip:\n got %+v\nwant %+v", nv, want)
	}
	// A context whose NQN does not belong to the volume is refused: the
	// node must never connect a subsystem other than the one staged.
	vc[CtxNQN] = "nqn.2000-02.com.mikrotik:other"
	if _, err := parseVolumeContext("pvc-1", vc); err == nil || !strings.Contains(err.Error(), "is not nqn.2000-02.com.mikrotik:pvc-1") {
		t.Errorf("foreign NQN accepted: %v", err)
	}
	if _, err := parseVolumeContext("pvc-1", map[string]string{}); err == nil || !strings.Contains(err.Error(), "address is missing") {
		t.Errorf("empty context: %v", err)
	}
}

func TestVolumeName(t *testing.T) {
	tests := []struct {
		name, prefix, want string
	}{
		{"pvc-0c6f3f8e-7b1c-4c1e-9d3a-1f2e3d4c5b6a", "", "pvc-0c6f3f8e-7b1c-4c1e-9d3a-1f2e3d4c5b6a"},
		{"db-data", "", "db-data"},
		{"Sanity Volume", "", "csi-" + hashOf("Sanity Volume")},
		{strings.Repeat("a", 64), "", "csi-" + hashOf(strings.Repeat("a", 64))},
		{"-leading-dash", "", "csi-" + hashOf("-leading-dash")},
		{"pvc-1", "k8s-", "k8s-csi-" + hashOf("pvc-1")},
		{"k8s-pvc-1", "k8s-", "k8s-pvc-1"},
		// A name that looks hashed is hashed too, so no verbatim name can
		// collide with the hash of another.
		{"csi-0123456789abcdef0123", "", "csi-" + hashOf("csi-0123456789abcdef0123")},
	}
	for _, tt := range tests {
		got := VolumeName(tt.name, tt.prefix)
		if got != tt.want {
			t.Errorf("VolumeName(%q, %q) = %q, want %q", tt.name, tt.prefix, got, tt.want)
		}
		if !validVolumeID(got) {
			t.Errorf("VolumeName(%q) = %q is not a valid volume name", tt.name, got)
		}
		if again := VolumeName(tt.name, tt.prefix); again != got {
			t.Errorf("VolumeName is not deterministic: %q then %q", got, again)
		}
	}
	if VolumeName("A", "") == VolumeName("B", "") {
		t.Error("different names map to one volume")
	}
}

func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:20]
}

func TestPageTokens(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e"}
	var got []string
	tok := ""
	for range 10 {
		p, next, err := page(names, tok, 2)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p...)
		if next == "" {
			break
		}
		tok = next
	}
	if strings.Join(got, ",") != "a,b,c,d,e" {
		t.Errorf("pages = %v", got)
	}
	// The token names where to resume; deleting that volume does not
	// skip or repeat others.
	_, next, _ := page(names, "", 2) // next page starts at "c"
	p, _, err := page([]string{"a", "b", "d", "e"}, next, 2)
	if err != nil || strings.Join(p, ",") != "d,e" {
		t.Errorf("after deleting the token's volume: %v, %v", p, err)
	}
	for _, bad := range []string{"garbage", "v1.", "v1.!!!", "v2." + encodeToken("a")[3:], encodeToken("Not A Name")} {
		if _, _, err := page(names, bad, 2); err == nil {
			t.Errorf("token %q accepted", bad)
		}
	}
	if p, next, _ := page(names, "", 0); len(p) != 5 || next != "" {
		t.Errorf("max 0 = all: %v %q", p, next)
	}
}

func TestSizeFor(t *testing.T) {
	const mi = 1 << 20
	tests := []struct {
		req, lim int64
		want     int64
		code     codes.Code
	}{
		{0, 0, 1 << 30, codes.OK},
		{1, 0, mi, codes.OK},
		{mi, 0, mi, codes.OK},
		{mi + 1, 0, 2 * mi, codes.OK},
		{10 * mi, 10 * mi, 10 * mi, codes.OK},
		{0, 10 * mi, 10 * mi, codes.OK},         // default capped by the limit
		{mi + 1, mi + 100, 0, codes.OutOfRange}, // rounds up over the limit
		{0, 100, 0, codes.OutOfRange},           // no aligned size fits
		{20 * mi, 10 * mi, 0, codes.InvalidArgument},
		{-1, 0, 0, codes.InvalidArgument},
	}
	for _, tt := range tests {
		got, err := sizeFor(&csi.CapacityRange{RequiredBytes: tt.req, LimitBytes: tt.lim}, 1<<30)
		if status.Code(err) != tt.code || got != tt.want {
			t.Errorf("sizeFor(%d, %d) = %d, %v; want %d, %v", tt.req, tt.lim, got, err, tt.want, tt.code)
		}
	}
}

func TestCheckCapability(t *testing.T) {
	mode := func(m csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
		c := mountCap()
		c.AccessMode.Mode = m
		return c
	}
	if err := checkCapability(mountCap()); err != nil {
		t.Error(err)
	}
	if err := checkCapability(mode(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)); err == nil || !strings.Contains(err.Error(), "block volumes only") {
		t.Errorf("multi-node writer accepted on a filesystem: %v", err)
	}
	c := mountCap()
	c.GetMount().FsType = "btrfs"
	if err := checkCapability(c); err == nil {
		t.Error("btrfs accepted")
	}
	if err := checkCapability(&csi.VolumeCapability{AccessMode: mountCap().AccessMode}); err == nil {
		t.Error("capability without access type accepted")
	}
}

func TestMountInfoHas(t *testing.T) {
	mi := []byte(`22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 7:0 / /var/lib/kubelet/pods/x/volumes/my\040vol rw shared:2 - ext4 /dev/loop0 rw
41 22 0:5 /loop0 /tmp/block/target rw - devtmpfs udev rw
`)
	for p, want := range map[string]bool{
		"/": true, "/var/lib/kubelet/pods/x/volumes/my vol": true, "/tmp/block/target": true,
		"/var/lib/kubelet": false, "/tmp/block": false,
	} {
		if got := mountInfoHas(mi, p); got != want {
			t.Errorf("mountInfoHas(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestSplitMountFlags(t *testing.T) {
	bits, data, err := splitMountFlags([]string{"noatime", "discard,nodev", "data=ordered"})
	if err != nil {
		t.Fatal(err)
	}
	if data != "discard,data=ordered" || bits == 0 {
		t.Errorf("bits %x data %q", bits, data)
	}
	if _, _, err := splitMountFlags([]string{"a b"}); err == nil {
		t.Error("whitespace accepted")
	}
}

func TestValidNodeID(t *testing.T) {
	for id, want := range map[string]bool{
		"worker-1": true, "ip-10-0-0-1.eu-west-1.compute.internal": true, "Node_A": true,
		"": false, "../etc": false, "a/b": false, "-x": false, strings.Repeat("a", 254): false,
	} {
		if got := validNodeID(id); got != want {
			t.Errorf("validNodeID(%q) = %v, want %v", id, got, want)
		}
	}
}
