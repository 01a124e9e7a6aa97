// Package web serves locksim's classroom visualizer: one HTML page with
// hand-written CSS and JavaScript (embedded, no CDN, no build step) that
// draws the sandbox live from a websocket, plus a small control API.
//
// web knows nothing about etcd, lock servers, faults or scenarios. It
// declares the data it shows (Frame and its parts, plain JSON) and two
// interfaces: Source, which publishes frames, and Controller, which carries
// out the buttons' commands — a fault action (crash, restart, pause, resume,
// partition) is the Controller's to validate and apply. Package live
// implements both.
//
// # Usage
//
//	srv, err := web.New(web.Config{Listen: "127.0.0.1:0"}, source, controller)
//	if err != nil { ... }
//	if err := srv.Start(ctx); err != nil { ... }
//	defer srv.Close()
//	fmt.Println("UI:", srv.URL())
//
// A finished run is opened with Config.RunDir (its frames.jsonl, written with
// AppendFrameJSONL, and its history.html) and a nil Source and Controller.
//
// # HTTP
//
//	GET  /                the page (assets under /assets/)
//	GET  /ws              websocket: a full Frame first, then coalesced updates
//	POST /api/control     JSON Command -> {"ok":true} (Bearer token when configured)
//	GET  /api/info        {"controlRequired","controllable","live"}
//	GET  /api/scenarios   the catalogue for the picker
//	GET  /api/frames      every frame recorded so far, for the scrub slider
//	GET  /api/export      the control actions so far as a scenario file (Config.Export)
//	GET  /api/stats       Stats
//	GET  /history.html    porcupine's view of the history so far
//
// # Frames
//
// Every Frame carries the full current state except Ops and Faults, which
// hold what changed since the previous frame and are upserted by id (Merge).
// Seq increases by one per frame. The first websocket message is the
// Source's snapshot; updates follow at most once per SendInterval, every
// frame that arrived in between merged into one, so no op or fault is lost.
//
// # Concurrency
//
// One producer goroutine reads the Source's subscription, records each frame
// for replay and, once per SendInterval, encodes the coalesced frame once and
// offers it to every viewer without blocking. Each viewer has a bounded
// buffer and a writer goroutine with a write deadline: a viewer whose buffer
// is full or whose write times out is disconnected and counted in
// Stats.Dropped, so a slow browser never slows the sandbox. Close stops the
// producer, disconnects every viewer and returns when all goroutines are
// gone.
//
// # Security
//
// The server binds 127.0.0.1 by default. Websocket upgrades and control
// requests from a browser must come from the server's own origin or one of
// Config.AllowedOrigins. With Config.ControlToken set, POST /api/control
// needs "Authorization: Bearer <token>" (403 otherwise) and the page stays
// read-only until the token is given (?token= in the URL or the token field).
package web
