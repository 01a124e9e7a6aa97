// Package run runs scenario files headless against fresh sandboxes and
// reports what the checker concluded: `locksim run` and the scenario
// catalogue's tests.
//
// For each variant of a scenario, Scenario boots a sandbox (package sim)
// configured from the file (Config), starts the workload and fires the
// scenario's plan — its scripted steps and its nemesis draws — through the
// sandbox's fault injector, for the scenario's duration. Then it undoes every
// fault, lets the clients finish the cycle they are in, settles operations
// whose outcome no client learned from what etcd recorded
// (history.Resolve), checks the history with porcupine (history.Check) and
// compares the verdicts with the file's expectations.
//
// The lock servers are locksim's own unless the scenario's
// lockServers.command, Options.LockServerCmd (processes of a command line)
// or Options.LockServerFunc (a handler of the caller's, the seam of a `go
// test` proof; see the example) says otherwise. A lock server that is not
// locksim's own keeps its locks in etcd its own way, so unknown outcomes
// are not settled from etcd's record: they stay unknown, which the checker
// treats as "maybe".
//
// With Options.OutDir it writes, per scenario, OUT/<scenario>/report.json
// and, per variant, OUT/<scenario>/<variant>/{history.jsonl, history.html,
// report.json}: the recorded operations, porcupine's view with the faults
// drawn in, and the variant's report; the processes of a lock server
// command write their NAME.stdout and NAME.stderr there too.
//
// # Usage
//
//	sc, err := scenarios.ParseFile("scenarios/leader-crash.yaml")
//	rep, err := run.Scenario(ctx, sc, run.Options{OutDir: "out", Progress: os.Stderr})
//	if !rep.Pass { ... } // rep.Variants[i].Failures says which expectation failed
//
// # Concurrency
//
// Scenario runs the variants one after another and returns when the last is
// checked; Options.Observe is called from Scenario's goroutine.
package run
