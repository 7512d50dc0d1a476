package spec

import (
	_ "embed"
	"slices"
)

//go:embed schema.json
var schemaJSON []byte

// Schema returns the JSON Schema (draft 2020-12) of a state file, for
// editors (yaml-language-server) and other tools. It checks shapes and
// ranges; Load checks more (cross references, size alignment, NQN lengths).
// The returned slice is a copy the caller may keep or change.
func Schema() []byte { return slices.Clone(schemaJSON) }
