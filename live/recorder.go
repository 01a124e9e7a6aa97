package live

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/run"
	"github.com/locksim/locksim/sim"
	"github.com/locksim/locksim/web"
)

// RunRecorder watches each variant's sandbox of a headless run: it writes the
// frames to the variant's frames.jsonl, next to its history.jsonl (for
// `locksim view`), and, with a Relay, shows them live in the page. Pass
// Observe as run.Options.Observe and call Finish with the run's report.
type RunRecorder struct {
	// Dir is the run's output folder for one scenario: OUT/<scenario>.
	Dir string
	// Relay, optional, shows the frames live.
	Relay *Relay
	// Live, with a Relay, makes the page's checker re-check as the run goes.
	Live bool

	cur  *variantFrames
	done []*variantFrames
	err  error
}

type variantFrames struct {
	variant string
	view    *View
	file    *os.File
	stop    func() error
	last    web.Frame
}

// Observe starts recording the frames of one variant's sandbox (and stops
// recording the previous one's).
func (r *RunRecorder) Observe(sb *sim.Sandbox, variant string) {
	r.closeCurrent()
	check := -1 * time.Nanosecond // the headless run checks at the end
	if r.Relay != nil && r.Live {
		check = 0 // the page re-checks live
	}
	view := New(sb, Config{CheckEvery: check})
	if err := view.Start(context.Background()); err != nil {
		r.err = errors.Join(r.err, err)
		return
	}
	vf := &variantFrames{variant: variant, view: view}
	dir := filepath.Join(r.Dir, variant) // next to history.jsonl
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.err = errors.Join(r.err, err)
	} else if f, err := os.Create(filepath.Join(dir, "frames.jsonl")); err != nil {
		r.err = errors.Join(r.err, err)
	} else {
		vf.file = f
		vf.stop = RecordFrames(view, f)
	}
	if r.Relay != nil {
		r.Relay.Attach(view)
	}
	r.cur = vf
}

func (r *RunRecorder) closeCurrent() {
	vf := r.cur
	if vf == nil {
		return
	}
	r.cur = nil
	if vf.stop != nil {
		r.err = errors.Join(r.err, vf.stop())
	}
	vf.last = vf.view.Frame()
	r.err = errors.Join(r.err, vf.view.Close())
	r.done = append(r.done, vf)
}

// Finish stops recording and appends to each variant's frames a last frame
// with the verdict of the final check. With a Relay the page keeps the last
// variant's frames and links its history.html.
func (r *RunRecorder) Finish(rep *run.Report) error {
	r.closeCurrent()
	if r.Relay != nil && rep != nil && len(rep.Variants) > 0 {
		r.Relay.SetHistoryFile(rep.Variants[len(rep.Variants)-1].HTMLPath)
	}
	for _, vf := range r.done {
		if vf.file == nil {
			continue
		}
		if rep != nil {
			for _, v := range rep.Variants {
				if v.Variant == vf.variant {
					f := vf.last
					f.Seq++
					f.Ops, f.Faults = nil, nil
					f.Verdict.Lock, f.Verdict.Resource = string(v.Lock), string(v.Resource)
					f.Verdict.CheckedOps = v.Check.LockOps + v.Check.ResourceOps
					f.Verdict.HistoryURL = "/history.html"
					f.Verdict.Explanations = explainedOps(v.Check.Explanations, vf.last.Ops)
					r.err = errors.Join(r.err, web.AppendFrameJSONL(vf.file, f))
				}
			}
		}
		r.err = errors.Join(r.err, vf.file.Close())
	}
	return r.err
}

// explainedOps turns a finished run's explanations into the page's, finding
// each explained operation among the frames' ops by client, kind and call
// time (the checked history was settled from etcd, so its positions are not
// the recorder's).
func explainedOps(es []history.Explanation, ops []web.Op) []web.Explanation {
	out := webExplanations(es, nil)
	for i, e := range es {
		out[i].Ops = nil
		for _, op := range e.Operations {
			j := slices.IndexFunc(ops, func(o web.Op) bool { return o.Client == op.Client && o.Op == op.Op && o.Call == op.Call })
			if j >= 0 {
				out[i].Ops = append(out[i].Ops, ops[j].ID)
			}
		}
	}
	return out
}
