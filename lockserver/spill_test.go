package lockserver

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// With a spill, Retain bounds only the memory: Record reads the whole record
// back, including what happened before SpillTo, and a lost watch's new
// starting point.
func TestObserverSpillKeepsTheWholeRecord(t *testing.T) {
	o, c, clock := clockedObserver(t)
	ctx := t.Context()
	o.Retain(10 * time.Second)

	old, err := c.Acquire(ctx, "old", 30*time.Second, 0)
	require.NoError(t, err)
	require.NoError(t, c.Release(ctx, "old", old.LockToken))
	require.NoError(t, o.Sync(ctx))
	f, err := os.Create(filepath.Join(t.TempDir(), "spill.jsonl"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	o.SpillTo(f) // after the first grant: what the Observer holds is written first

	clock.Store(int64(time.Minute))
	g, err := c.Acquire(ctx, "new", 30*time.Second, 0)
	require.NoError(t, err)
	require.NoError(t, c.Release(ctx, "new", g.LockToken))
	require.NoError(t, o.Sync(ctx))
	require.Len(t, o.Grants(), 1, "memory forgot the old grant")

	rec, err := o.Record()
	require.NoError(t, err)
	require.Len(t, rec.Grants, 2, "the spill did not")
	assert.Equal(t, RecordedGrant{Owner: c.ClientID, Resource: "old", Revision: old.FencingToken, TTL: 30 * time.Second}, rec.Grants[0])
	assert.Equal(t, RecordedGrant{Owner: c.ClientID, Resource: "new", Revision: g.FencingToken, TTL: 30 * time.Second, Seen: time.Minute}, rec.Grants[1])
	assert.Equal(t, map[int64]time.Duration{old.FencingToken: 0, g.FencingToken: time.Minute}, rec.Ended)
	assert.Equal(t, map[string]time.Duration{HashToken(old.LockToken): 0, HashToken(g.LockToken): time.Minute}, rec.Released)
	assert.Zero(t, rec.From, "complete from the start")

	clock.Store(int64(2 * time.Minute))
	_, err = o.resync(ctx)
	require.NoError(t, err)
	rec, err = o.Record()
	require.NoError(t, err)
	assert.Equal(t, 2*time.Minute, rec.From, "a lost watch is a gap in the spilled record too")
	assert.Len(t, rec.Grants, 2, "the held lock's grant is not spilled twice")
}

// Without a spill, Record is what memory keeps: with Retain the old grant is
// gone and the record says from when it is complete.
func TestObserverRecordWithoutSpillIsMemory(t *testing.T) {
	o, c, clock := clockedObserver(t)
	ctx := t.Context()
	o.Retain(10 * time.Second)
	_, err := c.Acquire(ctx, "old", 30*time.Second, 0)
	require.NoError(t, err)
	require.NoError(t, o.Sync(ctx))
	clock.Store(int64(time.Minute))
	_, err = c.Acquire(ctx, "new", 30*time.Second, 0)
	require.NoError(t, err)
	require.NoError(t, o.Sync(ctx))
	rec, err := o.Record()
	require.NoError(t, err)
	require.Len(t, rec.Grants, 1)
	assert.Equal(t, "new", rec.Grants[0].Resource)
	assert.Equal(t, 50*time.Second, rec.From)
}

// ReadSpill reads what SpillTo writes and refuses anything else, naming the
// line.
func TestReadSpill(t *testing.T) {
	good := `{"grant":{"owner":"client-1","resource":"r","revision":7,"ttl":2000000000,"seen":150}}
{"ended":7,"at":250}
{"released":"abc","at":260}
{"from":true,"at":300}
`
	rec, err := ReadSpill(strings.NewReader(good))
	require.NoError(t, err)
	assert.Equal(t, ObservedRecord{
		From:     300,
		Grants:   []RecordedGrant{{Owner: "client-1", Resource: "r", Revision: 7, TTL: 2 * time.Second, Seen: 150}},
		Ended:    map[int64]time.Duration{7: 250},
		Released: map[string]time.Duration{"abc": 260},
	}, rec)

	for _, tc := range []struct{ name, in, want string }{
		{"not JSON", "{\"ended\":1,\"at\":2}\nnot json\n", "line 2"},
		{"no kind", "{}\n", "line 1: want one of grant, ended, released, from; got 0"},
		{"two kinds", `{"ended":1,"released":"x","at":2}` + "\n", "line 1: want one of grant, ended, released, from; got 2"},
		{"unknown field", `{"ended":1,"at":2,"colour":"red"}` + "\n", `line 1: json: unknown field "colour"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := ReadSpill(strings.NewReader(tc.in))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Zero(t, rec.Grants, "nothing is returned")
		})
	}
}

// failingSpill refuses every write.
type failingSpill struct{}

func (failingSpill) Write([]byte) (int, error)         { return 0, errors.New("disk full") }
func (failingSpill) ReadAt([]byte, int64) (int, error) { return 0, errors.New("unreadable") }

// A spill that cannot be written makes Record fail: a record with a hole in
// it would settle outcomes wrongly.
func TestObserverSpillWriteErrorIsReported(t *testing.T) {
	te := startEtcd(t)
	_, c := startServer(t, te, nil)
	ctx := t.Context()
	o, err := NewObserver(ctx, []string{te.url}, nil, func() time.Duration { return 0 })
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, o.Close()) })
	o.SpillTo(failingSpill{})
	_, err = c.Acquire(ctx, "r", 30*time.Second, 0)
	require.NoError(t, err)
	require.NoError(t, o.Sync(ctx))
	_, err = o.Record()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "disk full")
}
