package rds

import (
	"errors"
	"strings"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/internal/retryable"
)

func TestQuote(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"db", `"db"`, true},
		{"storage-pool/volumes/db.img", `"storage-pool/volumes/db.img"`, true},
		{`x"; /system reset-configuration`, `"x\"; /system reset-configuration"`, true},
		{`a\b$c?d`, `"a\\b\$c\?d"`, true},
		{"", `""`, true},
		{"a\nb", "", false},
		{"a\rb", "", false},
		{"a\x00b", "", false},
		{"a\x7fb", "", false},
		{"caf\u00e9", "", false},
	} {
		got, err := Quote(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("Quote(%q) = %q, %v; want %q ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("Quote(%q) error %v is not ErrInvalid", tc.in, err)
		}
	}
}

// TestQuoteRoundTrip checks that what Quote produces parses back to the
// input with the parser's RouterOS unquoting.
func TestQuoteRoundTrip(t *testing.T) {
	for _, s := range []string{`plain`, `x"; /system reset-configuration`, `\\$$??""`, `a b`} {
		q, err := Quote(s)
		if err != nil {
			t.Fatal(err)
		}
		got, n, err := unquote(q)
		if err != nil || n != len(q) || got != s {
			t.Errorf("unquote(Quote(%q)) = %q, %d, %v", s, got, n, err)
		}
	}
}

var injections = []string{
	`x"; /system reset-configuration`,
	`x; /system reset-configuration`,
	`x] ; /file remove [find`,
	"x\n/system reset-configuration",
	`$(reboot)`,
	`pvc-a b`,
	`pvc-A`,
	`pvc-`,
	`-pvc`,
	`pvc-a.img`,
	`pvc-` + strings.Repeat("a", 60),
	``,
}

