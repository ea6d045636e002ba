package main

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/configs"
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
	doc, lines, ignored, err := decodeApplyDoc(*file, data)
	if err != nil {
		return err
	}
	if len(ignored) > 0 {
		fmt.Fprintf(c.stderr, "tollgate: %s: applying plans and tenants only; not applied (they take effect from the config file at start): %s\n",
			*file, strings.Join(ignored, ", "))
	}
	res, err := c.client.Apply(c.ctx, doc, *dryRun)
	if err != nil {
		var ae *api.APIError
		if errors.As(err, &ae) && ae.Field != "" {
			if line := lines.Line(ae.Field); line > 0 {
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

// decodeApplyDoc strictly decodes an apply file with the config file's
// decoder: unknown fields and bad values are errors naming the field path
// and the line. The returned document places the API's field errors in
// the file.
//
// The file may be the config file itself (the hint of a start whose file
// and store differ): it is decoded in the whole config's shape, and only
// its plans and tenants are applied; the other sections are named on
// stderr as not applied.
func decodeApplyDoc(name string, data []byte) (api.ApplyDoc, *configs.Document, []string, error) {
	var (
		doc api.ApplyDoc
		cfg configs.Config
	)
	lines, err := configs.DecodeDocument(name, data, &cfg)
	doc.Plans, doc.Tenants = cfg.Plans, cfg.Tenants
	if errors.Is(err, configs.ErrEmptyDocument) {
		return doc, nil, nil, &invalidError{name + ": empty file: want plans: and/or tenants:"}
	}
	if err != nil {
		return doc, nil, nil, &invalidError{err.Error()}
	}
	if len(doc.Plans) == 0 && len(doc.Tenants) == 0 {
		return doc, nil, nil, &invalidError{name + ": nothing to apply: want plans: and/or tenants:"}
	}
	var top map[string]yaml.Node
	_ = yaml.Unmarshal(data, &top) // decoded strictly above
	var ignored []string
	for k := range top {
		if k != "plans" && k != "tenants" {
			ignored = append(ignored, k)
		}
	}
	sort.Strings(ignored)
	return doc, lines, ignored, nil
}
