package history

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cycle is a lock cycle by client on r1: acquire, read, write, release.
func cycle(client, token string, fencing, at, value int64) []Op {
	return []Op{
		acquireOK(client, r1, token, fencing, at, at+5, 1),
		read(client, r1, fencing, at+6, at+7, value),
		write(client, r1, fencing, at+8, at+9, value+1, OK),
		release(client, r1, token, at+10, at+11, OK, ""),
	}
}

// warmup is a few ordinary, linearizable lock cycles on r1 before 100 ms:
// the shrinker has to remove them.
func warmup() []Op {
	var ops []Op
	for i, c := range []string{"client-c", "client-d", "client-c"} {
		ops = append(ops, cycle(c, "warm-"+c+string(rune('0'+i)), int64(i+1), int64(i*20), int64(i))...)
	}
	return ops
}

// mustExplain checks ops with Explain and returns the one explanation.
func mustExplain(t *testing.T, ops []Op, anns []Annotation) Explanation {
	t.Helper()
	res := Check(ops, Options{Explain: true, Annotations: anns})
	require.Len(t, res.Explanations, 1, "details: %v", res.Details)
	return res.Explanations[0]
}

// recheck asserts that the explanation's operations (with their context)
// are themselves not linearizable in the explanation's model.
func recheck(t *testing.T, e Explanation) {
	t.Helper()
	got := Check(append(slices.Clone(e.Operations), e.Context...), Options{})
	v := got.Lock
	if e.Model == ModelResource {
		v = got.Resource
	}
	assert.Equal(t, Violated, v, "the shrunk set itself must be a violation")
}

