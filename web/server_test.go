package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func startServer(t *testing.T, cfg Config, src Source, ctl Controller) *Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	s, err := New(cfg, src, ctl)
	require.NoError(t, err)
	require.NoError(t, s.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func dial(t *testing.T, s *Server, origin string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	c, resp, err := websocket.DefaultDialer.DialContext(t.Context(), "ws://"+s.Addr()+"/ws", h)
	if err == nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c, resp, err
}

func readFrame(t *testing.T, c *websocket.Conn) Frame {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, data, err := c.ReadMessage()
	require.NoError(t, err)
	var f Frame
	require.NoError(t, json.Unmarshal(data, &f))
	return f
}

func opsUpTo(from, to uint64) []Op {
	var out []Op
	for i := from; i <= to; i++ {
		out = append(out, Op{ID: i, Client: "client-1", Op: "acquire", Outcome: "ok", Call: int64(i), Return: int64(i) + 1})
	}
	return out
}

func TestViewerGetsSnapshotThenEveryOpInOrder(t *testing.T) {
	snap := Frame{Seq: 5, T: 500, Pace: "fast", Members: []Member{{Name: "etcd-1", Up: true, Leader: true}}, Ops: opsUpTo(1, 5)}
	src := newFakeSource(snap)
	s := startServer(t, Config{SendInterval: 20 * time.Millisecond}, src, nil)
	require.Eventually(t, func() bool { return src.subscribers() == 1 }, 30*time.Second, 5*time.Millisecond)

	c, _, err := dial(t, s, "")
	require.NoError(t, err)
	got := readFrame(t, c)
	assert.Equal(t, snap, got, "the first message is the full snapshot")

	const last = 200
	for i := uint64(6); i <= last; i++ {
		src.push(Frame{Seq: i, T: int64(i) * 100, Pace: "fast", Ops: []Op{opsUpTo(i, i)[0]}})
		if i%20 == 0 { // bursts of 20 frames, well within the subscription's buffer
			want := int(i - 4)
			require.Eventually(t, func() bool { return s.Stats().Recorded == want }, 30*time.Second, time.Millisecond)
		}
	}
	var msgs int
	var gotOps []uint64
	seq := got.Seq
	for seq < last {
		f := readFrame(t, c)
		msgs++
		require.Greater(t, f.Seq, seq, "frames arrive in order")
		seq = f.Seq
		for _, o := range f.Ops {
			gotOps = append(gotOps, o.ID)
		}
	}
	var wantOps []uint64
	for i := uint64(6); i <= last; i++ {
		wantOps = append(wantOps, i)
	}
	assert.Equal(t, wantOps, gotOps, "coalescing keeps every op, once, in order")
	assert.Less(t, msgs, last-5, "frames pushed in a burst are coalesced into fewer messages")
	assert.Zero(t, src.blockedCount())
}

func TestSlowViewerIsDroppedAndProducerKeepsItsRate(t *testing.T) {
	src := newFakeSource(Frame{Seq: 1})
	s := startServer(t, Config{
		SendInterval: 5 * time.Millisecond,
		ViewerBuffer: 16,
		WriteTimeout: 300 * time.Millisecond,
		MaxFrames:    50,
	}, src, nil)
	require.Eventually(t, func() bool { return src.subscribers() == 1 }, 30*time.Second, 5*time.Millisecond)

	stalled, _, err := dial(t, s, "") // never reads
	require.NoError(t, err)
	_ = stalled
	healthy, _, err := dial(t, s, "")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return s.Stats().Viewers == 2 }, 30*time.Second, 5*time.Millisecond)

	// The healthy viewer reads everything in the background.
	lastSeq := make(chan uint64, 1024)
	go func() {
		for {
			_, data, err := healthy.ReadMessage()
			if err != nil {
				close(lastSeq)
				return
			}
			var f struct{ Seq uint64 }
			if json.Unmarshal(data, &f) == nil {
				lastSeq <- f.Seq
			}
		}
	}()

	t.Cleanup(func() {
		_ = healthy.Close()
		for range lastSeq { // wait for the reader to finish
		}
	})

	// The producer: 64 KiB frames every 3ms until the stalled viewer is gone.
	big := strings.Repeat("x", 64<<10)
	seq := uint64(1)
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(3 * time.Millisecond)
	defer tick.Stop()
	for s.Stats().Dropped == 0 {
		require.True(t, time.Now().Before(deadline), "the stalled viewer was never dropped")
		<-tick.C
		seq++
		src.push(Frame{Seq: seq, Ops: []Op{{ID: seq, Detail: big}}})
	}
	got := s.Stats()
	t.Logf("stats at drop: %+v after %d frames", got, seq)
	assert.Equal(t, uint64(1), got.Dropped)
	assert.Equal(t, 1, got.Viewers, "the healthy viewer stays")
	assert.Zero(t, src.blockedCount(), "the producer was never held up")

	// The healthy viewer still gets new frames after the drop.
	dropSeq := seq
	seq++
	src.push(Frame{Seq: seq})
	for f := range lastSeq {
		if f > dropSeq {
			break
		}
	}
	assert.Equal(t, 1, s.Stats().Viewers)
	assert.LessOrEqual(t, s.Stats().Recorded, 50, "the replay log is capped")
}

