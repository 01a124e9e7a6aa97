package lockserver

import (
	"context"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// receiptLease is the lease a server writes release receipts under.
//
// A receipt must outlive the release long enough for a watcher to see it,
// and must not outlive it by much whatever happens to the released lock's
// lease (the pool hands that lease to other locks and keeps it alive). So
// receipts get a lease of their own: granted with Config.ReceiptTTL, never
// kept alive, and used for new receipts only during the first half of its
// TTL. Every receipt therefore lives at least ReceiptTTL/2 and at most
// ReceiptTTL (plus etcd's expiry granularity, and a leader change's
// extension), at the cost of one lease grant per ReceiptTTL/2 per server.
type receiptLease struct {
	mu    sync.Mutex
	id    clientv3.LeaseID
	until time.Time // new receipts use id until then
}

// receiptLease returns the lease for a receipt written now, granting a new
// one when the current one is past the first half of its TTL.
func (s *Server) receiptLease(ctx context.Context) (clientv3.LeaseID, error) {
	r := &s.receipts
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.id != 0 && s.cfg.Now().Before(r.until) {
		return r.id, nil
	}
	l, err := s.grantLease(ctx, s.cfg.ReceiptTTL)
	if err != nil {
		return 0, err
	}
	r.id, r.until = l.id, l.since.Add(l.ttl/2)
	return r.id, nil
}

// dropReceiptLease forgets id after etcd answered that it is gone.
func (s *Server) dropReceiptLease(id clientv3.LeaseID) {
	r := &s.receipts
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.id == id {
		r.id = 0
	}
}
