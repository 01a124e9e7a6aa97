package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/locksim/locksim/lockserver"
)

// benchTTL is the TTL of every benchmark lock; benchWait bounds a queued acquire.
const (
	benchTTL  = 30 * time.Second
	benchWait = 20 * time.Second
)

// cycler runs lock cycles on one path. newWorker prepares one client
// (worker i of a point) and returns its cycle and cleanup.
type cycler interface {
	newWorker(ctx context.Context, i int) (worker, error)
}

type worker interface {
	// acquire takes key and returns what release needs.
	acquire(ctx context.Context, key string) (any, error)
	release(ctx context.Context, key string, held any) error
	close()
}

func (env *benchEnv) cycler(name string) cycler {
	if (name == HAProxy || name == HAProxyTCP) && env.balancerURL(name) == "" {
		return nil // haproxy skipped
	}
	switch name {
	case Raw:
		return rawCycler{env: env, pool: true}
	case RawGrant:
		return rawCycler{env: env}
	case Direct:
		return httpCycler{env: env, base: "http://" + env.servers[0].Addr()}
	case Balancer, BalancerTCP, HAProxy, HAProxyTCP:
		return httpCycler{env: env, base: env.balancerURL(name)}
	case Mutex:
		return mutexCycler{env}
	}
	return nil
}

// child returns the process of path name and its CPU component (nil when
// the path runs in this process, or not at all).
func (env *benchEnv) child(name string) (*childProc, string) {
	switch name {
	case Balancer:
		return env.lbProc, cpuBalancer
	case BalancerTCP:
		return env.lbTCPProc, cpuBalancer
	case HAProxy:
		return env.haproxy, cpuHAProxy
	case HAProxyTCP:
		return env.haproxyTCP, cpuHAProxy
	}
	return nil, ""
}

// balancerURL is where the balancer of path name listens: its process's
// address, or our in-process balancer's.
func (env *benchEnv) balancerURL(name string) string {
	if c, _ := env.child(name); c != nil {
		return c.url
	}
	switch name {
	case Balancer:
		return env.lb.URL()
	case BalancerTCP:
		return env.lbTCP.URL()
	}
	return ""
}

// rawCycler issues exactly the etcd calls of the lock server's cycle with
// clientv3. With pool (the lock server's default, suite raw) each client
// keeps one lease and restarts it on a long-lived LeaseKeepAlive stream
// (answered by the leader, no Raft write), sent together with the grant txn
// and awaited after it, as the lock server does; release is the
// compare-and-delete txn (which reads the lock record, writes the release
// receipt and counts the waiters left). Without pool (suite rawgrant, a lock
// server with LeasePool < 0) every acquire grants a lease and every release
// revokes it in the background: two more Raft writes.
type rawCycler struct {
	env  *benchEnv
	pool bool
}

type rawWorker struct {
	env     *benchEnv
	cli     *clientv3.Client
	lease   clientv3.LeaseID              // pool only
	stream  pb.Lease_LeaseKeepAliveClient // pool only: restarts lease
	cancel  context.CancelFunc            // ends stream
	receipt clientv3.LeaseID              // release receipts, as a lock server's receipt lease
}

type rawHeld struct {
	lease clientv3.LeaseID
	hash  string
}

func (c rawCycler) newWorker(ctx context.Context, i int) (worker, error) {
	w := rawWorker{env: c.env, cli: c.env.etcd[i%len(c.env.etcd)]}
	r, err := w.cli.Grant(ctx, int64(benchTTL/time.Second))
	if err != nil {
		return nil, err
	}
	w.receipt = r.ID
	if c.pool {
		l, err := w.cli.Grant(ctx, int64(benchTTL/time.Second))
		if err != nil {
			return nil, err
		}
		w.lease = l.ID
		sctx, cancel := context.WithCancel(clientv3.WithRequireLeader(context.Background()))
		st, err := pb.NewLeaseClient(w.cli.ActiveConnection()).LeaseKeepAlive(sctx)
		if err != nil {
			cancel()
			return nil, err
		}
		w.stream, w.cancel = st, cancel
	}
	return w, nil
}

