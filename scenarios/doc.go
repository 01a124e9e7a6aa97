// Package scenarios defines locksim's scenario files: the Scenario type, a
// parser that rejects malformed files before anything starts (with
// "file:line: problem" messages), an encoder that writes what the parser
// reads (Encode), and the catalogue of scenarios shipped with locksim
// (embedded *.yaml files).
//
// The format is documented in README.md next to this file. A scenario
// describes a topology (3 etcd members, lock servers, clients, one balancer
// or a VRRP group of them), a lock workload, scripted fault steps and an
// optional random nemesis, the variants to run (for example fenced and
// unfenced, or preempt and nopreempt), and what the checker must conclude
// for each variant.
//
// The steps decode into the fault runner's own type, faults.Step, and are
// checked by its rules (faults.Step.Check) against the file's topology; the
// nemesis is a faults.NemesisSpec. Plan returns both as the runner's plan.
// Roles such as "etcd:leader" or "client:holder" stay unresolved; the
// fault injector resolves them when a step fires.
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
//	plan := s.Plan(s.Seed)      // []faults.Step: the steps and the nemesis draws, in firing order
//	data := scenarios.Encode(s) // a file that parses back to s
//
// # Concurrency
//
// Parsing and encoding have no shared state; a parsed Scenario is plain data
// that is safe to read from many goroutines as long as nobody modifies it.
package scenarios
