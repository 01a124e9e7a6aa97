// Package scenarios defines locksim's scenario files: the types the
// sandbox runner consumes, a parser that rejects malformed files before
// anything starts (with "file:line: problem" messages), and the catalogue
// of scenarios shipped with locksim (embedded *.yaml files).
//
// The format is documented in README.md next to this file. A scenario
// describes a topology (3 etcd members, lock servers, clients, balancer),
// a lock workload, scripted fault steps and an optional random nemesis,
// the variants to run (for example fenced and unfenced), and what the
// checker must conclude for each variant.
//
// The package is pure: it reads bytes and returns plain data. Roles such
// as "etcd:leader" or "client:holder" stay unresolved; the runner resolves
// them when a step fires.
//
// # Usage
//
//	s, err := scenarios.ParseFile("my-scenario.yaml") // or scenarios.Load("leader-crash")
//	if err != nil {
//		fmt.Fprintln(os.Stderr, err) // one "file:line: problem" per line
//		os.Exit(2)
//	}
//	for _, name := range s.VariantNames() {
//		eff, _ := s.Resolve(name) // fencing/unsafe after the variant's overrides, and its Expect
//		...
//	}
//	for _, st := range s.Steps {
//		t, _ := scenarios.ParseTarget(st.Target) // already validated by Parse
//		...
//	}
//
// # Concurrency
//
// Parsing has no shared state; a parsed Scenario is plain data that is safe
// to read from many goroutines as long as nobody modifies it.
package scenarios
