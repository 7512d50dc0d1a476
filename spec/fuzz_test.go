package spec

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad: LoadBytes never panics or hangs, and any error it returns is
// *Errors with at least one entry naming the file.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	more, _ := filepath.Glob("../examples/*.yaml")
	layers, _ := filepath.Glob("testdata/layers/*.yaml")
	for _, p := range append(append(seeds, more...), layers...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(minimal))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := LoadBytes("fuzz.yaml", data)
		if err == nil {
			if st == nil || st.Target == nil || st.Defaults == nil || st.Policy == nil {
				t.Fatalf("valid state with missing parts: %+v", st)
			}
			for _, v := range st.Volumes {
				if v.State == Present && (v.Size.Bytes <= 0 || v.Size.Bytes%SizeAlign != 0) {
					t.Fatalf("valid state with a bad size: %+v", v)
				}
			}
			return
		}
		var es *Errors
		if !errors.As(err, &es) || len(*es) == 0 {
			t.Fatalf("error %T %v is not a non-empty *Errors", err, err)
		}
		for _, e := range *es {
			if e.File != "fuzz.yaml" || e.Msg == "" {
				t.Fatalf("bad error entry %+v", e)
			}
		}
	})
}