func TestExplainKinds(t *testing.T) {
	tests := []struct {
		name    string
		ops     []Op
		model   string
		kind    Kind
		ops1    int      // len(Operations)
		phrases []string // in Text
	}{
		{
			name: "double grant",
			ops: append(warmup(),
				acquireOK("client-a", r1, "token-a", 10, 100, 110, 1),
				acquireOK("client-b", r1, "token-b", 11, 200, 210, 1),
				release("client-b", r1, "token-b", 300, 310, OK, ""),
				release("client-a", r1, "token-a", 400, 410, OK, "")),
			model: ModelLock, kind: KindDoubleGrant, ops1: 2,
			phrases: []string{"Double grant on order:1, caught by the lock model", "client-a got the lock with #10 at 0.110 s",
				"Client-b was granted the lock at 0.210 s while client-a still held it", "could not expire before 1.100 s"},
		},
		{
			name: "fencing token went back",
			ops: append(warmup(),
				acquireOK("client-a", r1, "token-a", 10, 100, 110, 1),
				release("client-a", r1, "token-a", 120, 130, OK, ""),
				acquireOK("client-b", r1, "token-b", 8, 200, 210, 1),
				release("client-b", r1, "token-b", 220, 230, OK, "")),
			model: ModelLock, kind: KindFencingBack, ops1: 3,
			phrases: []string{"Client-b's fencing token #8 is not above #10, granted to client-a at 0.110 s", "client-a got the lock with #10 at 0.110 s, released it at 0.120 s"},
		},
		{
			name: "release by a non-holder",
			ops: append(warmup(),
				acquireOK("client-a", r1, "token-a", 10, 100, 110, 1),
				acquireOK("client-b", r1, "token-b", 11, 1200, 1210, 1),
				release("client-a", r1, "token-a", 1300, 1310, OK, ""),
				release("client-b", r1, "token-b", 1400, 1410, OK, "")),
			model: ModelLock, kind: KindNonHolder, ops1: 3,
			phrases: []string{"Client-a's release at 1.3 s succeeded although its token did not hold the lock (client-b got it at 1.2 s)"},
		},
		{
			name: "renew by a non-holder",
			ops: append(warmup(),
				acquireOK("client-a", r1, "token-a", 10, 100, 110, 1),
				acquireOK("client-b", r1, "token-b", 11, 1200, 1210, 1),
				renew("client-a", r1, "token-a", 1300, 1310, OK, 1)),
			model: ModelLock, kind: KindNonHolder, ops1: 3,
			phrases: []string{"Client-a's renew at 1.3 s succeeded", "client-a renewed its lease at 1.3 s"},
		},
		{
			name:  "release of a token never granted",
			ops:   append(warmup(), release("client-x", r1, "forged", 100, 110, OK, "")),
			model: ModelLock, kind: KindNonHolder, ops1: 1,
			phrases: []string{"Client-x's release at 0.100 s succeeded although its token did not hold the lock"},
		},
		{
			name: "lock taken away early",
			ops: append(warmup(),
				acquireOK("client-a", r1, "token-a", 10, 100, 110, 1),
				release("client-a", r1, "token-a", 300, 310, Fail, "not_held")),
			model: ModelLock, kind: KindLostEarly, ops1: 2,
			phrases: []string{"Client-a was told at 0.310 s that its token did not hold the lock, although its lease could not expire before 1.100 s"},
		},
		{
			name:  "stale write accepted",
			ops:   gcPause(false),
			model: ModelResource, kind: KindStaleWrite, ops1: 4,
			phrases: []string{
				"client-a got the lock with #1 at 0.0 s, read 0 at 0.0 s",
				"read 0 at 0.0 s, its lease ended by 1.0 s",
				"client-b got the lock with #2 at 1.1 s, read 0 at 1.1 s, wrote 1 at 1.1 s",
				"client-a wrote 1 with #1 at 1.2 s",
				"Nothing rejected client-a's write of 1 with #1 although #2 had been used at 1.1 s: a stale write was accepted, and as client-b had also written after reading 0, one update was lost",
			},
		},
		{
			name: "lost update",
			ops: append(warmup(),
				read("client-a", r1, 0, 100, 110, 3),
				read("client-b", r1, 0, 120, 130, 3),
				write("client-a", r1, 0, 140, 150, 4, OK),
				write("client-b", r1, 0, 160, 170, 4, OK)),
			model: ModelResource, kind: KindLostUpdate, ops1: 4,
			phrases: []string{"Client-a and client-b both read 3 and wrote: one update was lost", "client-c wrote 3 at 0.049 s; client-a read 3 at 0.110 s"},
		},
		{
			name: "read of a value nobody wrote",
			ops: append(warmup(),
				read("client-a", r1, 0, 100, 110, 99)),
			model: ModelResource, kind: KindPhantomRead, ops1: 2,
			phrases: []string{"client-c got the lock with #3 at 0.045 s, wrote 3 at 0.049 s; client-a read 99 at 0.110 s", "Client-a read 99 at 0.110 s, which no operation of the history wrote"},
		},
		{
			name: "other: read of an overwritten value",
			ops: append(warmup(),
				write("client-a", r1, 0, 100, 110, 1, OK),
				write("client-b", r1, 0, 120, 130, 2, OK),
				read("client-c", r1, 0, 140, 150, 1)),
			model: ModelResource, kind: KindOther, ops1: 2,
			phrases: []string{"Violation on order:1, caught by the resource model", "No order of these 2 operations (and of the 2 writes of the values they read, each at some time during its own request) is legal in the resource model"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustExplain(t, tt.ops, nil)
			assert.Equal(t, tt.model, e.Model)
			assert.Equal(t, r1, e.Resource)
			assert.Equal(t, tt.kind, e.Kind, e.Text)
			assert.Len(t, e.Operations, tt.ops1, "%s\n%+v", e.Text, e.Operations)
			for _, p := range tt.phrases {
				assert.Contains(t, e.Text, p)
			}
			assert.False(t, e.Truncated)
			assert.Positive(t, e.Checks)
			assert.Empty(t, e.Faults)
			recheck(t, e)
			require.Len(t, e.Index, len(e.Operations))
			for k, op := range e.Operations {
				assert.Equal(t, tt.ops[e.Index[k]], op, "operations are the history's records, unchanged, at Index")
			}
		})
	}
}

