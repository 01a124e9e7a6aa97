package lockserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"maps"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Observer watches the lock records and release receipts in etcd
// ([InfoPrefix, WatchEnd)) with a client of its own. It knows who holds each
// lock in etcd right now, and keeps every grant and every release etcd
// recorded, so that acquires and releases whose outcome a client could not
// learn can be settled afterwards from what the cluster persisted, the way
// etcd's robustness tests patch their histories. It keeps that record in
// memory, or streams it to a Spill (SpillTo) for a run too long for memory;
// Record returns it.
//
// Times are what the now function given to NewObserver returned when the
// Observer saw an event (after etcd committed it). An Observer is safe for
// concurrent use.
type Observer struct {
	cli    *clientv3.Client
	cancel context.CancelFunc
	done   chan struct{}
	now    func() time.Duration
	once   sync.Once

	mu       sync.Mutex
	held     map[string]HeldLock      // resource -> current holder in etcd
	grants   []RecordedGrant          // every grant etcd recorded, in revision order
	released map[string]time.Duration // token hash -> when its release receipt was seen
	ended    map[int64]time.Duration  // fencing token -> when its deletion (release, revoke or expiry) was seen
	rev      int64                    // last revision seen
	seen     chan struct{}            // closed and replaced when rev moves
	retain   time.Duration            // forget records older than this (0 = keep all)
	from     time.Duration            // the record is complete from this time on
	pruned   time.Duration            // when records were last forgotten

	spill    Spill         // where the record is streamed (SpillTo), or nil
	spillW   *bufio.Writer // buffers writes to spill
	spilled  int64         // bytes written to spill
	spillErr error         // the first error writing to spill
}

// HeldLock is who holds a lock in etcd, as an Observer last saw it.
type HeldLock struct {
	Owner        string        // the acquire's clientId
	FencingToken int64         // the grant's revision; a renew keeps it
	Lease        int64         // the etcd lease the lock is on now (a renew moves it)
	Since        time.Duration // when the grant, or the last renew, was seen
	TTL          time.Duration // the granted TTL of that lease
}

// RecordedGrant is one grant as etcd recorded it.
type RecordedGrant struct {
	Owner    string `json:"owner"`
	Resource string `json:"resource"`
	Revision int64  `json:"revision"` // the fencing token
	// TTL is how long the grant lasts at least from when it was written:
	// the TTL it was granted with, or less for a lock a release handed over
	// (Record.Lasts).
	TTL  time.Duration `json:"ttl"`
	Seen time.Duration `json:"seen"` // when the Observer saw it (after it was committed)
}

// observerDialTimeout bounds the Observer's connection and its initial read.
const observerDialTimeout = 5 * time.Second

// NewObserver reads the current lock records and receipts from etcd at
// endpoints and then watches them until Close. tlsCfg is its client's TLS
// config, as Config.TLS (nil: none). now is the clock of the times it
// reports (e.g. the time since a sandbox started). ctx bounds only the
// initial read.
func NewObserver(ctx context.Context, endpoints []string, tlsCfg *tls.Config, now func() time.Duration) (*Observer, error) {
	if err := checkTLSEndpoints(endpoints, tlsCfg); err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
		TLS:         tlsCfg,
	})
	if err != nil {
		return nil, err
	}
	o := &Observer{
		cli:      cli,
		done:     make(chan struct{}),
		now:      now,
		held:     map[string]HeldLock{},
		released: map[string]time.Duration{},
		ended:    map[int64]time.Duration{},
		seen:     make(chan struct{}),
	}
	gctx, gcancel := context.WithTimeout(ctx, observerDialTimeout)
	resp, err := cli.Get(gctx, InfoPrefix, clientv3.WithRange(WatchEnd))
	gcancel()
	if err != nil {
		_ = cli.Close()
		return nil, err
	}
	o.mu.Lock()
	for _, kv := range resp.Kvs {
		o.putLocked(kv)
	}
	o.rev = resp.Header.Revision
	o.mu.Unlock()
	wctx, cancel := context.WithCancel(context.Background())
	o.cancel = cancel
	go o.loop(clientv3.WithRequireLeader(wctx), resp.Header.Revision+1)
	return o, nil
}

