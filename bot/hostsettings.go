package bot

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
)

// hostFields are the keys every inventory host has; any other key of a
// host's entry is a command's settings block (apache:, relayd:).
var hostFields = []string{"address", "via", "user", "port", "become", "tags", "timeout"}

// HostBlock is a command's settings block in an inventory host's entry:
// its key ("relayd") and how the command decodes and validates it. The
// core knows neither the fields nor their defaults. What Decode returns is
// kept for the command in Host.Settings[Key]; an error (several with
// errors.Join, each from HostSettings.Errorf) makes the policy invalid.
type HostBlock struct {
	Key    string
	Decode func(HostSettings) (any, error)
}

// HostSettings is one command's block in one host's entry, as the policy
// file has it.
type HostSettings struct {
	Host, Key string
	node      ast.Node
	at        string // "line:column" of the key, for an unknown block
}

// Decode decodes the block into v strictly: an unknown key or a value of
// the wrong type is an error that names its line. An empty block ("relayd:"
// with nothing after it) leaves v as it is.
func (s HostSettings) Decode(v any) error {
	if _, empty := s.node.(*ast.NullNode); empty || s.node == nil {
		return nil
	}
	if err := yaml.NodeToValue(s.node, v, yaml.Strict(), yaml.DisallowUnknownField()); err != nil {
		return &Error{Code: ECONFIG, Message: yamlMessage(err), Err: err}
	}
	return nil
}

// Errorf says what is wrong with one field of the block; the policy's
// error names the field's line.
func (s HostSettings) Errorf(field, format string, args ...any) error {
	return &settingsError{path: fmt.Sprintf("$.hosts.%s.%s.%s", s.Host, s.Key, field), msg: fmt.Sprintf(format, args...)}
}

type settingsError struct{ path, msg string }

func (e *settingsError) Error() string { return e.msg }

// UnmarshalYAML implements yaml.NodeUnmarshaler: the host's own keys are
// decoded strictly; the others are kept, with their lines, for the
// commands' blocks.
func (s *HostSpec) UnmarshalYAML(n ast.Node) error {
	var pairs []*ast.MappingValueNode
	switch m := n.(type) {
	case *ast.MappingNode:
		pairs = m.Values
	case *ast.MappingValueNode:
		pairs = []*ast.MappingValueNode{m}
	case *ast.NullNode:
		return nil
	default:
		return yaml.NodeToValue(n, &s.HostFields, yaml.Strict()) // says what it is instead
	}
	own := &ast.MappingNode{BaseNode: &ast.BaseNode{}, Start: n.GetToken()}
	for _, pair := range pairs {
		key := pair.Key.String()
		if slices.Contains(hostFields, key) {
			own.Values = append(own.Values, pair)
			continue
		}
		if s.Settings == nil {
			s.Settings = map[string]HostSettings{}
		}
		pos := pair.Key.GetToken().Position
		s.Settings[key] = HostSettings{Key: key, node: pair.Value, at: fmt.Sprintf("%d:%d", pos.Line, pos.Column)}
	}
	return yaml.NodeToValue(own, &s.HostFields, yaml.Strict(), yaml.DisallowUnknownField())
}

// decodeSettings hands each host's blocks to their commands; a block no
// command claims is an unknown key.
func (p *Policy) decodeSettings(blocks []HostBlock) []problem {
	byKey := map[string]HostBlock{}
	var keys []string
	for _, b := range blocks {
		byKey[b.Key] = b
		keys = append(keys, b.Key)
	}
	sort.Strings(keys)
	var problems []problem
	for name, h := range p.Hosts {
		for key, s := range h.Settings {
			s.Host = name
			b, ok := byKey[key]
			if !ok {
				accepted := strings.Join(hostFields, ", ")
				if len(keys) > 0 {
					accepted += ", and the settings of " + strings.Join(keys, ", ")
				}
				problems = append(problems, problem{msg: fmt.Sprintf("%s: hosts.%s: unknown field %q: accepted are %s", s.at, name, key, accepted)})
				continue
			}
			v, err := b.Decode(s)
			if err != nil {
				problems = append(problems, settingsProblems(s, err)...)
				continue
			}
			if h.values == nil {
				h.values = map[string]any{}
			}
			h.values[key] = v
		}
		p.Hosts[name] = h
	}
	return problems
}

// settingsProblems are a block's errors, each with the line of its field
// where the command named one.
func settingsProblems(s HostSettings, err error) []problem {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	out := make([]problem, 0, len(errs))
	for _, e := range errs {
		var se *settingsError
		switch {
		case errors.As(e, &se):
			out = append(out, problem{path: se.path, msg: se.msg})
		case ErrorMessage(e) != "":
			out = append(out, problem{msg: ErrorMessage(e)})
		default:
			out = append(out, problem{path: fmt.Sprintf("$.hosts.%s.%s", s.Host, s.Key), msg: fmt.Sprintf("hosts.%s.%s: %v", s.Host, s.Key, e)})
		}
	}
	return out
}
