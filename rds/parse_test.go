package rds

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the parsers' current output")

// goldenResult is what a golden file holds: the raw maps and, for items
// with a slot, the Disk built from them.
type goldenResult struct {
	Items []map[string]string `json:"items"`
	Disks []Disk              `json:"disks,omitempty"`
	Files []File              `json:"files,omitempty"`
	Pool  *Capacity           `json:"pool,omitempty"`
}

func parseByName(t *testing.T, name, text string) []map[string]string {
	t.Helper()
	var items []map[string]string
	var err error
	switch {
	case strings.HasPrefix(name, "detail_"):
		items, err = ParseDetail(text)
	case strings.HasPrefix(name, "terse_"):
		items, err = ParseTerse(text)
	case strings.HasPrefix(name, "json_"):
		items, err = ParseJSON(text)
	default:
		t.Fatalf("testdata %s: unknown format prefix", name)
	}
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	return items
}

func TestParseGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txt")
		t.Run(name, func(t *testing.T) {
			text, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			res := goldenResult{Items: parseByName(t, name, string(text))}
			if res.Items == nil {
				res.Items = []map[string]string{}
			}
			for _, m := range res.Items {
				switch {
				case m["slot"] != "" && m["mount-point"] != "":
					c, err := CapacityFromFields(m)
					if err != nil {
						t.Fatalf("capacity: %v", err)
					}
					res.Pool = &c
				case m["slot"] != "":
					d, err := DiskFromFields(m)
					if err != nil {
						t.Fatalf("disk: %v", err)
					}
					res.Disks = append(res.Disks, d)
				case m["name"] != "":
					f, err := FileFromFields(m)
					if err != nil {
						t.Fatalf("file: %v", err)
					}
					res.Files = append(res.Files, f)
				}
			}
			got, err := json.MarshalIndent(res, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := strings.TrimSuffix(file, ".txt") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./rds -run TestParseGolden -update)", err)
			}
			if string(got) != string(want) {
				t.Errorf("%s differs from golden:\n--- got\n%s\n--- want\n%s", name, got, want)
			}
		})
	}
}

