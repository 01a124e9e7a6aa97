package web

import (
	"context"
	"flag"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/locksim/locksim/web/webtest"
	"github.com/stretchr/testify/require"
)

var screenshot = flag.String("screenshot", "", "write a screenshot of the page with the toy sandbox to this file")

func startToy(t *testing.T, cfg Config) (*toySandbox, *Server) {
	t.Helper()
	toy := newToySandbox(4, 100*time.Millisecond)
	toy.start()
	t.Cleanup(toy.close)
	cfg.Scenarios = func() []ScenarioInfo {
		return []ScenarioInfo{{Name: "gc-pause-past-lease", Description: "GC pause past the lease"}, {Name: "leader-crash"}}
	}
	return toy, startServer(t, cfg, toy, toy)
}

func TestBrowserChecksAgainstToySandbox(t *testing.T) {
	_, s := startToy(t, Config{})
	webtest.RunBrowserChecks(t, s.URL())
}

func TestBrowserReadOnlyWithoutToken(t *testing.T) {
	_, s := startToy(t, Config{ControlToken: "s3cret"})
	b := webtest.NewBrowser(t)
	require.NoError(t, b.Navigate(s.URL()))
	require.NoError(t, b.WaitJS(`document.querySelector('[data-action=crash][data-target="etcd-1"]')`, 10*time.Second))
	require.NoError(t, b.WaitJS(`document.body.classList.contains('readonly') && document.querySelector('[data-action=crash][data-target="etcd-1"]').disabled`, 5*time.Second))

	require.NoError(t, b.Navigate(s.URL()+"?token=s3cret"))
	require.NoError(t, b.WaitJS(`document.querySelector('[data-action=crash][data-target="etcd-1"]') && !document.body.classList.contains('readonly')`, 10*time.Second))
	require.NoError(t, b.Click(`[data-action=crash][data-target="etcd-1"]`))
	require.NoError(t, b.WaitJS(`document.querySelector('#members [data-member="etcd-1"]').dataset.up === 'false'`, 5*time.Second))
}

func TestBrowserScrubShowsPastState(t *testing.T) {
	toy, s := startToy(t, Config{})
	b := webtest.NewBrowser(t)
	require.NoError(t, b.Navigate(s.URL()))
	require.NoError(t, b.WaitJS(`document.querySelectorAll('#members [data-leader=true]').length === 1`, 10*time.Second))
	require.NoError(t, b.WaitJS(`document.querySelector('#members [data-member="etcd-1"][data-leader=true]')`, 10*time.Second))
	require.NoError(t, toy.Do(t.Context(), Command{Action: "crash", Target: "etcd-1"}))
	require.NoError(t, b.WaitJS(`document.querySelector('#members [data-member="etcd-1"]').dataset.up === 'false'`, 5*time.Second))

	// Scrub back to the first frame: etcd-1 was up and leading there.
	require.NoError(t, b.SetValue(`#scrub`, "0"))
	require.NoError(t, b.WaitJS(`document.body.dataset.view === 'replay' && document.querySelector('#members [data-member="etcd-1"]').dataset.up === 'true'`, 5*time.Second))
	require.NoError(t, b.Click(`#live`))
	require.NoError(t, b.WaitJS(`document.body.dataset.view === 'live' && document.querySelector('#members [data-member="etcd-1"]').dataset.up === 'false'`, 5*time.Second))
	require.Empty(t, b.Exceptions())
}

// TestScreenshot writes the page with the toy sandbox to -screenshot.
func TestScreenshot(t *testing.T) {
	if *screenshot == "" {
		t.Skip("no -screenshot path")
	}
	toy := newToySandbox(4, 100*time.Millisecond)
	toy.advance(200)
	_ = toy.Do(t.Context(), Command{Action: ActionRunScenario, Scenario: "gc-pause-past-lease"})
	toy.advance(15)
	_ = toy.Do(t.Context(), Command{Action: "partition", Groups: [][]string{{"etcd-3"}, {"etcd-1", "etcd-2"}}})
	toy.advance(12)
	toy.start()
	t.Cleanup(toy.close)
	s := startServer(t, Config{Scenarios: func() []ScenarioInfo { return []ScenarioInfo{{Name: "gc-pause-past-lease"}} }}, toy, toy)
	b := webtest.NewBrowser(t)
	require.NoError(t, b.Navigate(s.URL()))
	require.NoError(t, b.WaitJS(`document.querySelectorAll('#timeline rect.op').length > 10`, 10*time.Second))
	ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(*screenshot, png, 0o644))
	require.Empty(t, b.Exceptions())
}

func TestBrowserStepModeNarratesAndContinues(t *testing.T) {
	_, s := startToy(t, Config{})
	b := webtest.NewBrowser(t)
	require.NoError(t, b.Navigate(s.URL()))
	require.NoError(t, b.WaitJS(`document.querySelector('#scenario-select option[value="gc-pause-past-lease"]')`, 10*time.Second))
	require.NoError(t, b.Click(`#step-mode`))
	require.NoError(t, b.Click(`[data-action=run-scenario]`))
	require.NoError(t, b.WaitJS(`document.querySelector('#narration').classList.contains('waiting') && !document.querySelector('#continue').disabled`, 10*time.Second))
	require.NoError(t, b.WaitJS(`document.querySelector('#narration').dataset.step === '0'`, 5*time.Second))
	require.NoError(t, b.Click(`#continue`))
	require.NoError(t, b.WaitJS(`document.querySelector('#narration').dataset.step === '1' && document.querySelector('#narration .note').textContent.includes('frozen')`, 5*time.Second))
	require.NoError(t, b.WaitJS(`document.querySelector('#clients-g [data-client="client-1"]').dataset.paused === 'true'`, 5*time.Second))
	require.NoError(t, b.WaitJS(`document.querySelector('#timeline rect.faultwin')`, 5*time.Second), "the pause is shaded on the timeline")
	require.NoError(t, b.Click(`#clients [data-action=resume][data-target="client-1"]`))
	require.NoError(t, b.WaitJS(`document.querySelector('#clients-g [data-client="client-1"]').dataset.paused === 'false'`, 5*time.Second))
	require.Empty(t, b.Exceptions())
}

// TestBrowserExplainsAViolation: when the verdict carries an explanation,
// the page says it in words and outlines its operations on the timeline.
func TestBrowserExplainsAViolation(t *testing.T) {
	toy, s := startToy(t, Config{})
	b := webtest.NewBrowser(t)
	require.NoError(t, b.Navigate(s.URL()))
	require.NoError(t, b.WaitJS(`document.querySelectorAll('#timeline rect.op').length > 0`, 10*time.Second))
	require.NoError(t, b.WaitJS(`document.querySelector('#explanations').hidden && !document.querySelector('#timeline rect.op.explained')`, 5*time.Second),
		"nothing is explained while the checks pass")
	require.NoError(t, toy.Do(t.Context(), Command{Action: ActionFencing, Value: false}))
	require.NoError(t, toy.Do(t.Context(), Command{Action: "pause", Target: "client-1"}))
	require.NoError(t, b.WaitJS(`!document.querySelector('#explanations').hidden &&
		document.querySelector('#explanations [data-kind="stale-write-accepted"]').textContent.includes('old fencing token') &&
		document.querySelectorAll('#timeline rect.op.explained').length >= 1`, 20*time.Second))
	require.Empty(t, b.Exceptions())
}