func TestValidatorSlot(t *testing.T) {
	v := validator{prefix: "pvc-", base: "storage-pool/volumes"}
	for _, ok := range []string{"pvc-a", "pvc-0", "pvc-a-b-1", "pvc-" + strings.Repeat("a", 59)} {
		if err := v.slot(ok); err != nil {
			t.Errorf("slot(%q) = %v", ok, err)
		}
	}
	for _, bad := range append(injections, "db", "other-a") {
		if err := v.slot(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("slot(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestValidatorFilePath(t *testing.T) {
	v := validator{prefix: "pvc-", base: "storage-pool/volumes"}
	for _, tc := range []struct {
		path, slot, want string
		ok               bool
	}{
		{"storage-pool/volumes/pvc-a.img", "pvc-a", "storage-pool/volumes/pvc-a.img", true},
		{"/storage-pool/volumes/pvc-a.img", "pvc-a", "storage-pool/volumes/pvc-a.img", true},
		{"storage-pool/volumes/pvc-b.img", "pvc-a", "", false},
		{"storage-pool/other/pvc-a.img", "pvc-a", "", false},
		{"storage-pool/volumes/sub/pvc-a.img", "pvc-a", "", false},
		{"storage-pool/volumes/../pvc-a.img", "pvc-a", "", false},
		{"storage-pool/volumes//pvc-a.img", "pvc-a", "", false},
		{`storage-pool/volumes/pvc-a.img"; /system reset-configuration`, "pvc-a", "", false},
		{"storage-pool/volumes/pvc-a.raw", "pvc-a", "", false},
		{"storage pool/volumes/pvc-a.img", "pvc-a", "", false},
	} {
		got, err := v.filePath(tc.path, tc.slot)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("filePath(%q, %q) = %q, %v; want %q ok=%v", tc.path, tc.slot, got, err, tc.want, tc.ok)
		}
	}
	if _, err := v.leftoverFile("storage-pool/volumes/other.img"); !errors.Is(err, ErrInvalid) {
		t.Errorf("leftover unmanaged file: %v", err)
	}
	if got, err := v.leftoverFile("/storage-pool/volumes/pvc-x.img"); err != nil || got != "storage-pool/volumes/pvc-x.img" {
		t.Errorf("leftover managed file: %q %v", got, err)
	}
}

func TestValidNQNPortSize(t *testing.T) {
	for _, ok := range []string{"nqn.2000-02.com.mikrotik:pvc-a", "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427"} {
		if err := validNQN(ok); err != nil {
			t.Errorf("validNQN(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", `nqn"x`, "nqn x", "nqn;x", strings.Repeat("n", 224)} {
		if err := validNQN(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("validNQN(%q) = %v", bad, err)
		}
	}
	for _, p := range []int{0, -1, 65536} {
		if validPort(p) == nil {
			t.Errorf("validPort(%d) accepted", p)
		}
	}
	if validPort(1) != nil || validPort(65535) != nil {
		t.Error("validPort rejects bounds")
	}
	if validSize(0) == nil || validSize(-1) == nil || validSize(1) != nil {
		t.Error("validSize bounds")
	}
}

func TestCommands(t *testing.T) {
	add, err := cmdAdd(CreateRequest{Slot: "pvc-a", FilePath: "storage-pool/volumes/pvc-a.img", Size: 21474836480, Port: 4420, NQN: "nqn.2000-02.com.mikrotik:pvc-a"})
	if err != nil {
		t.Fatal(err)
	}
	rc := readCommands{v: validator{prefix: "pvc-", base: "storage-pool/volumes"}}
	rcJSON := readCommands{json: true, v: rc.v}
	rcAll := readCommands{v: validator{base: "storage-pool/volumes"}}
	set, _ := cmdSetExport(ExportRequest{Slot: "pvc-a", Port: 4421, NQN: "nqn.x:pvc-a"})
	grow, _ := cmdGrow("pvc-a", 32212254720)
	rmd, _ := cmdRemoveDisk("pvc-a")
	rmf, _ := cmdRemoveFile("storage-pool/volumes/pvc-a.img")
	get, _ := rc.disk("pvc-a")
	for _, tc := range []struct{ got, want string }{
		{add, `/disk add type=file file-path="storage-pool/volumes/pvc-a.img" file-size=21474836480 slot="pvc-a" mount-filesystem=no nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn="nqn.2000-02.com.mikrotik:pvc-a"`},
		{set, `/disk set [find slot="pvc-a"] mount-filesystem=no nvme-tcp-export=yes nvme-tcp-server-port=4421 nvme-tcp-server-nqn="nqn.x:pvc-a"`},
		{grow, `/disk set [find slot="pvc-a"] file-size=32212254720`},
		{rmd, `/disk remove [find slot="pvc-a"]`},
		{rmf, `/file remove [find name="storage-pool/volumes/pvc-a.img"]`},
		{get, `/disk print detail where slot="pvc-a"`},
		{rc.disks(), `/disk print detail where slot~"^pvc-"`},
		{rcAll.disks(), `/disk print detail where type=file`},
		{rc.pool(), `/disk print detail where mount-point="storage-pool"`},
		{rcJSON.disks(), `:put [:serialize to=json options=json.no-string-conversion [/disk print detail as-value where slot~"^pvc-"]]`},
		{rc.list(), `:put "##rds-reconcile:disks"; /disk print detail where slot~"^pvc-"; :put "##rds-reconcile:files"; /file print detail where name~"storage-pool/volumes/"; :put "##rds-reconcile:pool"; /disk print detail where mount-point="storage-pool"; :put "##rds-reconcile:exports"; /disk print detail where nvme-tcp-export=yes; :put "##rds-reconcile:end"`},
	} {
		if tc.got != tc.want {
			t.Errorf("command\n got %s\nwant %s", tc.got, tc.want)
		}
	}
}

func TestClassifyOutput(t *testing.T) {
	for _, tc := range []struct {
		out       string
		want      error
		retryable bool
	}{
		{"failure: not enough space", ErrNoSpace, false},
		{"no such item", ErrNotFound, false},
		{"bad command name x (line 1 column 2)", ErrRejected, false},
		{"expected end of command (line 1 column 40)", ErrRejected, false},
		{"syntax error (line 1 column 7)", ErrRejected, false},
		{"input does not match any value of type", ErrRejected, false},
		{"invalid value for argument file-size", ErrRejected, false},
		{"value of file-size contains invalid trailing characters", ErrRejected, false},
		{"action cancelled", ErrRejected, false},
		{"failure: device busy", ErrBusy, true},
		{"action timed out - try again", ErrBusy, true},
		{"something unexpected", ErrRejected, false},
	} {
		err := outputError("op", "pvc-a", "/disk x", tc.out)
		if !errors.Is(err, tc.want) || retryable.Is(err) != tc.retryable {
			t.Errorf("%q: %v retryable=%v; want %v retryable=%v", tc.out, err, retryable.Is(err), tc.want, tc.retryable)
		}
	}
	if errorLine("  0 slot=\"busy-1\"\n") != "" {
		t.Error("data mentioning busy taken for an error")
	}
	if errorLine("\nbad command name serialize (line 1 column 8)\n") == "" {
		t.Error("error line missed")
	}
}