// TestWrappedEqualsUnwrapped checks that every console width yields the
// same items as the widest one: wrapping must be invisible after parsing.
func TestWrappedEqualsUnwrapped(t *testing.T) {
	read := func(name string) []map[string]string {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		items, err := ParseDetail(string(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return items
	}
	want := read("detail_wrap80.txt")
	if len(want) != 3 {
		t.Fatalf("width 80: %d items, want 3", len(want))
	}
	for _, name := range []string{"detail_wrap40.txt", "detail_wrap24.txt"} {
		if got := read(name); !reflect.DeepEqual(got, want) {
			t.Errorf("%s parses differently from width 80:\n got %v\nwant %v", name, got, want)
		}
	}
	// At 16 columns (the narrowest a console gets) even field names are
	// cut, and a cut exactly after a complete value is ambiguous; the
	// fields a Disk is made of must still come out right.
	narrow := read("detail_wrap16.txt")
	if len(narrow) != len(want) {
		t.Fatalf("width 16: %d items", len(narrow))
	}
	for i := range want {
		w, err1 := DiskFromFields(want[i])
		n, err2 := DiskFromFields(narrow[i])
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		w.Fields, n.Fields = nil, nil
		if !reflect.DeepEqual(w, n) {
			t.Errorf("width 16 item %d: %+v, want %+v", i, n, w)
		}
	}
	if got := want[1]["slot"]; got != "pvc-0123456789abcdef0123456789abcdef0123456789abcdef-longname" {
		t.Errorf("long slot = %q", got)
	}
	if got := want[1]["size"]; got != "53 687 091 200" {
		t.Errorf("size raw = %q, want thousands separators kept", got)
	}
}

func TestParseDetailHardwareSample(t *testing.T) {
	b, err := os.ReadFile("testdata/detail_hardware.txt")
	if err != nil {
		t.Fatal(err)
	}
	items, err := ParseDetail(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 {
		t.Fatalf("%d items", len(items))
	}
	d, err := DiskFromFields(items[0])
	if err != nil {
		t.Fatal(err)
	}
	want := Disk{Slot: "pvc-test-123", Type: "file", FilePath: "storage-pool/test.img", Size: 53687091200,
		Export: true, Port: 4420, NQN: "nqn.2000-02.com.mikrotik:pvc-test-123", MountFilesystem: true}
	d.Fields = nil
	if !reflect.DeepEqual(d, want) {
		t.Errorf("disk = %+v\nwant %+v", d, want)
	}
	if items[0]["file-size"] != "50.0GiB" || items[0][FieldRow] != "0" {
		t.Errorf("raw fields: file-size=%q row=%q", items[0]["file-size"], items[0][FieldRow])
	}
}

func TestParseDetailFlagsAndComments(t *testing.T) {
	b, err := os.ReadFile("testdata/detail_flags_escapes.txt")
	if err != nil {
		t.Fatal(err)
	}
	items, err := ParseDetail(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 {
		t.Fatalf("%d items, want 3", len(items))
	}
	checks := []struct {
		item       int
		key, value string
	}{
		{0, FieldFlags, "BM"},
		{0, FieldComment, "system disk"},
		{0, "model", "Samsung SSD 990 PRO 2TB"},
		{0, "size", "2 000 398 934 016"},
		{1, FieldFlags, "Xt"},
		{1, "comment", `say "hi" \ cost $5 ok?`},
		{2, FieldRow, "10"},
		{2, FieldFlags, "t"},
	}
	for _, c := range checks {
		if got := items[c.item][c.key]; got != c.value {
			t.Errorf("item %d %s = %q, want %q", c.item, c.key, got, c.value)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		parse    func(string) ([]map[string]string, error)
	}{
		{"unterminated quote", ` 0 slot="abc`, ParseDetail},
		{"bare word", ` 0 t  slot="a" 123abc`, ParseDetail},
		{"text after quote", ` 0 slot="a"b`, ParseTerse},
		{"json garbage", `[{"a":`, ParseJSON},
		{"json scalar", `42`, ParseJSON},
		{"json array of scalars", `[1,2]`, ParseJSON},
		{"json trailing", `[] []`, ParseJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.parse(tc.in); !errors.Is(err, ErrRejected) {
				t.Errorf("err = %v, want ErrRejected", err)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"53 687 091 200", 53687091200, true},
		{"2048.000000", 2048, true},
		{"0", 0, true},
		{"9 223 372 036 854 775 807", 9223372036854775807, true},
		{"50.0GiB", 50 << 30, true},
		{"1G", 1 << 30, true},
		{"512KiB", 512 << 10, true},
		{"1.5TiB", 3 << 39, true},
		{"", 0, false},
		{"-5", 0, false},
		{"abc", 0, false},
		{"12XB", 0, false},
		{"99999999999PiB", 0, false},
	} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestDiskFromFields(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    map[string]string
		want Disk
		err  bool
	}{
		{"server nqn wins", map[string]string{"slot": "a", "nvme-tcp-server-nqn": "n1", "nvme-tcp-name": "n0"},
			Disk{Slot: "a", NQN: "n1"}, false},
		{"old name", map[string]string{"slot": "a", "nvme-tcp-name": "n0", "nvme-tcp-port": "4421"},
			Disk{Slot: "a", NQN: "n0", Port: 4421}, false},
		{"file-size fallback", map[string]string{"slot": "a", "file-size": "2048.000000"},
			Disk{Slot: "a", Size: 2048}, false},
		{"json bools", map[string]string{"slot": "a", "nvme-tcp-export": "true", "file-path": "/p/a.img"},
			Disk{Slot: "a", Export: true, FilePath: "p/a.img"}, false},
		{"no slot", map[string]string{"size": "1"}, Disk{}, true},
		{"bad size", map[string]string{"slot": "a", "size": "lots"}, Disk{}, true},
		{"bad port", map[string]string{"slot": "a", "nvme-tcp-server-port": "70000"}, Disk{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DiskFromFields(tc.m)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			got.Fields = nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseKeyValueLines(t *testing.T) {
	out := "                   uptime: 1w2d3h\n                  version: 7.16.2 (stable)\n" +
		"               build-time: 2024-11-27 10:11:12\n             architecture-name: arm64\n"
	m := parseKeyValueLines(out)
	if m["version"] != "7.16.2 (stable)" || m["build-time"] != "2024-11-27 10:11:12" {
		t.Errorf("got %v", m)
	}
}

func TestSplitSections(t *testing.T) {
	out := markDisks + "\n[]\n" + markFiles + "\n[{\"name\":\"x\"}]\n" + markPool + "\n\n" + markEnd + "\n"
	s, err := splitSections(out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(s[markDisks]) != "[]" || !strings.Contains(s[markFiles], "x") || strings.TrimSpace(s[markPool]) != "" {
		t.Errorf("sections = %q", s)
	}
	if _, err := splitSections(markDisks + "\n[]\n"); !errors.Is(err, ErrConnection) {
		t.Errorf("truncated: err = %v, want ErrConnection", err)
	}
	if _, err := splitSections("syntax error (line 1 column 5)\n"); !errors.Is(err, ErrRejected) {
		t.Errorf("refused script: err = %v, want ErrRejected", err)
	}
}

// TestParseDetailLinear guards against quadratic parsing: one item of many
// full-width lines (a hostile or runaway answer) must take time linear in
// its length. Quadrupling the input must not take ~16x as long; the best
// of three runs keeps machine load out of the ratio.
func TestParseDetailLinear(t *testing.T) {
	input := func(n int) string {
		var b strings.Builder
		b.WriteString(" 0   a=\"")
		for range n {
			b.WriteString("\n     " + strings.Repeat("x", 35))
		}
		b.WriteString("\n     \"\n     b=" + strings.Repeat("1", 33))
		for range n {
			b.WriteString("\n     " + strings.Repeat("2", 35))
		}
		b.WriteString("\n")
		return b.String()
	}
	best := func(n int) time.Duration {
		in := input(n)
		d := time.Duration(1 << 62)
		for range 3 {
			start := time.Now()
			items, err := ParseDetail(in)
			d = min(d, time.Since(start))
			if err != nil || len(items) != 1 || len(items[0]["a"]) != n*35 || len(items[0]["b"]) != n*35+33 {
				t.Fatalf("n=%d: items %d, err %v", n, len(items), err)
			}
		}
		return d
	}
	small, large := best(1000), best(4000)
	if ratio := float64(large) / float64(small); ratio > 10 {
		t.Errorf("4x the input took %.1fx the time (%v vs %v): parsing is not linear", ratio, large, small)
	}
}

func TestParseDetailEdgeCases(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []map[string]string
	}{
		{"empty", "", nil},
		{"blank lines", "\n\n  \n", nil},
		{"header only", "Flags: X - disabled; B - block-device\n", nil},
		{"wrapped header", "Flags: X - disabled; B - block-device; M - mounted;\n  t - nvme-tcp-export\n 0 t  slot=\"a\" size=1 024\n",
			[]map[string]string{{FieldRow: "0", FieldFlags: "t", "slot": "a", "size": "1 024"}}},
		{"crlf", " 0   slot=\"a\"\r\n      size=2\r\n\r\n 1   slot=\"b\"\r\n",
			[]map[string]string{{FieldRow: "0", "slot": "a", "size": "2"}, {FieldRow: "1", "slot": "b"}}},
		{"no row numbers", "slot=\"a\" size=3\n",
			[]map[string]string{{"slot": "a", "size": "3"}}},
		{"comment then fields", " 0 X ;;; keep me\n      slot=\"a\"\n",
			[]map[string]string{{FieldRow: "0", FieldFlags: "X", FieldComment: "keep me", "slot": "a"}}},
		{"digits continuation is not a row", " 0   size=1 234\n     567 890\n",
			[]map[string]string{{FieldRow: "0", "size": "1 234 567 890"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDetail(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}