// An operation whose outcome is unknown stays unknown in the explanation:
// no return, outcome unknown, told as such.
func TestExplainKeepsUnknownOutcomes(t *testing.T) {
	ops := append(warmup(), // ends with client-c writing 3 at 49 ms
		write("client-a", r1, 0, 100, 0, 7, Unknown),
		read("client-b", r1, 0, 120, 130, 7),
		read("client-e", r1, 0, 140, 150, 3))
	e := mustExplain(t, ops, nil)
	recheck(t, e)
	all := append(slices.Clone(e.Operations), e.Context...)
	i := slices.IndexFunc(all, func(op Op) bool { return op.Client == "client-a" })
	require.GreaterOrEqual(t, i, 0, "a's write of 7 is what b read: %s", e.Text)
	assert.Equal(t, Outcome(Unknown), all[i].Outcome)
	assert.Nil(t, all[i].Return)
	assert.Contains(t, e.Text, "client-a wrote 7 at 0.100 s (no answer)")
}

func TestExplainBlamesFaults(t *testing.T) {
	anns := []Annotation{
		{ID: 1, Fault: "pause", Label: "pause client-a", Target: "client-a", Start: ms(35), End: ms(1190), Source: "step 1 (gc.yaml:15)"},
		{ID: 2, Fault: "pause", Label: "pause client-z", Target: "client-z", Start: ms(35), End: ms(1190), Source: "step 2 (gc.yaml:20)"},
		{ID: 3, Label: "partition [etcd-2] | [etcd-1 etcd-3 lockserver-1]", Target: "[etcd-2] | [etcd-1 etcd-3 lockserver-1]", Start: ms(500), End: ms(700), Source: "nemesis"},
		{ID: 4, Fault: "crash", Label: "crash lockserver-2", Target: "lockserver-2", Start: ms(5000), End: ms(6000)},
		{ID: 5, Fault: "heal", Label: "heal", Start: ms(900), End: ms(901), Source: "final"},
		{Fault: "clock-skew", Label: "clock-skew client-a", Target: "client-a", Start: ms(1205), End: 0, Source: "step 3 (gc.yaml:25)"},
		{ID: 7, Fault: "pause", Label: "pause client-a", Target: "client-a", Start: ms(1300), End: ms(1400)},
	}
	e := mustExplain(t, gcPause(false), anns)
	// 1: the pause of the stale writer; 3: a partition of servers during the
	// operations; 6: the clock skew (no ID: its position), open-ended. Not
	// 2 (a client not involved), 4 (after the operations), 5 (a heal), 7
	// (after client-a's last operation).
	assert.Equal(t, []int{1, 3, 6}, e.Faults)
	for _, p := range []string{
		"client-a got the lock with #1 at 0.0 s, read 0 at 0.0 s, was paused 0.0–1.2 s by step 1 (gc.yaml:15)",
		"[etcd-2] | [etcd-1 etcd-3 lockserver-1] was partitioned 0.5–0.7 s (nemesis)",
		"client-a ran on a skewed clock 1.2–1.2 s by step 3 (gc.yaml:25)",
		"does not record which lock server or etcd member served each request",
	} {
		assert.Contains(t, e.Text, p)
	}
	assert.NotContains(t, e.Text, "client-z")
}

// A broken lock server planted for the whole run (no end) is a fault on a
// server: it explains a double grant.
func TestExplainBlamesAServerFaultWithoutEnd(t *testing.T) {
	anns := []Annotation{{ID: 9, Fault: "unsafe", Label: "unsafe lock servers", Target: "lockserver-1 lockserver-2",
		Start: 0, Source: "unsafe.yaml:14"}}
	e := mustExplain(t, doubleGrant(), anns)
	assert.Equal(t, KindDoubleGrant, e.Kind)
	assert.Equal(t, []int{9}, e.Faults)
	assert.Contains(t, e.Text, "lockserver-1 lockserver-2 ran a deliberately broken acquire 0.000–0.310 s (unsafe.yaml:14)")
}

