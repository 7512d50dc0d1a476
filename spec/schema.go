package spec

import (
	_ "embed"
	"slices"
)

//go:embed schema.json
var schemaJSON []byte

// Schema returns the JSON Schema of a state file, for editors and other
// tools. It is draft-07 because that is the draft yaml-language-server
// (VS Code, Neovim, Helix) fully supports. It checks shapes and
// ranges; Load checks more (cross references, size alignment, NQN lengths).
// The returned slice is a copy the caller may keep or change.
func Schema() []byte { return slices.Clone(schemaJSON) }
