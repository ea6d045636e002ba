// Package layers holds a test of the package layering: the packages
// below the API do not import it (issue 13: records have neutral types
// owned below the API, and the API maps them to its wire types).
package layers

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/tollgate/tollgate/"

// below lists packages and what they must not import.
var below = map[string][]string{
	"admission": {"api", "control", "store", "sip", "cluster", "bus"},
	"store":     {"api", "control", "sip"},
	"sip":       {"api", "control"},
	"meter":     {"api", "control", "sip", "store"},
	"events":    {"api", "control", "sip"},
}

func TestLayers(t *testing.T) {
	for pkg, banned := range below {
		dir := filepath.Join("..", "..", pkg)
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			n := e.Name()
			if !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, n), nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, im := range f.Imports {
				path := strings.Trim(im.Path.Value, `"`)
				for _, b := range banned {
					if path == module+b || strings.HasPrefix(path, module+b+"/") {
						t.Errorf("%s/%s imports %s", pkg, n, path)
					}
				}
			}
		}
	}
}
