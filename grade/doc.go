// Package grade grades a lock server: locksim's own, a program of yours
// started from a command line, or a handler of yours in this process. It
// runs the API conformance battery (package conformance) against one of its
// lock servers in a sandbox of its own — with a way to take etcd's quorum
// away, so that the "unavailable" check runs too — and then the safe fault
// catalogue (every scenario variant the catalogue expects linearizable) on
// a few seeds, each run in a fresh sandbox with the lock servers under
// grade (package run). The result is a report Card: per run the lock and
// resource verdicts, the acquires ok/fail/unknown and the availability
// during the faults (how many acquires called while a fault was in effect
// were answered: granted, or refused as lock_busy); it renders as text, as
// Markdown and as an HTML page linking each run's porcupine view.
//
// A lock server that is not locksim's own keeps its locks in etcd its own
// way: unknown outcomes are not settled from etcd's record, they stay
// unknown, which the checker treats as "maybe".
//
// # Usage
//
//	card, err := grade.Run(ctx, grade.Config{
//		LockServerCmd: "python3 lockserver.py --listen {listen} --etcd {etcd} --name {name}",
//		OutDir:        "out/grade",
//	})
//	if errors.Is(err, grade.ErrBadInput) { ... } // it does not start, or does not speak the API
//	fmt.Print(card.Text())
//	if !card.Pass { ... }                         // something was violated (or not proven)
//
// # Concurrency
//
// Run runs the battery and then every run one after another, each in a
// sandbox of its own, and returns when the last is checked.
package grade