func (w rawWorker) acquire(ctx context.Context, key string) (any, error) {
	id := w.lease
	if id == 0 {
		l, err := w.cli.Grant(clientv3.WithRequireLeader(ctx), int64(benchTTL/time.Second))
		if err != nil {
			return nil, err
		}
		id = l.ID
	} else if err := w.stream.Send(&pb.LeaseKeepAliveRequest{ID: int64(id)}); err != nil {
		return nil, err
	}
	// Like a lock token's hash: unique per grant.
	sum := sha256.Sum256([]byte(key + strconv.FormatInt(int64(id), 16) + strconv.FormatInt(time.Now().UnixNano(), 16)))
	h := rawHeld{lease: id, hash: hex.EncodeToString(sum[:])}
	lk := lockserver.LockPrefix + key
	resp, err := w.cli.Txn(clientv3.WithRequireLeader(ctx)).If(
		clientv3.Compare(clientv3.CreateRevision(lk), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(lockserver.WaiterPrefix+key+"#/").WithPrefix(), "=", 0),
	).Then(
		clientv3.OpPut(lk, h.hash, clientv3.WithLease(id)),
		clientv3.OpPut(lockserver.InfoPrefix+key, `{"ownerId":"bench","ttl":30,"acquiredAt":"2026-01-01T00:00:00Z"}`, clientv3.WithLease(id)),
		clientv3.OpDelete(lockserver.ReleasedPrefix+key),
	).Commit()
	if w.stream != nil {
		ka, kerr := w.stream.Recv() // the restart sent with the txn
		if kerr == nil && ka.TTL <= 0 {
			kerr = errors.New("bench: raw lease gone")
		}
		if err == nil {
			err = kerr
		}
	}
	switch {
	case err != nil:
		return nil, err
	case !resp.Succeeded:
		return nil, errors.New("bench: raw grant txn failed: lock held")
	}
	return h, nil
}

func (w rawWorker) release(ctx context.Context, key string, held any) error {
	h := held.(rawHeld)
	lk := lockserver.LockPrefix + key
	info := lockserver.InfoPrefix + key
	resp, err := w.cli.Txn(clientv3.WithRequireLeader(ctx)).If(
		clientv3.Compare(clientv3.Value(lk), "=", h.hash),
	).Then(clientv3.OpGet(lk), clientv3.OpGet(info),
		clientv3.OpPut(lockserver.ReleasedPrefix+key, h.hash, clientv3.WithLease(w.receipt)),
		clientv3.OpDelete(lk), clientv3.OpDelete(info),
		clientv3.OpGet(lockserver.WaiterPrefix+key+"#/", clientv3.WithPrefix(), clientv3.WithCountOnly())).Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return errors.New("bench: raw release txn failed: not the holder")
	}
	if w.lease != 0 {
		return nil // the pooled lease is kept for the next acquire
	}
	w.env.bg.Go(func() {
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, _ = w.cli.Revoke(rctx, h.lease)
	})
	return nil
}

func (w rawWorker) close() {
	if w.cancel != nil {
		w.cancel()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, l := range []clientv3.LeaseID{w.lease, w.receipt} {
		if l != 0 {
			_, _ = w.cli.Revoke(ctx, l)
		}
	}
}

// httpCycler is the lock API over HTTP at base (a lock server, our balancer or haproxy).
type httpCycler struct {
	env  *benchEnv
	base string
}

type httpWorker struct{ c *lockserver.Client }

func (c httpCycler) newWorker(_ context.Context, i int) (worker, error) {
	return httpWorker{&lockserver.Client{BaseURL: c.base, HTTP: c.env.hc, ClientID: fmt.Sprintf("bench-%d", i)}}, nil
}

func (w httpWorker) acquire(ctx context.Context, key string) (any, error) {
	g, err := w.c.Acquire(ctx, key, benchTTL, benchWait)
	if err != nil {
		return nil, err
	}
	return g.LockToken, nil
}

func (w httpWorker) release(ctx context.Context, key string, held any) error {
	return w.c.Release(ctx, key, held.(string))
}

func (httpWorker) close() {}

// mutexCycler is etcd's own recipe: concurrency.Mutex, one session per client.
type mutexCycler struct{ env *benchEnv }

type mutexWorker struct {
	sess *concurrency.Session
	mu   map[string]*concurrency.Mutex
}

func (c mutexCycler) newWorker(ctx context.Context, i int) (worker, error) {
	s, err := concurrency.NewSession(c.env.etcd[i%len(c.env.etcd)], concurrency.WithTTL(int(benchTTL/time.Second)), concurrency.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	return &mutexWorker{sess: s, mu: map[string]*concurrency.Mutex{}}, nil
}

func (w *mutexWorker) acquire(ctx context.Context, key string) (any, error) {
	m := w.mu[key]
	if m == nil {
		m = concurrency.NewMutex(w.sess, "/mutex/"+key)
		w.mu[key] = m
	}
	ctx, cancel := context.WithTimeout(ctx, benchWait)
	defer cancel()
	return m, m.Lock(ctx)
}

func (w *mutexWorker) release(ctx context.Context, _ string, held any) error {
	return held.(*concurrency.Mutex).Unlock(ctx)
}

func (w *mutexWorker) close() { _ = w.sess.Close() }