func TestFaultNames(t *testing.T) {
	for _, tt := range []struct {
		target string
		want   []string
	}{
		{"client-1", []string{"client-1"}},
		{"[etcd-2] | [etcd-1 etcd-3 lockserver-1]", []string{"etcd-2", "etcd-1", "etcd-3", "lockserver-1"}},
		{"lockserver-1<->etcd-2", []string{"lockserver-1", "etcd-2"}},
		{"client-3->lb", []string{"client-3", "lb"}},
		{"", nil},
	} {
		assert.Equal(t, tt.want, names(tt.target), tt.target)
	}
}

func TestExplainLeases(t *testing.T) {
	ops := gcPause(false)
	ops = append(ops, renew("client-b", r1, "token-b", 1112, 1115, OK, 2))
	e := mustExplain(t, ops, nil)
	require.Len(t, e.Leases, 2)
	a, b := e.Leases[0], e.Leases[1]
	assert.Equal(t, Lease{Client: "client-a", Resource: r1, FencingToken: 1, Acquired: 0, Granted: ms(10), TTL: time.Second,
		ExpiresAfter: ms(1000), ExpiredBy: ms(1010)}, a)
	assert.Equal(t, "client-b", b.Client)
	assert.Equal(t, ms(1112+2000), b.ExpiresAfter, "pushed on by the renew's call")
	assert.Equal(t, ms(1115+2000), b.ExpiredBy, "pushed on by the renew's return")
	require.NotNil(t, b.Released)
	assert.Equal(t, ms(1160), *b.Released)
}

func TestExplainLinearizableHasNone(t *testing.T) {
	res := Check(gcPause(true), Options{Explain: true})
	assert.True(t, res.OK())
	assert.Empty(t, res.Explanations)
}

func TestExplainJSONAndVisualization(t *testing.T) {
	dir := t.TempDir()
	anns := []Annotation{{ID: 1, Fault: "pause", Label: "pause client-a", Target: "client-a", Start: ms(35), End: ms(1190), Source: "step 1 (gc.yaml:15)"}}
	res := Check(gcPause(false), Options{Explain: true, Annotations: anns, VisualizePath: filepath.Join(dir, "history.html")})
	require.Len(t, res.Explanations, 1)
	e := res.Explanations[0]
	assert.Equal(t, filepath.Join(dir, "history.explain-1.html"), e.VisualizationPath)
	html, err := os.ReadFile(e.VisualizationPath)
	require.NoError(t, err)
	for _, want := range []string{"client-a read 0 write 1", "client-b read 0 write 1", "pause client-a"} {
		assert.Contains(t, string(html), want)
	}
	assert.NotContains(t, string(html), "acquire", "only the shrunk operations")

	b, err := json.Marshal(res)
	require.NoError(t, err)
	var back struct {
		Explanations []map[string]json.RawMessage `json:"explanations"`
	}
	require.NoError(t, json.Unmarshal(b, &back))
	require.Len(t, back.Explanations, 1)
	for _, k := range []string{"resource", "model", "kind", "operations", "index", "faults", "text", "leases"} {
		assert.Contains(t, back.Explanations[0], k)
	}
	assert.Equal(t, `"stale-write-accepted"`, string(back.Explanations[0]["kind"]))
	assert.Equal(t, `[1]`, string(back.Explanations[0]["faults"]))
	var ops []Op
	require.NoError(t, json.Unmarshal(back.Explanations[0]["operations"], &ops))
	assert.Equal(t, e.Operations, ops, "operations are history records, as in history.jsonl")

	// An explanation read back from JSON can be drawn again.
	var again Explanation
	require.NoError(t, json.Unmarshal(mustJSON(t, e), &again))
	path := filepath.Join(dir, "again.html")
	require.NoError(t, again.Visualize(path, anns))
	html2, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Contains(t, string(html2), "pause client-a")
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func TestExplainPathNextToTheFullView(t *testing.T) {
	assert.Equal(t, "out/history.explain-1.html", explainPath("out/history.html", 0))
	assert.Equal(t, "x.explain-3.html", explainPath("x", 2))
	assert.True(t, strings.HasSuffix(explainPath("/a/b.html", 1), "/a/b.explain-2.html"))
}
