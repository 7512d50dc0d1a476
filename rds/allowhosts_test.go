package rds

import (
	"errors"
	"slices"
	"testing"
)

const (
	hostA = "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427"
	hostB = "nqn.2014-08.org.nvmexpress:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8"
)

func TestAllowHostsFormatParse(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{}, ""},
		{[]string{hostA}, hostA},
		{[]string{hostB, hostA, hostB}, hostA + "," + hostB},
		{[]string{NoHostNQN}, NoHostNQN},
	} {
		got, err := FormatAllowHosts(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("FormatAllowHosts(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if back := ParseAllowHosts(got); !slices.Equal(back, NormalizeAllowHosts(tc.in)) {
			t.Errorf("ParseAllowHosts(%q) = %q, want %q", got, back, NormalizeAllowHosts(tc.in))
		}
	}
	if got := ParseAllowHosts(" " + hostB + " , ," + hostA); !slices.Equal(got, []string{hostA, hostB}) {
		t.Errorf("ParseAllowHosts with spaces = %q", got)
	}
	if ParseAllowHosts("") != nil {
		t.Error(`ParseAllowHosts("") is not nil (every host)`)
	}
	// Every entry is an NQN or nothing is formatted.
	for _, bad := range [][]string{{""}, {hostA, `x"; /system reset-configuration`}, {"a,b"}, {"a b"}, {"nqn$x"}} {
		if _, err := FormatAllowHosts(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("FormatAllowHosts(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if validNQN(NoHostNQN) != nil {
		t.Error("NoHostNQN is not a valid NQN")
	}
}

func TestDiskFromFieldsAllowHosts(t *testing.T) {
	d, err := DiskFromFields(map[string]string{"slot": "pvc-a", "nvme-tcp-server-allow-host-name": hostB + "," + hostA})
	if err != nil || !slices.Equal(d.AllowHosts, []string{hostA, hostB}) {
		t.Errorf("AllowHosts = %q, %v", d.AllowHosts, err)
	}
	d, _ = DiskFromFields(map[string]string{"slot": "pvc-a", "nvme-tcp-server-allow-host-name": ""})
	if d.AllowHosts != nil {
		t.Errorf("empty allow-host-name = %q, want nil (every host)", d.AllowHosts)
	}
}
