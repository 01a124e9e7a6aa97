package history

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the testdata fixtures")

// gcPause is the classic story: client a stalls after reading, its lease
// expires, b takes the lock and updates the resource; a's late write is
// rejected by fencing (fenced) or accepted (unfenced).
func gcPause(fenced bool) []Op {
	aWrite := writeRejected("client-a", r1, 1, 1200, 1210, 1)
	if !fenced {
		aWrite = write("client-a", r1, 1, 1200, 1210, 1, OK)
	}
	return []Op{
		acquireOK("client-a", r1, "token-a", 1, 0, 10, 1),
		read("client-a", r1, 1, 20, 30, 0),
		acquireFail("client-b", r1, 40, 50),
		acquireOK("client-b", r1, "token-b", 2, 1100, 1110, 1),
		read("client-b", r1, 2, 1120, 1130, 0),
		write("client-b", r1, 2, 1140, 1150, 1, OK),
		release("client-b", r1, "token-b", 1160, 1170, OK, ""),
		aWrite,
		release("client-a", r1, "token-a", 1220, 1230, Fail, "not_held"),
	}
}

// doubleGrant: b is granted the lock while a's lease cannot have expired.
func doubleGrant() []Op {
	return []Op{
		acquireOK("client-a", r1, "token-a", 1, 0, 10, 1),
		acquireOK("client-b", r1, "token-b", 2, 100, 110, 1),
		release("client-b", r1, "token-b", 200, 210, OK, ""),
		release("client-a", r1, "token-a", 300, 310, OK, ""),
	}
}

// hardHistory has n concurrent blind writes with unknown outcomes followed by
// reads of each value in turn: linearizable, but porcupine's search is
// exponential in n.
func hardHistory(n int) []Op {
	var ops []Op
	for i := 1; i <= n; i++ {
		ops = append(ops, write(fmt.Sprint("writer-", i), r1, 0, int64(i), 0, int64(i), Unknown))
	}
	for i := 1; i <= n; i++ {
		ops = append(ops, read("reader", r1, 0, int64(1000+10*i), int64(1005+10*i), int64(i)))
	}
	return ops
}

func TestCheckGCPause(t *testing.T) {
	fenced := Check(gcPause(true), Options{})
	assert.Equal(t, Linearizable, fenced.Lock, fenced.Details)
	assert.Equal(t, Linearizable, fenced.Resource, fenced.Details)
	assert.True(t, fenced.OK())
	want := Counts{
		Acquire: OutcomeCounts{OK: 2, Fail: 1}, Release: OutcomeCounts{OK: 1, Fail: 1},
		Read: OutcomeCounts{OK: 2}, Write: OutcomeCounts{OK: 1, Fail: 1}, Stale: 1,
	}
	assert.Equal(t, want, fenced.Counts)
	// a believed it held from 10 ms to its release call at 1220 ms; b from
	// 1110 ms to 1160 ms.
	assert.Equal(t, OverlapStats{Count: 1, Total: 50 * time.Millisecond, Max: 50 * time.Millisecond}, fenced.Overlap)
	assert.Equal(t, 4, fenced.LockOps, "failed acquire dropped; a's 'not held' claim kept")
	assert.Equal(t, 2, fenced.ResourceOps, "a's read with its rejected write is one read; b's read and write one RMW")

	unfenced := Check(gcPause(false), Options{})
	assert.Equal(t, Linearizable, unfenced.Lock)
	assert.Equal(t, Violated, unfenced.Resource)
	assert.False(t, unfenced.OK())
	require.Len(t, unfenced.Details, 1)
	assert.Contains(t, unfenced.Details[0], "resource "+r1)
}

func TestCheckDoubleGrantDetails(t *testing.T) {
	ops := append(doubleGrant(), acquireOK("client-c", "order:2", "token-c", 9, 0, 10, 1))
	got := Check(ops, Options{})
	assert.Equal(t, Violated, got.Lock)
	assert.Equal(t, Skipped, got.Resource)
	require.Len(t, got.Details, 1, "only the violated resource is named")
	assert.Contains(t, got.Details[0], "lock "+r1+": violated")
}

