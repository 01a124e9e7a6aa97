package sim

import (
	"context"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/locksim/locksim/lockserver"
)

// Observer watches the lock records and release receipts in etcd with its
// own client (not through the fault network): it knows who holds each lock
// in etcd right now, and keeps every grant and every release etcd recorded,
// so that acquires and releases whose outcome a client could not learn can
// be resolved afterwards, the way etcd's robustness tests patch histories
// from what the cluster persisted.
type Observer struct {
	cli    *clientv3.Client
	cancel context.CancelFunc
	done   chan struct{}
	now    func() time.Duration

	mu       sync.Mutex
	held     map[string]HeldLock      // resource -> current holder in etcd
	grants   []Grant                  // every grant etcd recorded, in revision order
	released map[string]time.Duration // token hash -> when its release receipt was seen
	ended    map[int64]time.Duration  // grant revision -> when its deletion (release, revoke or expiry) was seen
	rev      int64                    // last revision seen
	seen     chan struct{}            // closed and replaced when rev moves
}

// HeldLock is who holds one lock in etcd.
type HeldLock struct {
	Owner        string
	FencingToken int64
	Lease        int64
	Since        time.Duration
	TTL          time.Duration
}

// NewObserver starts watching the lock keys of the etcd cluster at endpoints;
// now stamps what it sees.
func NewObserver(ctx context.Context, endpoints []string, now func() time.Duration) (*Observer, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
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
	gctx, gcancel := context.WithTimeout(ctx, 5*time.Second)
	resp, err := cli.Get(gctx, lockserver.InfoPrefix, clientv3.WithRange(lockserver.WatchEnd))
	gcancel()
	if err != nil {
		cli.Close()
		return nil, err
	}
	for _, kv := range resp.Kvs {
		o.put(kv.Key, kv.Value, kv.ModRevision, kv.Lease)
	}
	o.rev = resp.Header.Revision
	wctx, cancel := context.WithCancel(context.Background())
	o.cancel = cancel
	go o.loop(clientv3.WithRequireLeader(wctx), resp.Header.Revision+1)
	return o, nil
}

func (o *Observer) loop(ctx context.Context, from int64) {
	defer close(o.done)
	for ctx.Err() == nil {
		wch := o.cli.Watch(ctx, lockserver.InfoPrefix, clientv3.WithRange(lockserver.WatchEnd), clientv3.WithRev(from), clientv3.WithPrevKV(), clientv3.WithProgressNotify())
		for resp := range wch {
			if resp.Err() != nil {
				break
			}
			o.mu.Lock()
			for _, ev := range resp.Events {
				switch ev.Type {
				case clientv3.EventTypePut:
					o.putLocked(ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision, ev.Kv.Lease)
				case clientv3.EventTypeDelete:
					if k := string(ev.Kv.Key); strings.HasPrefix(k, lockserver.InfoPrefix) {
						delete(o.held, strings.TrimPrefix(k, lockserver.InfoPrefix))
						if ev.PrevKv != nil {
							o.ended[ev.PrevKv.ModRevision] = o.now()
						}
					}
				}
			}
			if resp.Header.Revision > o.rev {
				o.rev = resp.Header.Revision
				close(o.seen)
				o.seen = make(chan struct{})
			}
			from = o.rev + 1
			o.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond): // back off before re-watching
		}
	}
}

func (o *Observer) put(key, value []byte, rev, lease int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.putLocked(key, value, rev, lease)
}

func (o *Observer) putLocked(key, value []byte, rev, lease int64) {
	if strings.HasPrefix(string(key), lockserver.ReleasedPrefix) {
		o.released[string(value)] = o.now()
		return
	}
	rec, err := lockserver.DecodeRecord(value)
	if err != nil {
		return
	}
	res := strings.TrimPrefix(string(key), lockserver.InfoPrefix)
	if h, ok := o.held[res]; ok && h.FencingToken == rev {
		return // seen already (the initial Get and the watch overlap)
	}
	o.held[res] = HeldLock{Owner: rec.OwnerID, FencingToken: rev, Lease: lease, Since: o.now(), TTL: rec.TTL}
	o.grants = append(o.grants, Grant{Owner: rec.OwnerID, Resource: res, Revision: rev, TTL: rec.TTL, Seen: o.now()})
}

// Grant is one grant as etcd recorded it.
// Grant is one grant etcd recorded.
type Grant struct {
	Owner    string
	Resource string
	Revision int64 // the fencing token
	TTL      time.Duration
	Seen     time.Duration // when the Observer saw it (after it was committed)
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
// token with this hash, and when the Observer saw it.
func (o *Observer) Released(hash string) (time.Duration, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	at, ok := o.released[hash]
	return at, ok
}

// Ended reports when the Observer saw the grant of that revision deleted.
func (o *Observer) Ended(rev int64) (time.Duration, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	at, ok := o.ended[rev]
	return at, ok
}

// Grants returns every grant seen so far, in revision order.
func (o *Observer) Grants() []Grant {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Grant(nil), o.grants...)
}

// Sync waits until the Observer has seen every revision etcd has committed
// now, so that Grant answers for every write that took effect.
func (o *Observer) Sync(ctx context.Context) error {
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	resp, err := o.cli.Get(gctx, "/locksim-sync")
	cancel()
	if err != nil {
		return err
	}
	target := resp.Header.Revision
	// A progress request makes the watch report the current revision even
	// when no key under /locks/ changed.
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

// Close stops watching.
func (o *Observer) Close() {
	o.cancel()
	<-o.done
	o.cli.Close()
}
