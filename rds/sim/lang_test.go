package sim

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// checkGolden compares got with testdata/name.golden (rewritten with -update).
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s: output differs from %s\n--- got ---\n%s--- want ---\n%s", name, path, got, want)
	}
}

const (
	addDB = `/disk add type=file file-path=storage-pool/volumes/pvc-db.img file-size=21474836480 slot=pvc-db ` +
		`nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn="nqn.2000-02.com.mikrotik:pvc-db"`
	addLogs  = `/disk add type=file file-path=/storage-pool/volumes/pvc-logs.img file-size=1G slot=pvc-logs`
	addOther = `/disk add type=file file-path=storage-pool/other.img file-size=512M slot=other ` +
		`nvme-tcp-export=yes nvme-tcp-server-port=4421 comment="not managed"`
)

// TestScripts runs command lines against a seeded simulator and compares the
// printed text with golden files: output formats and error texts.
func TestScripts(t *testing.T) {
	seeded := []string{refAdd, addDB, addLogs, addOther}
	cases := []struct {
		name    string
		json    bool
		version string
		width   int
		seed    []string
		cmd     string
	}{
		// Output formats.
		{name: "detail-ref-80", seed: []string{refAdd}, cmd: `/disk print detail where slot="pvc-test-123"`},
		{name: "detail-ref-40", width: 40, seed: []string{refAdd}, cmd: `/disk print detail where slot="pvc-test-123"`},
		{name: "detail-managed", seed: seeded, cmd: `/disk print detail where slot~"^pvc-"`},
		{name: "detail-all", seed: seeded, cmd: `/disk print detail`},
		{name: "detail-pool", seed: seeded, cmd: `/disk print detail where mount-point="storage-pool"`},
		{name: "detail-none", seed: seeded, cmd: `/disk print detail where slot="nope"`},
		{name: "mount-filesystem", seed: []string{addDB + " mount-filesystem=no", `/disk add type=file file-path=storage-pool/volumes/pvc-b.img file-size=1G slot="pvc-b"`},
			cmd: `/disk print terse where slot~"^pvc-"; /disk set [find slot="pvc-b"] mount-filesystem=no; /disk print terse proplist=slot,mount-filesystem where slot="pvc-b"; /disk set [find slot="pvc-b"] mount-filesystem=maybe`},
		{name: "terse", seed: seeded, cmd: `/disk print terse where slot~"^pvc-"`},
		{name: "table", seed: seeded, cmd: `/disk print`},
		{name: "as-value", seed: seeded, cmd: `/disk print as-value where slot="pvc-db"`},
		{name: "count-only", seed: seeded, cmd: `/disk print count-only where slot~"^pvc-"`},
		{name: "json-disks", json: true, seed: seeded, cmd: `:put [:serialize to=json [/disk print detail as-value where slot~"^pvc-"]]`},
		{name: "json-empty", json: true, seed: seeded, cmd: `:put [:serialize to=json [/disk print detail as-value where slot~"^nothing"]]`},
		{name: "json-files", json: true, seed: seeded, cmd: `:put [:serialize to=json value=[/file print detail as-value where name~"\\.img\$"]]`},
		{name: "json-off", seed: seeded, cmd: `:put [:serialize to=json [/disk print detail as-value]]`},
		{name: "files", seed: seeded, cmd: `/file print detail where name~"\\.img\$"`},
		{name: "files-table", seed: seeded, cmd: `/file print`},
		{name: "resource", json: true, cmd: `/system resource print`},
		{name: "resource-old", version: "7.12", cmd: `/system/resource/print`},
		{name: "resource-get", cmd: `:put [/system resource get version]`},
		{name: "identity", cmd: `/system identity print`},
		{name: "inventory-one-trip", seed: seeded,
			cmd: `/disk print detail where slot~"^pvc-"; :put "--files--"; /file print detail where name~"^storage-pool/volumes/.*\\.img\$"; :put "--pool--"; /disk print detail where mount-point="storage-pool"`},
		{name: "where-and-or", seed: seeded, cmd: `/disk print terse where slot~"^pvc-" and nvme-tcp-export=yes or slot="other"`},
		{name: "where-not", seed: seeded, cmd: `/disk print terse where !nvme-tcp-export and type=file`},
		{name: "where-neq-paren", seed: seeded, cmd: `/disk print terse where (slot!="pvc-db" and file-path~"volumes")`},
		{name: "find-put", seed: seeded, cmd: `:put [/disk find where slot~"^pvc-"]`},
		{name: "get-size", seed: seeded, cmd: `:put [/disk get [find slot="pvc-db"] size]`},
		{name: "default-nqn", seed: []string{addLogs, `/disk set pvc-logs nvme-tcp-export=yes`}, cmd: `/disk print terse where slot="pvc-logs"`},
		{name: "grow", seed: []string{addDB, `/disk set [find slot="pvc-db"] file-size=32212254720`}, cmd: `/disk print detail where slot="pvc-db"`},
		{name: "remove-keeps-file", seed: []string{addDB, `/disk remove [find slot="pvc-db"]`}, cmd: `/disk print terse where slot~"^pvc"; /file print terse`},
		{name: "file-remove", seed: []string{addDB, `/disk remove [find slot="pvc-db"]`, `/file remove [find name="storage-pool/volumes/pvc-db.img"]`}, cmd: `/file print terse; /disk print terse where mount-point="storage-pool"`},
		{name: "escapes", seed: []string{`/disk add type=file file-path="storage-pool/q.img" file-size=1M slot="a\"b\\c\$d" comment="x\_y"`}, cmd: `/disk print detail where slot="a\"b\\c\$d"`},
		{name: "menu-change", seed: seeded, cmd: "/disk\nprint terse where slot=pvc-db"},
		{name: "row-numbers", seed: seeded, cmd: `/disk set 2 comment=second; /disk print terse where comment=second`},
		// Version profiles.
		{name: "json-string-conversion", json: true, version: "7.16", seed: []string{`/disk add type=file file-path=storage-pool/v/1e5.img file-size=1M slot="1e5"`},
			cmd: `:put [:serialize to=json [/disk print detail as-value where slot="1e5"]]`},
		{name: "json-no-string-conversion", json: true, seed: []string{`/disk add type=file file-path=storage-pool/v/1e5.img file-size=1M slot="1e5"`},
			cmd: `:put [:serialize to=json options=json.no-string-conversion [/disk print detail as-value where slot="1e5"]]`},
		{name: "err-options-7.16", json: true, version: "7.16", cmd: `:put [:serialize to=json options=json.no-string-conversion [/disk print detail as-value]]`},
		{name: "nqn-name-7.20", json: true, version: "7.20",
			seed: []string{`/disk add type=file file-path=storage-pool/volumes/pvc-db.img file-size=1G slot=pvc-db nvme-tcp-export=yes nvme-tcp-name="nqn.2000-02.com.mikrotik:pvc-db"`},
			cmd:  `/disk print detail where slot="pvc-db"; :put [/disk get pvc-db nvme-tcp-name]`},
		{name: "err-server-nqn-7.20", version: "7.20", cmd: addDB},
		{name: "err-nqn-name-7.21", cmd: `/disk add type=file file-path=storage-pool/a.img file-size=1G slot=a nvme-tcp-export=yes nvme-tcp-name="nqn.x:a"`},
		{name: "file-sizes", seed: []string{`/disk add type=file file-path=storage-pool/g.img file-size=1G slot=g`, `/disk add type=file file-path=storage-pool/t.img file-size=10G slot=t`},
			cmd: `/disk print terse proplist=slot,size,file-size where type=file; /file print detail`},
		// Errors: text, never anything else.
		{name: "err-bad-command", cmd: `/x`},
		{name: "err-bad-verb", cmd: `/disk frobnicate`},
		{name: "err-bad-builtin", cmd: `:frob "x"`},
		{name: "err-syntax-quote", cmd: `/disk print where slot="abc`},
		{name: "err-syntax-dollar", cmd: `/disk print where slot="$x"`},
		{name: "err-unknown-arg", cmd: `/disk add type=file colour=blue`},
		{name: "err-unknown-print-flag", cmd: `/disk print sideways`},
		{name: "err-unknown-where-prop", cmd: `/disk print where colour=blue`},
		{name: "err-extra-bracket", cmd: `/disk print ]`},
		{name: "err-bad-size", cmd: `/disk add type=file file-path=storage-pool/a.img file-size=big slot=a`},
		{name: "err-size-trailing", cmd: `/disk add type=file file-path=storage-pool/a.img file-size=10Gx slot=a`},
		{name: "err-bad-bool", cmd: `/disk add type=file file-path=storage-pool/a.img file-size=1G slot=a nvme-tcp-export=maybe`},
		{name: "err-bad-port", cmd: `/disk add type=file file-path=storage-pool/a.img file-size=1G slot=a nvme-tcp-server-port=70000`},
		{name: "err-bad-type", cmd: `/disk add type=floppy file-path=storage-pool/a.img file-size=1G`},
		{name: "err-path-escape", cmd: `/disk add type=file file-path=storage-pool/../etc/passwd file-size=1G slot=a`},
		{name: "err-path-not-pool", cmd: `/disk add type=file file-path=tmp/a.img file-size=1G slot=a`},
		{name: "find-none-set", seed: seeded, cmd: `/disk set [find slot="nope"] file-size=2G; :put "nothing, silently"`},
		{name: "err-no-such-item-name", seed: seeded, cmd: `/disk set nope nvme-tcp-export=yes`},
		{name: "find-none-remove", seed: seeded, cmd: `/disk remove [find slot="nope"]; /file remove [find name="nope"]; :put "nothing, silently"`},
		{name: "err-not-enough-space", seed: seeded, cmd: `/disk add type=file file-path=storage-pool/big.img file-size=40G slot=big`},
		{name: "err-grow-no-space", seed: seeded, cmd: `/disk set pvc-db file-size=60G`},
		{name: "err-shrink", seed: seeded, cmd: `/disk set pvc-db file-size=1G`},
		{name: "err-slot-used", seed: seeded, cmd: `/disk add type=file file-path=storage-pool/volumes/x.img file-size=1G slot=pvc-db`},
		{name: "err-file-in-use", seed: seeded, cmd: `/file remove [find name="storage-pool/volumes/pvc-db.img"]`},
		{name: "err-nqn-used", seed: seeded, cmd: `/disk set pvc-logs nvme-tcp-export=yes nvme-tcp-server-nqn="nqn.2000-02.com.mikrotik:pvc-db"`},
		{name: "err-remove-pool", seed: seeded, cmd: `/disk remove storage-pool`},
		{name: "err-stops-script", seed: seeded, cmd: `:put before; /disk set nope comment=x; :put after`},
		{name: "err-parse-runs-nothing", seed: seeded, cmd: `/disk remove pvc-db; /disk print terse where slot=pvc-db; /x`},
		{name: "injection-quoted", seed: seeded, cmd: `/disk print terse where slot="x\"; /system reset-configuration"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, Options{JSON: tc.json, Version: tc.version, Width: tc.width})
			for _, sc := range tc.seed {
				mustExec(t, s, sc)
			}
			checkGolden(t, tc.name, "> "+tc.cmd+"\n"+s.Exec(tc.cmd))
		})
	}
}

// TestReferenceDetail checks that `print detail` of the disk captured on real
// hardware (shared/reference/routeros.md) wraps exactly as it did there.
func TestReferenceDetail(t *testing.T) {
	const ref = ` 0    type=file slot="pvc-test-123" slot-default="" parent="" fs=-
      model="/storage-pool/test.img"
      size=53 687 091 200 mount-filesystem=yes mount-read-only=no
      compress=no sector-size=512 raid-master=none
      nvme-tcp-export=yes nvme-tcp-server-port=4420
      nvme-tcp-server-nqn="nqn.2000-02.com.mikrotik:pvc-test-123"
      nvme-tcp-server-allow-host-name="" iscsi-export=no
      nfs-sharing=no smb-sharing=no media-sharing=no
      media-interface=none swap=no
      file-path=/storage-pool/test.img
      file-size=50.0GiB file-offset=0
`
	s := newTestServer(t, Options{})
	mustExec(t, s, refAdd)
	in := &interp{s: s, width: 80}
	it := in.diskItem(s.st.Disks[0], 0)
	it.flags = "" // the capture shows no flag letters
	var b strings.Builder
	renderDetail(&b, false, []item{it}, 0, 80)
	if got := strings.TrimSuffix(b.String(), "\n"); got != ref {
		t.Errorf("got\n%s\nwant\n%s", got, ref)
	}
}

// TestWrapWidths: no line is longer than the width, and joining the lines
// gives back every field.
func TestWrapWidths(t *testing.T) {
	for _, w := range []int{40, 60, 80, 120} {
		s := newTestServer(t, Options{Width: w})
		mustExec(t, s, refAdd)
		out := s.Exec(`/disk print detail where slot="pvc-test-123"`)
		for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
			if len(line) > w {
				t.Errorf("width %d: line of %d: %q", w, len(line), line)
			}
		}
		if w == 40 && !strings.Contains(out, "\n      nqn.2000") && !strings.Contains(out, "mikrotik:pvc-\n") {
			// the NQN field (59 chars) cannot fit 40 columns: it must be split.
			if strings.Contains(out, `nvme-tcp-server-nqn="nqn.2000-02.com.mikrotik:pvc-test-123"`) {
				t.Errorf("width 40: NQN not split:\n%s", out)
			}
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string
	}{
		{"21474836480", 21474836480, ""},
		{"10G", 10 << 30, ""},
		{"512M", 512 << 20, ""},
		{"4k", 4096, ""},
		{"2T", 2 << 40, ""},
		{"1.5G", 0, "value of file-size contains invalid trailing characters"},
		{"G", 0, "invalid value for argument file-size"},
		{"0", 0, "invalid value for argument file-size"},
		{"99999999999999999999", 0, "invalid value for argument file-size"},
		{"9000000T", 0, "invalid value for argument file-size"},
	} {
		got, err := parseSize("file-size", tc.in)
		if (err == nil) != (tc.err == "") || (err != nil && err.Error() != tc.err) || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestQuoteRoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain", `a"b`, `back\slash`, "$var", "tab\tnew\nline", "x\"; /system reset-configuration"} {
		toks, err := lex(quote(s))
		if err != nil || len(toks) != 2 || toks[0].kind != tString || toks[0].text != s {
			t.Errorf("quote(%q) = %s does not lex back: %v %v", s, quote(s), toks, err)
		}
	}
}

func TestHumanAndThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 1023: "1023B", 1024: "1024B", 1 << 30: "1024.0MiB", 1 << 40: "1024.0GiB", 10 << 30: "10.0GiB", 50 << 30: "50.0GiB", 1536 << 20: "1.5GiB"} {
		if got := human(n); got != want {
			t.Errorf("human(%d) = %s, want %s", n, got, want)
		}
	}
	for n, want := range map[int64]string{0: "0", 512: "512", 4096: "4 096", 53687091200: "53 687 091 200"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestWidthFromLogin(t *testing.T) {
	for user, want := range map[string]int{"admin": 80, "admin+ct120w": 120, "admin+cte": 80, "a+b+c40w": 40, "x+5w": 80} {
		if got := widthFor(user, 80); got != want {
			t.Errorf("widthFor(%q) = %d, want %d", user, got, want)
		}
	}
}

// TestParseErrorRunsNothing: RouterOS parses the whole script first, so a
// syntax error at its end stops the commands before it from running.
func TestParseErrorRunsNothing(t *testing.T) {
	s := newTestServer(t, Options{})
	mustExec(t, s, addDB)
	if out := s.Exec(`/disk remove pvc-db; /x`); !strings.HasPrefix(out, "bad command name x") {
		t.Fatalf("got %q", out)
	}
	if len(s.Disks()) != 1 {
		t.Error("a command before the syntax error ran")
	}
	// A runtime error, by contrast, keeps what ran before it.
	if out := s.Exec(`/disk remove pvc-db; /disk remove pvc-db`); out != "no such item\n" {
		t.Fatalf("got %q", out)
	}
	if len(s.Disks()) != 0 {
		t.Error("the first remove did not run")
	}
}
