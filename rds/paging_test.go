package rds

import (
	"regexp"
	"strings"
	"testing"
)

// Every slot falls in exactly one page: of the disk pages when it starts
// with the prefix, else of the export pages; without a prefix, of each.
func TestPageClassesCover(t *testing.T) {
	where := regexp.MustCompile(`^slot~"(.*)"$`)
	exact := regexp.MustCompile(`^slot="(.*)"$`)
	compile := func(ws []string) []*regexp.Regexp {
		var res []*regexp.Regexp
		for _, w := range ws {
			if m := exact.FindStringSubmatch(w); m != nil {
				res = append(res, regexp.MustCompile(`^`+regexp.QuoteMeta(m[1])+`$`))
				continue
			}
			m := where.FindStringSubmatch(w)
			if m == nil {
				t.Fatalf("page %q is not a single slot~ regex", w)
			}
			res = append(res, regexp.MustCompile(m[1]))
		}
		return res
	}
	count := func(res []*regexp.Regexp, s string) int {
		n := 0
		for _, re := range res {
			if re.MatchString(s) {
				n++
			}
		}
		return n
	}
	var slots []string
	for _, p := range []string{"", "p", "pv", "pvc", "pvc-", "pvd", "px", "pvc-pvc-", "-", "a"} {
		slots = append(slots, p)
		for c := byte(0x20); c < 0x7f; c++ {
			slots = append(slots, p+string(c), p+string(c)+"x")
		}
	}
	for _, pfx := range []string{"pvc-", "", "a", "pvc-pvc-"} {
		rc := readCommands{json: true, v: validator{prefix: pfx, base: "storage-pool/volumes"}}
		disks, exports := compile(rc.diskPages()), compile(rc.exportPages())
		for _, s := range slots {
			nd, ne := count(disks, s), count(exports, s)
			switch {
			case pfx == "" && (nd != 1 || ne != 1):
				t.Errorf("no prefix: slot %q in %d disk pages, %d export pages", s, nd, ne)
			case pfx != "" && strings.HasPrefix(s, pfx) && (nd != 1 || ne != 0):
				t.Errorf("prefix %q: managed slot %q in %d disk pages, %d export pages", pfx, s, nd, ne)
			case pfx != "" && !strings.HasPrefix(s, pfx) && (nd != 0 || ne != 1):
				t.Errorf("prefix %q: slot %q in %d disk pages, %d export pages", pfx, s, nd, ne)
			}
		}
	}
}

func TestListPagedCommand(t *testing.T) {
	rc := readCommands{json: true, v: validator{prefix: "pvc-", base: "storage-pool/volumes"}}
	cmd := rc.listPaged()
	const ser = `:put [:serialize to=json options=json.no-string-conversion [`
	for _, want := range []string{
		`:put "##rds-reconcile:disks:0"; ` + ser + `/disk print detail as-value where slot~"^pvc-[01]"]]; :put "##rds-reconcile:disks:1"; `,
		`:put "##rds-reconcile:disks:8"; ` + ser + `/disk print detail as-value where slot~"^pvc-[g-z]"]]; `,
		`:put "##rds-reconcile:files:8"; ` + ser + `/file print detail as-value where name~"storage-pool/volumes/pvc-[g-z]"]]; :put "##rds-reconcile:pool"; `,
		`:put "##rds-reconcile:disks:9"; ` + ser + `/disk print detail as-value where slot~"^pvc-[^0-9a-z]"]]; `,
		`:put "##rds-reconcile:disks:10"; ` + ser + `/disk print detail as-value where slot="pvc-"]]; :put "##rds-reconcile:files:0"; `,
		`:put "##rds-reconcile:exports:0"; ` + ser + `/disk print detail as-value where slot~"^[^p]"]]; `,
		`:put "##rds-reconcile:exports:3"; ` + ser + `/disk print detail as-value where slot~"^pvc[^-]"]]; `,
		`:put "##rds-reconcile:exports:4"; ` + ser + `/disk print detail as-value where slot=""]]; `,
		`:put "##rds-reconcile:exports:7"; ` + ser + `/disk print detail as-value where slot="pvc"]]; :put "##rds-reconcile:end"`,
	} {
		if !strings.Contains(cmd, want) {
			t.Errorf("paged list lacks %s\nin %s", want, cmd)
		}
	}
	if strings.Contains(cmd, "\n") || strings.Count(cmd, ":serialize") != 11+9+1+8 {
		t.Errorf("paged list: %d serializes in %s", strings.Count(cmd, ":serialize"), cmd)
	}
}

func TestSplitSectionsPages(t *testing.T) {
	out := markDisks + ":0\n[{\".id\":\"*1\",\"slot\":\"pvc-1\"}]\n" +
		markDisks + ":1\n[{\".id\":\"*2\",\"slot\":\"pvc-a\"},{\".id\":\"*1\",\"slot\":\"pvc-1\"}]\n" +
		markDisks + ":x\n" + // not a marker: data of page 1
		markFiles + "\n[]\n" + markEnd + "\n"
	s, err := splitSections(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s[markDisks+":1"]; !ok || !strings.Contains(s[markDisks+":1"], markDisks+":x") {
		t.Fatalf("sections %q", s)
	}
	s[markDisks+":1"] = strings.ReplaceAll(s[markDisks+":1"], markDisks+":x\n", "")
	items, err := pageItems("list disks", "", s, markDisks, true)
	if err != nil || len(items) != 2 || items[0]["slot"] != "pvc-1" || items[1]["slot"] != "pvc-a" {
		t.Fatalf("merged pages %v, %v", items, err)
	}
	for _, m := range []string{markDisks + ":", markPool + ":0", markEnd + ":1", markExports + ":-1"} {
		if isMarker(m) {
			t.Errorf("%q taken for a marker", m)
		}
	}
	if !isMarker(markExports + ":12") {
		t.Error("export page marker missed")
	}
}
