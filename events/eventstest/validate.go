// Package eventstest validates events against their JSON Schemas, for
// tests in any package that sees events (the engine's, the bus's, the
// end-to-end SIPp runs).
package eventstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tollgate/tollgate/events"
)

var (
	once     sync.Once
	compiled map[string]*jsonschema.Schema
	err      error
)

func load() {
	compiled = map[string]*jsonschema.Schema{}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for _, typ := range events.Types {
		doc, ok := events.Schema(typ)
		if !ok {
			err = fmt.Errorf("eventstest: no schema for %s", typ)
			return
		}
		v, e := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
		if e != nil {
			err = fmt.Errorf("eventstest: schema %s: %w", typ, e)
			return
		}
		url := "https://tollgate.dev/schemas/events/v1/" + typ + ".json"
		if e := c.AddResource(url, v); e != nil {
			err = e
			return
		}
		s, e := c.Compile(url)
		if e != nil {
			err = fmt.Errorf("eventstest: schema %s: %w", typ, e)
			return
		}
		compiled[typ] = s
	}
}

// Validate checks one event's JSON against the schema of its type.
func Validate(data []byte) error {
	once.Do(load)
	if err != nil {
		return err
	}
	var head struct {
		Type string `json:"type"`
	}
	if e := json.Unmarshal(data, &head); e != nil {
		return fmt.Errorf("event is not JSON: %w", e)
	}
	s, ok := compiled[head.Type]
	if !ok {
		return fmt.Errorf("event type %q has no schema", head.Type)
	}
	v, e := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if e != nil {
		return e
	}
	if e := s.Validate(v); e != nil {
		return fmt.Errorf("%s: %w", head.Type, e)
	}
	return nil
}
