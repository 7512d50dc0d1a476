package rds

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// addSeeds feeds every testdata sample to the fuzzer; testdata/fuzz/<Name>
// holds further seeds in the go-fuzz corpus format and runs with go test.
func addSeeds(f *testing.F, prefix string) {
	files, _ := filepath.Glob("testdata/" + prefix + "*.txt")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
}

// checkItems asserts what must hold for any input the parsers accept.
func checkItems(t *testing.T, items []map[string]string) {
	for _, m := range items {
		for k := range m {
			if k == "" || strings.ContainsAny(k, " \t\n=") {
				t.Fatalf("bad key %q", k)
			}
		}
		// Building typed values must never panic either.
		_, _ = DiskFromFields(m)
		_, _ = FileFromFields(m)
		_, _ = CapacityFromFields(m)
	}
}

func FuzzParseDetail(f *testing.F) {
	addSeeds(f, "detail_")
	f.Add(" 0 X ;;; c\n   a=\"b\\\"\" c=1 000\n")
	f.Fuzz(func(t *testing.T, s string) {
		items, err := ParseDetail(s)
		if err != nil {
			return
		}
		checkItems(t, items)
	})
}

func FuzzParseTerse(f *testing.F) {
	addSeeds(f, "terse_")
	f.Add(" 0 t  a=b c=\"d e\"\n 1 X  f=1 2\n")
	f.Fuzz(func(t *testing.T, s string) {
		items, err := ParseTerse(s)
		if err != nil {
			return
		}
		checkItems(t, items)
	})
}

func FuzzParseJSON(f *testing.F) {
	addSeeds(f, "json_")
	f.Fuzz(func(t *testing.T, s string) {
		items, err := ParseJSON(s)
		if err != nil {
			return
		}
		for _, m := range items {
			_, _ = DiskFromFields(m)
		}
	})
}