func TestWebsocketOriginCheck(t *testing.T) {
	src := newFakeSource(Frame{Seq: 1})
	s := startServer(t, Config{AllowedOrigins: []string{"http://classroom.example:8000"}}, src, nil)
	tests := []struct {
		name   string
		origin string
		wantOK bool
	}{
		{"no origin (not a browser)", "", true},
		{"same host", "http://" + s.Addr(), true},
		{"allowed origin", "http://classroom.example:8000", true},
		{"foreign origin", "http://evil.example", false},
		{"same host name, other port", "http://127.0.0.1:1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, resp, err := dial(t, s, tt.origin)
			if tt.wantOK {
				require.NoError(t, err)
				assert.Equal(t, uint64(1), readFrame(t, c).Seq)
				return
			}
			require.ErrorIs(t, err, websocket.ErrBadHandshake)
			assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		})
	}
}

func postControl(t *testing.T, s *Server, body, token, origin string) (int, controlResult) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+s.Addr()+"/api/control", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var res controlResult
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&res))
	return resp.StatusCode, res
}

func TestControl(t *testing.T) {
	crash := `{"action":"crash","target":"etcd-1"}`
	tests := []struct {
		name       string
		token      string // configured
		body       string
		send       string // sent
		origin     string
		ctlErr     error
		noCtl      bool
		wantStatus int
		wantDone   bool
	}{
		{name: "no token configured", body: crash, wantStatus: 200, wantDone: true},
		{name: "right token", token: "s3cret", send: "s3cret", body: crash, wantStatus: 200, wantDone: true},
		{name: "missing token", token: "s3cret", body: crash, wantStatus: 403},
		{name: "wrong token", token: "s3cret", send: "guess", body: crash, wantStatus: 403},
		{name: "foreign origin", body: crash, origin: "http://evil.example", wantStatus: 403},
		{name: "malformed JSON", body: `{"action":`, wantStatus: 400},
		{name: "unknown field", body: `{"action":"crash","target":"etcd-1","force":true}`, wantStatus: 400},
		{name: "missing action", body: `{"target":"etcd-1"}`, wantStatus: 400},
		{name: "controller rejects the command", body: `{"action":"format-disk"}`, ctlErr: fmt.Errorf("%w: unknown action", ErrBadCommand), wantStatus: 400},
		{name: "controller fails", body: crash, ctlErr: errors.New("sim: no such node"), wantStatus: 422},
		{name: "read-only server", body: crash, noCtl: true, wantStatus: 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctl := &fakeController{err: tt.ctlErr}
			var c Controller = ctl
			if tt.noCtl {
				c = nil
			}
			s := startServer(t, Config{ControlToken: tt.token}, newFakeSource(Frame{Seq: 1}), c)
			status, res := postControl(t, s, tt.body, tt.send, tt.origin)
			assert.Equal(t, tt.wantStatus, status, res.Error)
			if tt.wantDone {
				assert.True(t, res.OK)
				assert.Equal(t, []Command{{Action: "crash", Target: "etcd-1"}}, ctl.got())
				return
			}
			assert.False(t, res.OK)
			assert.NotEmpty(t, res.Error)
			assert.Empty(t, ctl.got(), "a rejected request does nothing")
		})
	}
}

