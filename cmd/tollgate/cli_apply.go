package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/tollgate/tollgate/api"
)

func cmdApply(c *cli, args []string) error {
	var (
		file   = c.fs.String("f", "", "YAML `file` with plans: and tenants: (the config file's shapes)")
		dryRun = c.fs.Bool("dry-run", false, "only show what would change")
	)
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := nargs(pos, 0, ""); err != nil {
		return err
	}
	if *file == "" {
		return usagef("-f FILE is required")
	}
	data, err := os.ReadFile(*file)
	if err != nil {
		return &usageError{msg: err.Error(), quiet: true}
	}
	doc, root, err := decodeApplyDoc(*file, data)
	if err != nil {
		return err
	}
	res, err := c.client.Apply(c.ctx, doc, *dryRun)
	if err != nil {
		var ae *api.APIError
		if errors.As(err, &ae) && ae.Field != "" {
			if line := yamlLine(root, ae.Field); line > 0 {
				return &hintError{err: err, hint: fmt.Sprintf("(%s line %d)", *file, line)}
			}
		}
		return err
	}
	if c.output == "json" {
		return c.json(res)
	}
	counts := map[string]int{}
	for _, ch := range res.Changes {
		counts[ch.Op]++
		fmt.Fprintf(c.stdout, "%s %s %s\n", ch.Op, ch.Kind, ch.Name)
		for _, d := range ch.Diff {
			fmt.Fprintf(c.stdout, "    %s\n", d)
		}
	}
	prefix := ""
	if res.DryRun || *dryRun {
		prefix = "(dry run) "
	}
	fmt.Fprintf(c.stdout, "%s%d to create, %d to update, %d unchanged\n", prefix, counts["create"], counts["update"], counts["unchanged"])
	return nil
}

// decodeApplyDoc strictly decodes an apply file: unknown fields and bad
// values are errors naming the line and the field path. It also returns
// the YAML tree, to place the API's field errors in the file.
func decodeApplyDoc(name string, data []byte) (api.ApplyDoc, *yaml.Node, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return api.ApplyDoc{}, nil, &invalidError{fmt.Sprintf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))}
	}
	var doc api.ApplyDoc
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) {
		return api.ApplyDoc{}, nil, &invalidError{name + ": empty file: want plans: and/or tenants:"}
	}
	if err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return api.ApplyDoc{}, nil, &invalidError{fmt.Sprintf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))}
		}
		lines := make([]string, len(te.Errors))
		for i, e := range te.Errors {
			lines[i] = name + ": " + describeYAMLError(&root, e)
		}
		return api.ApplyDoc{}, nil, &invalidError{strings.Join(lines, "\ntollgate: ")}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return api.ApplyDoc{}, nil, &invalidError{name + ": more than one YAML document"}
	}
	if len(doc.Plans) == 0 && len(doc.Tenants) == 0 {
		return api.ApplyDoc{}, nil, &invalidError{name + ": nothing to apply: want plans: and/or tenants:"}
	}
	return doc, &root, nil
}

var (
	yamlLineRe   = regexp.MustCompile(`^line (\d+): (?:column (\d+): )?(.*)$`)
	yamlFieldRe  = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	yamlTypeName = strings.NewReplacer("configs.", "", "api.", "")
)

// describeYAMLError rewrites one yaml.v3 decode error ("line 7: field
// max_paralel_calls not found in type configs.Limits") to name the field
// path: `line 7: tenants[0].limits.max_paralel_calls: unknown field
// "max_paralel_calls" in Limits`.
func describeYAMLError(root *yaml.Node, raw string) string {
	m := yamlLineRe.FindStringSubmatch(raw)
	if m == nil {
		return raw
	}
	line, _ := strconv.Atoi(m[1])
	col, _ := strconv.Atoi(m[2])
	msg := m[3]
	var key string
	if fm := yamlFieldRe.FindStringSubmatch(msg); fm != nil {
		key = fm[1]
		msg = fmt.Sprintf("unknown field %q in %s", fm[1], yamlTypeName.Replace(fm[2]))
	}
	path := yamlPathAt(root, line, col, key)
	if path == "" {
		return fmt.Sprintf("line %d: %s", line, msg)
	}
	return fmt.Sprintf("line %d: %s: %s", line, path, msg)
}

// yamlEntry is a value in the YAML tree with its field path.
type yamlEntry struct {
	path     string
	key, val *yaml.Node // key is nil for sequence items
}

// yamlWalk visits every value of the tree with its field path
// ("tenants[0].limits.max_parallel_calls").
func yamlWalk(n *yaml.Node, path string, visit func(yamlEntry)) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			yamlWalk(c, path, visit)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			visit(yamlEntry{path: p, key: k, val: v})
			yamlWalk(v, p, visit)
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			visit(yamlEntry{path: p, val: v})
			yamlWalk(v, p, visit)
		}
	}
}

// yamlPathAt finds the field path of a decode error: the value at line and
// column (col > 0), else the key named key on line, else the deepest key on
// line.
func yamlPathAt(root *yaml.Node, line, col int, key string) string {
	var best string
	depth := -1
	yamlWalk(root, "", func(e yamlEntry) {
		switch {
		case col > 0:
			if e.val.Line == line && e.val.Column == col && best == "" {
				best = e.path
			}
		case e.key != nil && e.key.Line == line:
			if key != "" && e.key.Value != key {
				return
			}
			if d := strings.Count(e.path, ".") + strings.Count(e.path, "["); d > depth {
				best, depth = e.path, d
			}
		}
	})
	return best
}

// yamlLine is the line of the field path (an API error's field) in the
// tree, 0 if it is not there (e.g. a default the API filled in): the
// nearest enclosing path present is used.
func yamlLine(root *yaml.Node, path string) int {
	if root == nil {
		return 0
	}
	lines := map[string]int{}
	yamlWalk(root, "", func(e yamlEntry) {
		if e.key != nil {
			lines[e.path] = e.key.Line
		} else {
			lines[e.path] = e.val.Line
		}
	})
	for p := path; p != ""; {
		if l, ok := lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}
