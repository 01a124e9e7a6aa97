package scenarios

import (
	"errors"
	"github.com/locksim/locksim/component"
	"io/fs"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	entries, err := fs.ReadDir(Catalogue, ".")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		data, err := Catalogue.ReadFile(e.Name())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(specExample))
	for _, s := range []string{
		"", "---\n---\n", "a: &a [*a]\n", "steps: [{at: 1s, fault: partition, groups: [[etcd-1], [etcd-2]]}]\n",
		"duration: 1e300\n", "duration: .nan\n", "seed: 0x7fffffffffffffff\n", "variants: {a: }\nexpect: {a: {}}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.yaml", data)
		if err != nil {
			if s != nil {
				t.Fatalf("Parse returned a scenario and an error: %v", err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			lines := strings.Count(string(data), "\n") + 2
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error is not a non-empty ErrorList: %v", err)
			}
			for _, e := range list {
				if e.Line < 0 || e.Line > lines {
					t.Fatalf("line %d outside the file (%d lines): %v", e.Line, lines, e)
				}
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted scenario does not re-validate: %v", err)
		}
		for _, v := range s.VariantNames() {
			if _, err := s.Resolve(v); err != nil {
				t.Fatalf("variant %q does not resolve: %v", v, err)
			}
		}
		for _, st := range s.Steps {
			for _, tg := range []string{st.Target, st.Isolate, st.Bridge, st.From, st.To} {
				if tg == "" {
					continue
				}
				if _, err := component.ParseTarget(tg); err != nil {
					t.Fatalf("accepted %s has a bad target: %v", st.Source, err)
				}
			}
		}
	})
}
