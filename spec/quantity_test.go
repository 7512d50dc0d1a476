package spec

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestParseQuantity(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"0", 0, ""},
		{"1048576", 1 << 20, ""},
		{"512Mi", 512 << 20, ""},
		{"20Gi", 20 << 30, ""},
		{"1Ti", 1 << 40, ""},
		{"2Pi", 2 << 50, ""},
		{"4Ki", 4096, ""},
		{"1.5Gi", 3 << 29, ""},
		{"0.5Mi", 512 << 10, ""},
		{"1k", 1000, ""},
		{"500M", 500_000_000, ""},
		{"1.5G", 1_500_000_000, ""},
		{"2T", 2_000_000_000_000, ""},
		{"1P", 1_000_000_000_000_000, ""},
		{"9223372036854775807", math.MaxInt64, ""},
		{"007Mi", 7 << 20, ""},
		{"1.0000000000000000000001Gi", 0, "not a whole number of bytes"},
		{"1.1", 0, "not a whole number of bytes"},
		{"0.3Ki", 0, "not a whole number of bytes"},
		{"9223372036854775808", 0, "too large"},
		{"8192Pi", 0, "too large"},
		{"", 0, "empty size"},
		{"-1Gi", 0, "is not a size"},
		{"1K", 0, "is not a size"},
		{"1GB", 0, "is not a size"},
		{"1 Gi", 0, "is not a size"},
		{"Gi", 0, "is not a size"},
		{".5Gi", 0, "is not a size"},
		{"1.Gi", 0, "is not a size"},
		{"1e9", 0, "is not a size"},
		{"0x10", 0, "is not a size"},
		{"+1", 0, "is not a size"},
		{strings.Repeat("9", 100), 0, "characters long"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseQuantity(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseQuantity(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Bytes != tt.want {
				t.Fatalf("ParseQuantity(%q) = %d, %v; want %d", tt.in, got.Bytes, err, tt.want)
			}
		})
	}
}

func TestQuantityString(t *testing.T) {
	tests := []struct {
		bytes int64
		want  string
	}{
		{0, "0"},
		{1, "1"},
		{1023, "1023"},
		{1024, "1Ki"},
		{1000, "1k"},
		{1 << 20, "1Mi"},
		{1_000_000, "1M"},
		{1536 << 20, "1536Mi"},
		{20 << 30, "20Gi"},
		{1 << 40, "1Ti"},
		{1 << 50, "1Pi"},
		{3 << 50, "3Pi"},
		{1_500_000_000, "1500M"},
		{1_048_577, "1048577"},
		{-5, "-5"},
		{math.MaxInt64, "9223372036854775807"},
	}
	for _, tt := range tests {
		q := Quantity{tt.bytes}
		if got := q.String(); got != tt.want {
			t.Errorf("Quantity{%d}.String() = %q, want %q", tt.bytes, got, tt.want)
		}
		if tt.bytes < 0 {
			continue
		}
		back, err := ParseQuantity(q.String())
		if err != nil || back != q {
			t.Errorf("round trip of %d through %q = %v, %v", tt.bytes, q.String(), back, err)
		}
	}
}

func TestQuantityMarshal(t *testing.T) {
	type doc struct {
		Size Quantity `yaml:"size" json:"size"`
	}
	var y doc
	if err := yaml.Unmarshal([]byte("size: 20Gi\n"), &y); err != nil || y.Size.Bytes != 20<<30 {
		t.Fatalf("yaml unmarshal: %v %v", y, err)
	}
	if err := yaml.Unmarshal([]byte("size: 1048576\n"), &y); err != nil || y.Size.Bytes != 1<<20 {
		t.Fatalf("yaml unmarshal int: %v %v", y, err)
	}
	if err := yaml.Unmarshal([]byte("size: [1]\n"), &y); err == nil {
		t.Fatal("yaml unmarshal of a list succeeded")
	}
	out, err := yaml.Marshal(doc{Quantity{512 << 20}})
	if err != nil || string(out) != "size: 512Mi\n" {
		t.Fatalf("yaml marshal = %q, %v", out, err)
	}
	j, err := json.Marshal(doc{Quantity{20 << 30}})
	if err != nil || string(j) != `{"size":"20Gi"}` {
		t.Fatalf("json marshal = %s, %v", j, err)
	}
	var jd doc
	if err := json.Unmarshal([]byte(`{"size":"1Ti"}`), &jd); err != nil || jd.Size.Bytes != 1<<40 {
		t.Fatalf("json unmarshal: %v %v", jd, err)
	}
	if err := json.Unmarshal([]byte(`{"size":2097152}`), &jd); err != nil || jd.Size.Bytes != 2<<20 {
		t.Fatalf("json unmarshal number: %v %v", jd, err)
	}
	if err := json.Unmarshal([]byte(`{"size":"lots"}`), &jd); err == nil {
		t.Fatal("json unmarshal of junk succeeded")
	}
}

