package spec

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema()))
	if err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("schema.json")
	if err != nil {
		t.Fatalf("schema does not compile: %v", err)
	}
	return s
}

// yamlToJSONValue converts YAML text to the value a JSON decoder would give,
// as yaml-language-server sees the document.
func yamlToJSONValue(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSchemaAcceptsExamples(t *testing.T) {
	s := compileSchema(t)
	files, _ := filepath.Glob("../examples/*.yaml")
	layers, _ := filepath.Glob("testdata/layers/*.yaml")
	files = append(files, "testdata/store/layer.golden")
	files = append(files, layers...)
	if len(files) < 3 {
		t.Fatalf("too few examples: %v", files)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(yamlToJSONValue(t, data)); err != nil {
			t.Errorf("%s does not match the schema: %v", f, err)
		}
	}
}

func TestSchemaRejects(t *testing.T) {
	s := compileSchema(t)
	base, err := os.ReadFile("../examples/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, from, to string }{
		{"unknown field", "  nvmePort: 4420\n", "  nvmePort: 4420\n  nvmeport: 4420\n"},
		{"unknown volume field", "    protect: true\n", "    protect: true\n    protected: true\n"},
		{"bad enum", "orphans: disconnect", "orphans: delete"},
		{"bad size", "size: 2Gi", "size: 2GB"},
		{"size over 1Pi", "size: 2Gi", "size: 1125899907891200"},
		{"bad name", "name: demo-web", "name: Demo_Web"},
		{"bad timeout", "reconnectDelay: 5", "reconnectDelay: 0"},
		{"timeout over a week", "ctrlLossTmo: 600", "ctrlLossTmo: 604801"},
		{"too many attempts", "attempts: 5", "attempts: 101"},
		{"multiplier over 10", "multiplier: 2", "multiplier: 11"},
		{"absent with size", "    state: absent\n", "    state: absent\n    size: 1Gi\n"},
		{"no auth", "    privateKeyFile: demo/client_key\n", ""},
		{"ssh maxSessions over 64", "    privateKeyFile: demo/client_key\n", "    privateKeyFile: demo/client_key\n    maxSessions: 65\n"},
		{"ssh commandTimeout not a duration", "    privateKeyFile: demo/client_key\n", "    privateKeyFile: demo/client_key\n    commandTimeout: 30\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := strings.Replace(string(base), tt.from, tt.to, 1)
			if doc == string(base) {
				t.Fatalf("mutation %q not applied", tt.from)
			}
			if err := s.Validate(yamlToJSONValue(t, []byte(doc))); err == nil {
				t.Error("schema accepted it")
			}
		})
	}
}

func TestSchemaIsACopy(t *testing.T) {
	a := Schema()
	a[0] = 'X'
	if Schema()[0] != '{' {
		t.Error("Schema returns shared memory")
	}
}