// Retain makes the Observer forget grants, deletions and receipts older than
// d (0 keeps all): a sandbox that runs for hours keeps a flat record of its
// recent past. From then tells from when on the record in memory is
// complete. With a spill (SpillTo) the whole record is still on it.
func (o *Observer) Retain(d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.retain = d
}

// From is the time from which on the record is complete: every grant,
// deletion and receipt etcd committed since then is in it. It is 0 unless
// records were forgotten (Retain) or missed (the watch fell behind a
// compaction of etcd's history).
func (o *Observer) From() time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.from
}

// loop applies watch events from revision from on, re-watching after errors.
// A watch whose revision etcd compacted away starts again from the current
// state: what happened in between is missed, and From says so.
func (o *Observer) loop(ctx context.Context, from int64) {
	defer close(o.done)
	for ctx.Err() == nil {
		wch := o.cli.Watch(ctx, InfoPrefix, clientv3.WithRange(WatchEnd), clientv3.WithRev(from),
			clientv3.WithPrevKV(), clientv3.WithProgressNotify())
		for resp := range wch {
			if resp.CompactRevision > 0 {
				if next, err := o.resync(ctx); err == nil {
					from = next
				}
				break
			}
			if resp.Err() != nil {
				break
			}
			from = o.apply(resp)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond): // back off before re-watching
		}
	}
}

// resync reads the current lock records after the watch lost its place, and
// returns the revision to watch from.
func (o *Observer) resync(ctx context.Context) (int64, error) {
	gctx, cancel := context.WithTimeout(ctx, observerDialTimeout)
	resp, err := o.cli.Get(gctx, InfoPrefix, clientv3.WithRange(WatchEnd))
	cancel()
	if err != nil {
		return 0, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	present := map[string]bool{}
	for _, kv := range resp.Kvs {
		o.putLocked(kv) // a grant already known is not recorded twice
		present[strings.TrimPrefix(string(kv.Key), InfoPrefix)] = true
	}
	maps.DeleteFunc(o.held, func(res string, _ HeldLock) bool { return !present[res] })
	o.from = o.now()
	o.spillLocked(spillLine{From: true, At: o.from})
	o.rev = max(o.rev, resp.Header.Revision)
	return resp.Header.Revision + 1, nil
}

// apply records one watch answer and returns the next revision to watch from.
func (o *Observer) apply(resp clientv3.WatchResponse) int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	defer o.pruneLocked()
	for _, ev := range resp.Events {
		switch ev.Type {
		case clientv3.EventTypePut:
			o.putLocked(ev.Kv)
		case clientv3.EventTypeDelete:
			if res, ok := strings.CutPrefix(string(ev.Kv.Key), InfoPrefix); ok {
				delete(o.held, res)
				if ev.PrevKv != nil {
					if rec, err := DecodeRecord(ev.PrevKv.Value); err == nil {
						o.endLocked(FencingOf(ev.PrevKv, rec))
					}
				}
			}
		}
	}
	if resp.Header.Revision > o.rev {
		o.rev = resp.Header.Revision
		close(o.seen)
		o.seen = make(chan struct{})
	}
	return o.rev + 1
}

// pruneLocked forgets records older than retain, a tenth of retain at a
// time.
func (o *Observer) pruneLocked() {
	now := o.now()
	if o.retain <= 0 || now-o.pruned < o.retain/10 {
		return
	}
	o.pruned = now
	horizon := now - o.retain
	if horizon <= o.from {
		return
	}
	o.from = horizon
	n := 0
	for n < len(o.grants) && o.grants[n].Seen < horizon {
		n++
	}
	o.grants = append([]RecordedGrant(nil), o.grants[n:]...)
	maps.DeleteFunc(o.ended, func(_ int64, at time.Duration) bool { return at < horizon })
	maps.DeleteFunc(o.released, func(_ string, at time.Duration) bool { return at < horizon })
}

