// Package live adapts a running sandbox to the web visualizer (package web):
// a View publishes a frame of the sandbox's state every interval, with the
// operations and fault events since the last one, runs the live checker,
// and carries out the page's buttons.
//
// A fault button is a step fired now: Do turns it into a faults.Step and
// applies it through the sandbox's fault injector, the same one a scenario
// file and the nemesis go through, so a clicked fault looks and is undone
// like any other. A scenario started from the page runs its steps through
// that injector too, on a clock that step mode can stop before each step.
// Export writes the clicks of a session as a scenario file, with the
// scenario format's own encoder.
//
// A Relay follows the sandboxes of a headless run (one per variant) on one
// continuous timeline, and a RunRecorder writes each variant's frames to its
// frames.jsonl for `locksim view`.
//
// # Usage
//
//	view := live.New(sb, live.Config{})
//	srv, _ := web.New(web.Config{Scenarios: live.Scenarios, HistoryHTML: view.HistoryHTML, Export: view.Export}, view, view)
//	_ = srv.Start(ctx)
//	_ = view.Start(ctx)
//	defer view.Close()
//
// # Concurrency
//
// A View publishes from one goroutine and checks from another; Do, Frame and
// Subscribe are safe for concurrent use. A subscriber that falls behind gets
// what it missed merged into a later frame; the publisher never waits.
// Close returns when every goroutine of the View is gone.
package live
