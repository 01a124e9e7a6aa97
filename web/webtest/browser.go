package webtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// ChromiumPath is the browser RunBrowserChecks uses (Debian's chromium).
var ChromiumPath = "/usr/bin/chromium"

// Timeouts of the checks. NewLeader is the product promise (a new leader on
// the page within 3 s of clicking crash); the others are generous.
var (
	PageReady = 20 * time.Second
	NewLeader = 30 * time.Second // generous: the time is logged; speed is the bench's failover row
	Narration = 40 * time.Second
	Step      = 20 * time.Second
)

// Browser is a headless Chromium tab for tests.
type Browser struct {
	Ctx context.Context

	mu         sync.Mutex
	exceptions []string
}

// NewBrowser starts headless Chromium (skipping t when none is installed)
// and stops it when t ends. When t fails, a screenshot of the page is saved
// to t.TempDir()/artifacts and, if LOCKSIM_ARTIFACTS names a directory,
// there too.
func NewBrowser(t *testing.T) *Browser {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		t.Skipf("no chromium at %s: %v", ChromiumPath, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath),
		chromedp.NoSandbox,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.WindowSize(1400, 1000),
	)
	// Not t.Context(): it is cancelled before the clean-ups run, and the
	// screenshot of a failed test below needs the browser still alive.
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	b := &Browser{Ctx: ctx}
	require.NoError(t, chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg += " " + d.Exception.Description
			}
			b.mu.Lock()
			b.exceptions = append(b.exceptions, fmt.Sprintf("%s:%d: %s", d.URL, d.LineNumber+1, msg))
			b.mu.Unlock()
		}
	}), "start chromium")
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		dirs := []string{filepath.Join(t.TempDir(), "artifacts")}
		if d := os.Getenv("LOCKSIM_ARTIFACTS"); d != "" {
			dirs = append(dirs, d)
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(90))
		if err != nil {
			t.Logf("screenshot: %v", err)
			return
		}
		name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + ".png"
		for _, d := range dirs {
			if err := os.MkdirAll(d, 0o755); err == nil && os.WriteFile(filepath.Join(d, name), png, 0o644) == nil {
				t.Logf("screenshot saved to %s", filepath.Join(d, name))
			}
		}
	})
	return b
}

// Exceptions returns the uncaught JavaScript exceptions seen so far.
func (b *Browser) Exceptions() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.exceptions...)
}

// Eval evaluates a JavaScript expression.
func Eval[T any](b *Browser, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(b.Ctx, Step)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

// Navigate opens url in the tab.
func (b *Browser) Navigate(url string) error {
	ctx, cancel := context.WithTimeout(b.Ctx, PageReady)
	defer cancel()
	return chromedp.Do(ctx, chromedp.Navigate(url))
}

// SetValue sets the value of the form element matching a CSS selector and
// fires its input and change events, as typing would.
func (b *Browser) SetValue(sel, value string) error {
	_, err := Eval[bool](b, fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.value = %q; e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})); return true })()`, sel, value))
	return err
}

// WaitJS polls a boolean JavaScript expression until it is true or timeout
// passes.
func (b *Browser) WaitJS(expr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := Eval[bool](b, "!!("+expr+")")
		if err == nil && ok {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("webtest: %s: %w", expr, err)
			}
			// The page's status line says why a command it sent failed.
			st, _ := Eval[string](b, `(document.querySelector('#status') || {}).textContent || ''`)
			return fmt.Errorf("webtest: still false after %s: %s (the page's status line: %q)", timeout, expr, st)
		}
		select {
		case <-b.Ctx.Done():
			return b.Ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Click clicks the first element matching a CSS selector once it is enabled.
func (b *Browser) Click(sel string) error {
	if err := b.WaitJS(fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e && !e.disabled })()`, sel), Step); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(b.Ctx, Step)
	defer cancel()
	return chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel)))
}

// LinkKey names the link between two nodes the way the page's data-link
// attribute does: lower tier first (client, balancer, lockserver, etcd),
// names in natural order within a tier.
func LinkKey(a, b string) string {
	tier := func(n string) int {
		for i, p := range []string{"client", "balancer", "lockserver", "etcd"} {
			if strings.HasPrefix(n, p) {
				return i
			}
		}
		return 4
	}
	num := func(n string) int {
		i := strings.LastIndexByte(n, '-')
		v, _ := strconv.Atoi(n[i+1:])
		return v
	}
	ta, tb := tier(a), tier(b)
	if ta > tb || (ta == tb && (num(a) > num(b) || (num(a) == num(b) && a > b))) {
		a, b = b, a
	}
	return a + "->" + b
}

const leaderJS = `(() => { const l = document.querySelectorAll('#members [data-member][data-leader=true]'); return l.length === 1 ? l[0].dataset.member : '' })()`