func TestCheckToleratesMissingReturns(t *testing.T) {
	ops := doubleGrant()
	for i := range ops {
		ops[i].Return = nil // invalid for OK/Fail: treated as "returned at the end"
	}
	got := Check(ops, Options{})
	assert.Equal(t, Linearizable, got.Lock, "without returns every op may be linearized anywhere")
}

func TestCheckEmpty(t *testing.T) {
	got := Check(nil, Options{})
	assert.Equal(t, Skipped, got.Lock)
	assert.Equal(t, Skipped, got.Resource)
	assert.True(t, got.OK())
}

func TestCheckTimeoutIsUnknownNotLinearizable(t *testing.T) {
	for _, visualize := range []bool{false, true} {
		t.Run(fmt.Sprintf("visualize=%v", visualize), func(t *testing.T) {
			opts := Options{Timeout: 100 * time.Millisecond}
			if visualize {
				opts.VisualizePath = filepath.Join(t.TempDir(), "history.html")
			}
			got := Check(hardHistory(24), opts)
			assert.Equal(t, Verdict(Unknown), got.Resource)
			assert.False(t, got.OK())
			assert.Less(t, got.Elapsed, 5*time.Second, "the timeout bounds the search")
			require.NotEmpty(t, got.Details)
			assert.Contains(t, got.Details[0], "timed out")
		})
	}
	// The same kind of history, small enough, is decided.
	got := Check(hardHistory(6), Options{Timeout: 10 * time.Second})
	assert.Equal(t, Linearizable, got.Resource)
}

func TestCheckVisualization(t *testing.T) {
	for _, tt := range []struct {
		name string
		ops  []Op
		lock Verdict
	}{
		{"linearizable", gcPause(true), Linearizable},
		{"violated", doubleGrant(), Violated},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "history.html")
			got := Check(tt.ops, Options{VisualizePath: path, Annotations: []Annotation{
				{Label: "pause client-a", Target: "client-a", Start: ms(30), End: ms(1190), Description: "GC pause"},
				{Label: "partition etcd-1", Target: "etcd-1", Start: ms(50), End: ms(60)},
			}})
			assert.Equal(t, tt.lock, got.Lock)
			assert.Equal(t, path, got.VisualizationPath)
			html, err := os.ReadFile(path)
			require.NoError(t, err)
			for _, want := range []string{"pause client-a", "fault: etcd-1", "GC pause", "client-a acquire"} {
				assert.Contains(t, string(html), want)
			}
		})
	}
}

func TestCheckVisualizationErrorIsReported(t *testing.T) {
	got := Check(doubleGrant(), Options{VisualizePath: filepath.Join(t.TempDir(), "missing", "x.html")})
	assert.Equal(t, Violated, got.Lock, "the verdict does not depend on the file")
	assert.Empty(t, got.VisualizationPath)
	require.NotEmpty(t, got.Details)
	assert.Contains(t, strings.Join(got.Details, "\n"), "visualization not written")
}

func TestResultJSON(t *testing.T) {
	b, err := json.Marshal(Check(gcPause(true), Options{}))
	require.NoError(t, err)
	for _, want := range []string{`"lock":"linearizable"`, `"resource":"linearizable"`, `"overlap":{"count":1`, `"stale":1`} {
		assert.Contains(t, string(b), want)
	}
}

func TestFixtures(t *testing.T) {
	tests := []struct {
		file           string
		ops            []Op
		lock, resource Verdict
	}{
		{"valid.jsonl", gcPause(true), Linearizable, Linearizable},
		{"overlap.jsonl", doubleGrant(), Violated, Skipped},
		{"unfenced.jsonl", gcPause(false), Linearizable, Violated},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", tt.file)
			if *update {
				f, err := os.Create(path)
				require.NoError(t, err)
				require.NoError(t, WriteJSONL(f, tt.ops))
				require.NoError(t, f.Close())
			}
			f, err := os.Open(path)
			require.NoError(t, err)
			defer f.Close()
			ops, err := ReadJSONL(f)
			require.NoError(t, err)
			assert.Equal(t, tt.ops, ops, "fixture out of date: go test -run TestFixtures -update")
			got := Check(ops, Options{})
			assert.Equal(t, tt.lock, got.Lock)
			assert.Equal(t, tt.resource, got.Resource)
		})
	}
}