func TestInfoSaysWhetherTheTokenIsRequired(t *testing.T) {
	for _, token := range []string{"", "s3cret"} {
		t.Run(fmt.Sprintf("token=%q", token), func(t *testing.T) {
			s := startServer(t, Config{ControlToken: token}, newFakeSource(Frame{}), &fakeController{})
			var got info
			getJSON(t, s.URL()+"api/info", &got)
			assert.Equal(t, info{ControlRequired: token != "", Controllable: true, Live: true}, got)
		})
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	body, resp := get(t, url)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.NoError(t, json.Unmarshal(body, v), string(body))
}

func get(t *testing.T, url string) ([]byte, *http.Response) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return body, resp
}

func TestExportRecordsClicksAtSandboxTime(t *testing.T) {
	src := newFakeSource(Frame{Seq: 1, T: int64(4 * time.Second)})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var gotName string
	var gotCmds []TimedCommand
	export := func(name string, cmds []TimedCommand) []byte {
		gotName, gotCmds = name, cmds
		return []byte("exported\n")
	}
	s := startServer(t, Config{Now: func() time.Time { return now }, ExportName: "class-demo", Export: export}, src, &fakeController{})
	status, _ := postControl(t, s, `{"action":"crash","target":"etcd-2"}`, "", "")
	require.Equal(t, 200, status)
	status, _ = postControl(t, s, `{"action":"partition","groups":[["etcd-1"],["etcd-2","etcd-3"]]}`, "", "")
	require.Equal(t, 200, status)

	body, resp := get(t, s.URL()+"api/export")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "exported\n", string(body))
	assert.Equal(t, "class-demo", gotName)
	assert.Equal(t, []TimedCommand{
		{At: 4 * time.Second, Command: Command{Action: "crash", Target: "etcd-2"}},
		{At: 4 * time.Second, Command: Command{Action: "partition", Groups: [][]string{{"etcd-1"}, {"etcd-2", "etcd-3"}}}},
	}, gotCmds, "every command carried out, at the sandbox's time")

	status, res := postControl(t, s, `{"action":"export"}`, "", "")
	require.Equal(t, 200, status)
	assert.Equal(t, "exported\n", res.YAML)
}

func TestExportWithoutExporterIsNotFound(t *testing.T) {
	s := startServer(t, Config{}, newFakeSource(Frame{Seq: 1}), &fakeController{})
	_, resp := get(t, s.URL()+"api/export")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestFramesAreRecordedForReplay(t *testing.T) {
	src := newFakeSource(Frame{Seq: 3, Ops: opsUpTo(1, 3)})
	s := startServer(t, Config{SendInterval: 10 * time.Millisecond}, src, nil)
	require.Eventually(t, func() bool { return src.subscribers() == 1 }, 30*time.Second, 5*time.Millisecond)
	src.push(Frame{Seq: 4, Ops: opsUpTo(4, 4)})
	src.push(Frame{Seq: 5, Ops: opsUpTo(5, 5)})
	require.Eventually(t, func() bool { return s.Stats().Recorded == 3 }, 30*time.Second, 5*time.Millisecond)

	var got []Frame
	getJSON(t, s.URL()+"api/frames", &got)
	require.Len(t, got, 3)
	assert.Equal(t, []uint64{3, 4, 5}, []uint64{got[0].Seq, got[1].Seq, got[2].Seq})
	assert.Equal(t, opsUpTo(1, 3), got[0].Ops, "the log starts with the full snapshot")
}

func TestReplayFinishedRun(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	frames := []Frame{
		{Seq: 1, T: 100, Members: []Member{{Name: "etcd-1", Leader: true}}, Ops: opsUpTo(1, 1)},
		{Seq: 2, T: 200, Members: []Member{{Name: "etcd-1"}}, Ops: opsUpTo(2, 2), Faults: []Fault{{ID: 1, Fault: "crash"}}},
		{Seq: 3, T: 300, Members: []Member{{Name: "etcd-1", Leader: true}}, Ops: opsUpTo(3, 3)},
	}
	for _, f := range frames {
		require.NoError(t, AppendFrameJSONL(&buf, f))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "frames.jsonl"), buf.Bytes(), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "history.html"), []byte("<html>porcupine</html>"), 0o644))

	s := startServer(t, Config{RunDir: dir}, nil, nil)
	var got []Frame
	getJSON(t, s.URL()+"api/frames", &got)
	assert.Equal(t, frames, got)

	c, _, err := dial(t, s, "")
	require.NoError(t, err)
	snap := readFrame(t, c)
	assert.Equal(t, uint64(3), snap.Seq)
	assert.Equal(t, opsUpTo(1, 3), snap.Ops, "the snapshot of a finished run holds every op")
	assert.Equal(t, []Fault{{ID: 1, Fault: "crash"}}, snap.Faults)

	body, resp := get(t, s.URL()+"history.html")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "<html>porcupine</html>", string(body))

	status, _ := postControl(t, s, `{"action":"heal"}`, "", "")
	assert.Equal(t, http.StatusServiceUnavailable, status, "a finished run cannot be controlled")
}

