package live

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/sim"
	"github.com/locksim/locksim/web"
)

// liveCheck is the live checker's state: the latest verdict, the ops it was
// reached on, and porcupine's view of them once rendered.
type liveCheck struct {
	mu      sync.Mutex
	verdict web.Verdict
	ops     []history.Op // what the latest check saw
	checks  int          // checks so far
	html    []byte       // porcupine's view of ops
	htmlFor int          // the check html was rendered for
	dir     string       // temp dir for the view; removed by Close

	render sync.Mutex // one rendering at a time
}

func (w *View) verdict() web.Verdict {
	w.check.mu.Lock()
	defer w.check.mu.Unlock()
	return w.check.verdict
}

// checkLoop re-checks the history so far every CheckEvery, on its own
// goroutine (never on the frame path), skipping when nothing was recorded
// since the last check.
func (w *View) checkLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.CheckEvery)
	defer t.Stop()
	last := -1
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rec := w.sb.Recorder()
		if rec == nil {
			continue
		}
		n := rec.Len()
		if n == last || n == 0 {
			continue
		}
		last = n
		w.checkNow()
	}
}

// checkNow checks the ops recorded so far (pending ones count as unknown)
// and stores the verdict.
func (w *View) checkNow() web.Verdict {
	ops, ids := w.window()
	res := history.Check(ops, history.Options{
		Timeout: w.cfg.CheckTimeout, Explain: true, Annotations: sim.Annotations(w.sb.Events()),
	})
	v := web.Verdict{
		Lock: string(res.Lock), Resource: string(res.Resource),
		CheckedOps: len(ops), At: int64(w.sb.Elapsed()), HistoryURL: w.cfg.HistoryURL,
		Explanations: webExplanations(res.Explanations, ids),
	}
	w.check.mu.Lock()
	w.check.verdict = v
	w.check.ops = ops
	w.check.checks++
	w.check.mu.Unlock()
	return v
}

// HistoryHTML renders porcupine's view of the history the latest live
// check saw (checking now if none ran yet), with the faults so far drawn as
// annotations. The page is cached until the next check.
func (w *View) HistoryHTML() ([]byte, error) {
	c := &w.check
	c.render.Lock()
	defer c.render.Unlock()
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	c.mu.Lock()
	if closed {
		page := c.html
		c.mu.Unlock()
		if page == nil {
			return nil, ErrClosed
		}
		return page, nil
	}
	if c.checks == 0 {
		c.mu.Unlock()
		w.checkNow()
		c.mu.Lock()
	}
	if c.html != nil && c.htmlFor == c.checks {
		page := c.html
		c.mu.Unlock()
		return page, nil
	}
	ops, gen, dir := c.ops, c.checks, c.dir
	c.mu.Unlock()
	if dir == "" {
		d, err := os.MkdirTemp("", "locksim-web-*")
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.dir, dir = d, d
		c.mu.Unlock()
	}
	path := filepath.Join(dir, "history.html")
	res := history.Check(ops, history.Options{
		Timeout:       w.cfg.CheckTimeout,
		VisualizePath: path,
		Annotations:   sim.Annotations(w.sb.Events()),
	})
	if res.VisualizationPath == "" {
		return nil, os.ErrNotExist
	}
	page, err := os.ReadFile(res.VisualizationPath)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.html, c.htmlFor = page, gen
	c.mu.Unlock()
	return page, nil
}

// window returns what the live checker checks: the operations the
// recorder keeps (the whole history unless the sandbox bounds it; then its
// most recent operations, made safe to check with history.Tail), and the
// op id of each.
func (w *View) window() ([]history.Op, []uint64) {
	ops, first := w.sb.Recorder().OpsFrom(0)
	idx := make([]int, len(ops))
	for i := range idx {
		idx[i] = i
	}
	if first > 0 {
		ops, idx = history.Tail(ops)
	}
	ids := make([]uint64, len(idx))
	for i, x := range idx {
		ids[i] = uint64(first + x)
	}
	return ops, ids
}

// webExplanations turns the checker's explanations into the page's: ids[i]
// is the op id of the i-th operation given to Check.
func webExplanations(es []history.Explanation, ids []uint64) []web.Explanation {
	var out []web.Explanation
	for _, e := range es {
		var ops []uint64
		for _, idx := range e.Index {
			if idx >= 0 && idx < len(ids) {
				ops = append(ops, ids[idx])
			}
		}
		out = append(out, web.Explanation{Resource: e.Resource, Model: e.Model, Kind: string(e.Kind), Text: e.Text, Ops: ops})
	}
	return out
}