func TestDurationMarshal(t *testing.T) {
	type doc struct {
		D Duration `yaml:"d" json:"d"`
	}
	var y doc
	if err := yaml.Unmarshal([]byte("d: 1m30s\n"), &y); err != nil || y.D.Duration != 90*time.Second {
		t.Fatalf("yaml: %v %v", y, err)
	}
	for _, bad := range []string{"d: 10\n", "d: soon\n", "d: {}\n"} {
		if err := yaml.Unmarshal([]byte(bad), &y); err == nil {
			t.Errorf("yaml %q: no error", bad)
		}
	}
	if err := yaml.Unmarshal([]byte("d: 10\n"), &y); err == nil || !strings.Contains(err.Error(), "10s") {
		t.Errorf("a unitless duration should suggest a unit, got %v", err)
	}
	out, err := yaml.Marshal(doc{Duration{500 * time.Millisecond}})
	if err != nil || string(out) != "d: 500ms\n" {
		t.Fatalf("yaml marshal = %q %v", out, err)
	}
	j, err := json.Marshal(doc{Duration{time.Second}})
	if err != nil || string(j) != `{"d":"1s"}` {
		t.Fatalf("json marshal = %s %v", j, err)
	}
	var jd doc
	if err := json.Unmarshal(j, &jd); err != nil || jd.D.Duration != time.Second {
		t.Fatalf("json unmarshal = %v %v", jd, err)
	}
	if err := json.Unmarshal([]byte(`{"d":5}`), &jd); err == nil {
		t.Fatal("json number duration accepted")
	}
}

// TestRoundUpSize: sizes round up to the next MiB, and a size over
// MaxVolumeSize is refused (ok false), never cut to a smaller one nor
// wrapped negative.
func TestRoundUpSize(t *testing.T) {
	tests := []struct {
		in, want int64
		ok       bool
	}{
		{math.MinInt64, SizeAlign, true},
		{-1, SizeAlign, true},
		{0, SizeAlign, true},
		{1, SizeAlign, true},
		{SizeAlign - 1, SizeAlign, true},
		{SizeAlign, SizeAlign, true},
		{SizeAlign + 1, 2 * SizeAlign, true},
		{10<<30 - 1, 10 << 30, true},
		{MaxVolumeSize - 1, MaxVolumeSize, true},
		{MaxVolumeSize, MaxVolumeSize, true},
		{MaxVolumeSize + 1, 0, false},
		{math.MaxInt64 &^ (SizeAlign - 1), 0, false},
		{math.MaxInt64 - SizeAlign + 2, 0, false}, // + SizeAlign - 1 would wrap
		{math.MaxInt64, 0, false},
	}
	for _, tt := range tests {
		got, ok := RoundUpSize(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("RoundUpSize(%d) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
		if ok && (got%SizeAlign != 0 || got < tt.in || got > MaxVolumeSize) {
			t.Errorf("RoundUpSize(%d) = %d is not an aligned size >= the request and <= MaxVolumeSize", tt.in, got)
		}
	}
}

func TestSizeError(t *testing.T) {
	tests := []struct {
		bytes int64
		want  string
	}{
		{1_000_000_001, "use 953Mi or 954Mi"},
		{1000, "the smallest valid size is 1Mi"},
		{-5, "the smallest valid size is 1Mi"},
		{10<<30 + 1, "use 10Gi or 10241Mi"},
		{MaxVolumeSize - 1, "use 1073741823Mi or 1Pi"},
		{MaxVolumeSize + 1, "size 1125899906842625 bytes is more than 1Pi, the largest volume size"},
		{MaxVolumeSize + SizeAlign, "size 1073741825Mi (1125899907891200 bytes) is more than 1Pi"},
		{math.MaxInt64, "is more than 1Pi"},
	}
	for _, tt := range tests {
		if got := sizeError(tt.bytes); !strings.Contains(got, tt.want) {
			t.Errorf("sizeError(%d) = %q, want it to contain %q", tt.bytes, got, tt.want)
		}
	}
}

func FuzzParseQuantity(f *testing.F) {
	for _, s := range []string{"0", "1", "20Gi", "1.5Gi", "1.1", "9223372036854775807", "8Pi", "1k", "-1", "", "1.Gi", "00000.00000Ki"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuantity(s)
		if err != nil {
			return
		}
		if q.Bytes < 0 {
			t.Fatalf("ParseQuantity(%q) = %d, negative", s, q.Bytes)
		}
		back, err := ParseQuantity(q.String())
		if err != nil || back != q {
			t.Fatalf("ParseQuantity(%q) = %d; String %q reparses to %d, %v", s, q.Bytes, q.String(), back.Bytes, err)
		}
		if len(q.String()) > len(s) && strings.TrimLeft(s, "0") != "" && !strings.Contains(s, ".") {
			t.Fatalf("String %q is longer than the input %q", q.String(), s)
		}
	})
}