func TestReadFramesJSONLNamesTheBadLine(t *testing.T) {
	_, err := ReadFramesJSONL(strings.NewReader("{\"seq\":1}\n\n{\"seq\":\n"))
	require.ErrorContains(t, err, "frames.jsonl:3")
}

func TestPageAndAssets(t *testing.T) {
	s := startServer(t, Config{
		Scenarios:   func() []ScenarioInfo { return []ScenarioInfo{{Name: "gc-pause-past-lease", Description: "GC pause"}} },
		HistoryHTML: func() ([]byte, error) { return []byte("<html>so far</html>"), nil },
	}, newFakeSource(Frame{}), nil)

	page, resp := get(t, s.URL())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/html")
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'self'")
	for _, id := range []string{`id="members"`, `id="narration"`, `id="verdict"`, `id="scrub"`, `id="timeline"`, `/assets/app.js`} {
		assert.Contains(t, string(page), id)
	}
	for _, asset := range []string{"app.js", "app.css"} {
		body, resp := get(t, s.URL()+"assets/"+asset)
		assert.Equal(t, http.StatusOK, resp.StatusCode, asset)
		assert.NotEmpty(t, body)
	}
	_, resp = get(t, s.URL()+"assets/nope.js")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	var sc []ScenarioInfo
	getJSON(t, s.URL()+"api/scenarios", &sc)
	assert.Equal(t, []ScenarioInfo{{Name: "gc-pause-past-lease", Description: "GC pause"}}, sc)

	body, resp := get(t, s.URL()+"history.html")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "<html>so far</html>", string(body))
}

func TestMaxViewers(t *testing.T) {
	s := startServer(t, Config{MaxViewers: 1}, newFakeSource(Frame{Seq: 1}), nil)
	_, _, err := dial(t, s, "")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return s.Stats().Viewers == 1 }, 30*time.Second, 5*time.Millisecond)
	_, resp, err := dial(t, s, "")
	require.Error(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}

func TestCloseIsIdempotentAndLeavesNothingBehind(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	src := newFakeSource(Frame{Seq: 1})
	s, err := New(Config{Listen: "127.0.0.1:0"}, src, nil)
	require.NoError(t, err)
	require.NoError(t, s.Start(t.Context()))
	c, _, err := websocket.DefaultDialer.DialContext(t.Context(), "ws://"+s.Addr()+"/ws", nil)
	require.NoError(t, err)
	defer c.Close()
	readFrame(t, c)
	require.Eventually(t, func() bool { return s.Stats().Viewers == 1 }, 30*time.Second, 5*time.Millisecond)

	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
	assert.Zero(t, src.subscribers(), "the subscription is cancelled")
	assert.Equal(t, 0, s.Stats().Viewers)
	_, _, err = c.ReadMessage()
	assert.Error(t, err, "the viewer is disconnected")
	http.DefaultClient.CloseIdleConnections()
}

// The frames kept for the scrub slider are bounded by their size: a long,
// busy session keeps its most recent frames in flat memory.
func TestRecordedFramesAreBoundedBySize(t *testing.T) {
	h := newHub(nil, time.Millisecond, 1, 1000, 10_000, time.Now)
	big := strings.Repeat("x", 900)
	for i := 1; i <= 200; i++ {
		require.NoError(t, h.record(Frame{Seq: uint64(i), Pace: big}))
	}
	frames := h.frames()
	size := 0
	for _, f := range frames {
		size += len(f)
	}
	assert.LessOrEqual(t, size, 10_000)
	assert.Greater(t, size, 5_000, "trimmed a tenth at a time, not emptied")
	var last Frame
	require.NoError(t, json.Unmarshal(frames[len(frames)-1], &last))
	assert.Equal(t, uint64(200), last.Seq, "the most recent frames are kept")
}