// putLocked records a put of a receipt, a grant (a record with a new
// fencing token: created by a direct grant, or rewritten by a hand-over,
// which also ends the previous grant) or a renew (the record of a known
// grant is rewritten on another lease).
func (o *Observer) putLocked(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	if strings.HasPrefix(key, ReleasedPrefix) {
		at := o.now()
		o.released[string(kv.Value)] = at
		o.spillLocked(spillLine{Released: string(kv.Value), At: at})
		return
	}
	rec, err := DecodeRecord(kv.Value)
	if err != nil {
		return
	}
	res := strings.TrimPrefix(key, InfoPrefix)
	fencing := FencingOf(kv, rec)
	h, known := o.held[res]
	if known && h.FencingToken == fencing && h.Lease == kv.Lease {
		return // seen already (the initial read and the watch overlap)
	}
	o.held[res] = HeldLock{Owner: rec.OwnerID, FencingToken: fencing, Lease: kv.Lease, Since: o.now(), TTL: rec.TTL}
	if known && h.FencingToken == fencing {
		return // a renew moved the lock to another lease
	}
	if known && h.FencingToken < fencing {
		o.endLocked(h.FencingToken) // handed over: the previous grant ended here
	}
	g := RecordedGrant{Owner: rec.OwnerID, Resource: res, Revision: fencing, TTL: rec.Lasts, Seen: o.now()}
	o.grants = append(o.grants, g)
	o.spillLocked(spillLine{Grant: &g})
}

// endLocked records that the grant with this fencing token ended now.
func (o *Observer) endLocked(rev int64) {
	at := o.now()
	o.ended[rev] = at
	o.spillLocked(spillLine{Ended: rev, At: at})
}

// Held returns who holds each lock in etcd, by resource.
func (o *Observer) Held() map[string]HeldLock {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[string]HeldLock, len(o.held))
	for k, v := range o.held {
		out[k] = v
	}
	return out
}

// Released reports whether etcd recorded a successful release of the lock
// token with this hash (HashToken), and when the Observer saw it.
func (o *Observer) Released(hash string) (time.Duration, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	at, ok := o.released[hash]
	return at, ok
}

// Ended reports when the Observer saw the grant with this fencing token
// deleted (released, revoked or expired).
func (o *Observer) Ended(rev int64) (time.Duration, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	at, ok := o.ended[rev]
	return at, ok
}

// Grants returns every grant seen so far, in revision order.
func (o *Observer) Grants() []RecordedGrant {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]RecordedGrant(nil), o.grants...)
}

// Sync waits until the Observer has seen every revision etcd has committed
// now, so that Grants, Ended and Released answer for every write that took
// effect before the call.
func (o *Observer) Sync(ctx context.Context) error {
	gctx, cancel := context.WithTimeout(ctx, observerDialTimeout)
	resp, err := o.cli.Get(gctx, "/locksim-sync")
	cancel()
	if err != nil {
		return err
	}
	target := resp.Header.Revision
	// A progress request makes the watch report the current revision even
	// when no key in its range changed.
	for {
		o.mu.Lock()
		rev, seen := o.rev, o.seen
		o.mu.Unlock()
		if rev >= target {
			return nil
		}
		_ = o.cli.RequestProgress(ctx)
		select {
		case <-seen:
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close stops the watch and closes the client. It is idempotent and returns
// once the Observer's goroutine is gone.
func (o *Observer) Close() error {
	var err error
	o.once.Do(func() {
		o.cancel()
		<-o.done
		if cerr := o.cli.Close(); cerr != nil && !errors.Is(cerr, context.Canceled) {
			err = cerr
		}
	})
	return err
}
