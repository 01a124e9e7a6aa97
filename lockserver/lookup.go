package lockserver

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// lockState is what GET /locks/{id} reports.
type lockState struct {
	Held      bool
	OwnerID   string
	Fencing   int64
	ExpiresAt time.Time
	Waiters   int64
}

// lookup reads a lock linearizably, then its lease's remaining TTL (whole
// seconds, as etcd reports it).
func (s *Server) lookup(ctx context.Context, id string) (lockState, error) {
	if s.cfg.Recipe == RecipeMutex {
		return s.lookupMutex(ctx, id)
	}
	if err := s.pausePoint(ctx); err != nil {
		return lockState{}, err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	resp, err := s.kv().Txn(cctx).Then(
		clientv3.OpGet(lockKey(id)),
		clientv3.OpGet(infoKey(id)),
		clientv3.OpGet(waitersPrefix(id), clientv3.WithPrefix(), clientv3.WithCountOnly()),
	).Commit()
	if err != nil {
		return lockState{}, s.readErr(err, "get")
	}
	waiters := resp.Responses[2].GetResponseRange().GetCount()
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return lockState{Waiters: waiters}, nil
	}
	st := lockState{Held: true, Fencing: kvs[0].CreateRevision, Waiters: waiters}
	if infos := resp.Responses[1].GetResponseRange().GetKvs(); len(infos) > 0 {
		if rec, err := DecodeRecord(infos[0].Value); err == nil {
			st.OwnerID, st.Fencing = rec.OwnerID, FencingOf(infos[0], rec)
		}
	}
	if err := s.pausePoint(ctx); err != nil {
		return lockState{}, err
	}
	since := s.cfg.Now()
	ttl, err := s.kv().TimeToLive(cctx, clientv3.LeaseID(kvs[0].Lease))
	if err != nil {
		return lockState{}, s.readErr(err, "lease ttl")
	}
	st.ExpiresAt = since.Add(time.Duration(max(ttl.TTL, 0)) * time.Second)
	return st, nil
}

// healthTimeout bounds the health probe's linearizable read.
const healthTimeout = time.Second

// health succeeds when a linearizable read answers within healthTimeout.
func (s *Server) health(ctx context.Context) error {
	if err := s.pausePoint(ctx); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), min(healthTimeout, s.cfg.EtcdTimeout))
	defer cancel()
	if _, err := s.kv().Get(cctx, "/health", clientv3.WithCountOnly()); err != nil {
		return s.readErr(err, "health read")
	}
	return nil
}
