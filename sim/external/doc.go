// Package external runs a lock server that is not locksim's own: any
// program, started from a command line, that serves the lock HTTP API and
// talks to etcd. The sandbox (package sim) starts one Process per lock
// server and per (re)start, and applies faults to it for real: a crash is
// SIGKILL, a pause is SIGSTOP and a resume SIGCONT, all sent to the
// process's own process group, so that a shell and the program it starts
// are hit together.
//
// The command line is run by /bin/sh with three placeholders replaced
// first: {listen} (the host:port to serve on), {name} (lockserver-N) and
// {etcd} (comma-separated etcd client URLs). Its standard output and
// standard error are appended to NAME.stdout and NAME.stderr in
// Config.LogDir, each start beginning with a line that says so.
//
// # Usage
//
//	p, err := external.New(external.Config{
//		Name: "lockserver-1", Command: "python3 server.py --listen {listen} --etcd {etcd}",
//		Listen: "127.0.0.1:7001", Etcd: urls, LogDir: dir,
//		OnExit: func(how string) { ... }, // it died on its own
//	})
//	if err := p.Start(ctx); err != nil { ... } // started and accepting connections
//	if err := p.WaitHealthy(ctx); err != nil { ... } // GET /health answered 200
//	p.Pause(); p.Resume()
//	p.Close() // SIGKILL, reaped
//
// Start, WaitHealthy and Close fail with one line that names the server and
// the problem (ErrStart, ErrExited, ErrNotReady), quoting the last line the
// program wrote on standard error.
//
// # Concurrency
//
// A Process is safe for concurrent use. Close is idempotent and returns
// once the process has been reaped; OnExit is called from the goroutine
// that reaps it, only when the process ended without Close.
package external
