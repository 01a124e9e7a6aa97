// Package webtest drives the locksim visualizer in a real browser.
//
// RunBrowserChecks (build tag "browser", needs github.com/chromedp/chromedp)
// opens the page of a running sandbox in headless Chromium and checks what a
// teacher would do with it: three etcd members with exactly one leader, crash
// the leader and see another leader, partition a member and see its links
// cut, heal, and run the gc-pause scenario and see its narration. It skips
// when no Chromium is installed.
//
// # Usage
//
//	//go:build browser
//	func TestBrowser(t *testing.T) {
//		sb := startSandbox(t) // whatever serves the web UI
//		webtest.RunBrowserChecks(t, sb.WebURL())
//	}
//
// Run with: go test -race -tags browser ./sim/...
package webtest
