package events

import (
	"embed"
	"io/fs"
)

//go:embed schema/*.json
var schemaFS embed.FS

// Schema returns the JSON Schema (draft 2020-12) of event type typ, as
// shipped in events/schema/<type>.json; ok is false for an unknown type.
func Schema(typ string) (doc []byte, ok bool) {
	b, err := fs.ReadFile(schemaFS, "schema/"+typ+".json")
	return b, err == nil
}
