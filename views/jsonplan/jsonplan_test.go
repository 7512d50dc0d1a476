package jsonplan

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rds-reconcile/rds-reconcile/reconcile"
)

// schemaV1 pins every field of the document at format_version "1": its
// JSON path, type and omitempty. A test failing here means the document
// changed. Adding a field: add its row (consumers ignore unknown fields,
// the version stays). Renaming, removing or retyping one breaks
// consumers: bump FormatVersion and start a new table.
var schemaV1 = []string{
	"format_version string",
	"version int",
	"host string omitempty",
	"revision string omitempty",
	"files []string omitempty",
	"scope object",
	"scope.volumes []string omitempty",
	"scope.prune bool omitempty",
	"scope.orphans bool omitempty",
	"scope.allowMassDetach bool omitempty",
	"createdAt time",
	"fingerprint string",
	"actions []object",
	"actions[].kind string",
	"actions[].volume string omitempty",
	"actions[].controller string omitempty",
	"actions[].reason string",
	"actions[].blocked string omitempty",
	"actions[].wanted string omitempty",
	"actions[].phase string",
	"actions[].slot string omitempty",
	"actions[].filePath string omitempty",
	"actions[].size int omitempty",
	"actions[].fromSize int omitempty",
	"actions[].port int omitempty",
	"actions[].nqn string omitempty",
	"actions[].setAllowHosts bool omitempty",
	"actions[].allowHosts []string omitempty",
	"actions[].source string omitempty",
	"actions[].sourceKind string omitempty",
	"actions[].address string omitempty",
	"actions[].hostNQN string omitempty",
	"actions[].timeouts object omitempty",
	"actions[].timeouts.ctrlLossTmo int",
	"actions[].timeouts.reconnectDelay int",
	"actions[].timeouts.keepAliveTmo int",
	"actions[].fromTimeouts object omitempty",
	"actions[].fromTimeouts.ctrlLossTmo int",
	"actions[].fromTimeouts.reconnectDelay int",
	"actions[].fromTimeouts.keepAliveTmo int",
	"drift []object",
	"drift[].volume string omitempty",
	"drift[].controller string omitempty",
	"drift[].where string",
	"drift[].field string",
	"drift[].want string omitempty",
	"drift[].got string",
	"notes []string omitempty",
	"reconnecting []object omitempty",
	"reconnecting[].volume string",
	"reconnecting[].controller string",
	"reconnecting[].state string",
	"reconnecting[].reason string",
	"foreign []object omitempty",
	"foreign[].controller string",
	"foreign[].nqn string",
	"foreign[].address string omitempty",
	"foreign[].port string omitempty",
	"foreign[].state string omitempty",
	"foreign[].why string",
}

func TestSchema(t *testing.T) {
	schemas := map[string][]string{"1": schemaV1}
	want, ok := schemas[FormatVersion]
	if !ok {
		t.Fatalf("no pinned schema for format_version %q: add its table", FormatVersion)
	}
	got := schemaOf("", reflect.TypeFor[Plan]())
	for _, f := range got {
		if !slices.Contains(want, f) {
			t.Errorf("field %q is not pinned: add it to the table, or bump FormatVersion if it renames or retypes one", f)
		}
	}
	for _, f := range want {
		if !slices.Contains(got, f) {
			t.Errorf("pinned field %q is gone or changed: consumers break, bump FormatVersion", f)
		}
	}
}

// schemaOf lists the fields of struct type t as "path type [omitempty]".
func schemaOf(prefix string, t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		path := prefix + name
		kind, elem := jsonKind(f.Type)
		row := path + " " + kind
		if strings.Contains(opts, "omitempty") {
			row += " omitempty"
		}
		out = append(out, row)
		if elem != nil {
			sep := "."
			if strings.HasPrefix(kind, "[]") {
				sep = "[]."
			}
			out = append(out, schemaOf(path+sep, elem)...)
		}
	}
	return out
}

// jsonKind names how t reads in JSON, and the struct to descend into.
func jsonKind(t reflect.Type) (string, reflect.Type) {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeFor[time.Time]():
		return "time", nil
	case t.Kind() == reflect.Slice:
		k, elem := jsonKind(t.Elem())
		return "[]" + k, elem
	case t.Kind() == reflect.Struct:
		return "object", t
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "int", nil
	}
	return t.Kind().String(), nil
}

// TestRoundTrip: every field of a plan, each set, survives Write and
// ReadPlan; a field added to reconcile's types but not carried here fails.
func TestRoundTrip(t *testing.T) {
	var p reconcile.Plan
	fill(reflect.ValueOf(&p).Elem())
	p.FormatVersion = FormatVersion
	for i := range p.Actions {
		p.Actions[i].Phase = reconcile.PhaseHostDetach
	}
	var b bytes.Buffer
	if err := Write(&b, &p); err != nil {
		t.Fatal(err)
	}
	back, err := ReadPlan(&b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, &p) {
		t.Errorf("read back\n%+v\nwant\n%+v", back, &p)
	}
	// nil lists stay null, empty ones [] (older consumers see the same).
	p = reconcile.Plan{Drift: []reconcile.Drift{}}
	b.Reset()
	if err := Write(&b, &p); err != nil {
		t.Fatal(err)
	}
	if s := b.String(); !strings.Contains(s, `"actions": null`) || !strings.Contains(s, `"drift": []`) {
		t.Errorf("nil and empty lists:\n%s", s)
	}
}

// fill sets every field reachable from v to a value that is not zero.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		fill(v.Index(0))
		fill(v.Index(1))
	case reflect.String:
		v.SetString("x-" + v.Type().Name())
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint64, reflect.Uint32:
		v.SetUint(7)
	}
}

func TestReadPlanRejects(t *testing.T) {
	for _, doc := range []string{
		`{"format_version":"9"}`,
		`{"format_version":"1","actions":[{"kind":"create","phase":"later"}]}`,
		`{"format_version":`,
	} {
		if _, err := ReadPlan(strings.NewReader(doc)); err == nil {
			t.Errorf("%s accepted", doc)
		}
	}
}