// RunBrowserChecks opens pageURL (append ?token=... when the sandbox has a
// control token) and runs the classroom checks as subtests, stopping at the
// first failure. It is long because it is a list: one short subtest per
// check, in the order a class would click.
func RunBrowserChecks(t *testing.T, pageURL string) {
	b := NewBrowser(t)
	require.NoError(t, b.Navigate(pageURL), "open the page")

	var members []string
	var leader string
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"three members with exactly one leader", func(t *testing.T) {
			require.NoError(t, b.WaitJS(`document.querySelectorAll('#members [data-member]').length === 3 && document.querySelectorAll('#members [data-member][data-leader=true]').length === 1`, PageReady))
			var err error
			members, err = Eval[[]string](b, `[...document.querySelectorAll('#members [data-member]')].map(e => e.dataset.member)`)
			require.NoError(t, err)
			leader, err = Eval[string](b, leaderJS)
			require.NoError(t, err)
			require.NotEmpty(t, leader)
			t.Logf("members %v, leader %s", members, leader)
		}},
		{"crash the leader and see another leader", func(t *testing.T) {
			start := time.Now()
			require.NoError(t, b.Click(fmt.Sprintf(`[data-action=crash][data-target=%q]`, leader)))
			require.NoError(t, b.WaitJS(fmt.Sprintf(`(() => { const l = %s; return l !== '' && l !== %q })()`, leaderJS, leader), NewLeader))
			next, err := Eval[string](b, leaderJS)
			require.NoError(t, err)
			t.Logf("new leader %s on the page %s after clicking crash", next, time.Since(start).Round(time.Millisecond))
			require.NoError(t, b.WaitJS(fmt.Sprintf(`document.querySelector('#members [data-member=%q]').dataset.up === 'false'`, leader), Step))
			require.NoError(t, b.Click(fmt.Sprintf(`[data-action=restart][data-target=%q]`, leader)))
			require.NoError(t, b.WaitJS(fmt.Sprintf(`document.querySelector('#members [data-member=%q]').dataset.up === 'true'`, leader), Step))
			leader = next
		}},
		{"partition a member and see its links cut", func(t *testing.T) {
			var victim string
			for _, m := range members {
				if m != leader {
					victim = m
					break
				}
			}
			require.NotEmpty(t, victim)
			for _, m := range members {
				g := "b"
				if m == victim {
					g = "a"
				}
				require.NoError(t, b.Click(fmt.Sprintf(`#nodes input[data-group=%s][data-node=%q]`, g, m)))
			}
			require.NoError(t, b.Click(`[data-action=partition]`))
			for _, m := range members {
				if m == victim {
					continue
				}
				sel := fmt.Sprintf(`[data-link=%q][data-cut=true]`, LinkKey(victim, m))
				require.NoError(t, b.WaitJS(fmt.Sprintf(`document.querySelector(%q)`, sel), Step), "link %s cut", LinkKey(victim, m))
			}
			uncut, err := Eval[int](b, fmt.Sprintf(`document.querySelectorAll('[data-link=%q][data-cut=true]').length`, LinkKey(otherTwo(members, victim))))
			require.NoError(t, err)
			require.Zero(t, uncut, "the majority's own link stays up")
		}},
		{"heal", func(t *testing.T) {
			require.NoError(t, b.Click(`[data-action=heal]`))
			require.NoError(t, b.WaitJS(`document.querySelectorAll('#links [data-cut=true]').length === 0`, Step))
			require.NoError(t, b.WaitJS(`document.querySelectorAll('#members [data-member][data-leader=true]').length === 1`, Step))
		}},
		{"run the gc-pause scenario and see narration", func(t *testing.T) {
			require.NoError(t, b.WaitJS(`[...document.querySelectorAll('#scenario-select option')].some(o => o.value.includes('gc-pause'))`, Step), "a gc-pause scenario in the picker")
			name, err := Eval[string](b, `[...document.querySelectorAll('#scenario-select option')].find(o => o.value.includes('gc-pause')).value`)
			require.NoError(t, err)
			require.NoError(t, b.SetValue(`#scenario-select`, name))
			require.NoError(t, b.Click(`[data-action=run-scenario]`))
			require.NoError(t, b.WaitJS(`Number(document.querySelector('#narration').dataset.step) >= 1 && document.querySelector('#narration .note').textContent.trim() !== ''`, Narration))
			note, err := Eval[string](b, `document.querySelector('#narration .note').textContent`)
			require.NoError(t, err)
			t.Logf("scenario %s narrates: %q", name, note)
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			break
		}
	}
	require.Empty(t, b.Exceptions(), "uncaught JavaScript exceptions")
}

func otherTwo(members []string, not string) (string, string) {
	var out []string
	for _, m := range members {
		if m != not {
			out = append(out, m)
		}
	}
	if len(out) < 2 {
		return "", ""
	}
	return out[0], out[1]
}
