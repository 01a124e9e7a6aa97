package scenarios

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// Catalogue holds the scenario files shipped with locksim.
//
//go:embed *.yaml
var Catalogue embed.FS

// ErrNotInCatalogue is returned by Load for an unknown name.
var ErrNotInCatalogue = errors.New("scenarios: not in the catalogue")

// Names returns the catalogue's scenario names (file names without
// ".yaml"), sorted.
func Names() []string {
	entries, err := fs.ReadDir(Catalogue, ".")
	if err != nil { // cannot happen with an embed.FS
		return nil
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".yaml") {
			names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
		}
	}
	slices.Sort(names)
	return names
}

// Load parses a catalogue scenario by name ("leader-crash" or
// "leader-crash.yaml").
func Load(name string) (*Scenario, error) {
	file := path.Base(strings.TrimSuffix(name, ".yaml")) + ".yaml"
	data, err := Catalogue.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %q (want one of %s)", ErrNotInCatalogue, name, strings.Join(Names(), ", "))
	}
	return Parse(file, data)
}

// LoadAll parses every catalogue scenario, in name order.
func LoadAll() ([]*Scenario, error) {
	var out []*Scenario
	for _, name := range Names() {
		s, err := Load(name)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}
