package lockserver

// Calling etcd: every call is bounded by Config.EtcdTimeout, carries
// WithRequireLeader (retried on another member by retryNoLeader when the one
// reached has no leader), passes a pause point first, and its failure is
// classified as "did not take effect" or "outcome unknown".

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
)

// retryBackoff is the pause before retrying a failed read or watch while waiting.
const retryBackoff = 100 * time.Millisecond

// etcdCtx bounds one etcd call by EtcdTimeout and fails fast on a member that
// has no leader (such a call was not applied).
func (s *Server) etcdCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(withLeader(ctx), s.cfg.EtcdTimeout)
}

// leaderMarked marks a context that already carries WithRequireLeader.
type leaderMarked struct{}

// withLeader is clientv3.WithRequireLeader(ctx), once: a request marks its
// context when it arrives, and its etcd calls do not copy the gRPC metadata
// again.
func withLeader(ctx context.Context) context.Context {
	if ctx.Value(leaderMarked{}) != nil {
		return ctx
	}
	return context.WithValue(clientv3.WithRequireLeader(ctx), leaderMarked{}, true)
}

// cleanupCtx is etcdCtx for a clean-up that outlives its request (leaving
// the queue, revoking a lease): derived from the server's context, which
// Close cancels.
func (s *Server) cleanupCtx() (context.Context, context.CancelFunc) {
	return s.etcdCtx(s.ctx)
}

// notApplied reports whether err proves that etcd did not apply a request.
func notApplied(err error) bool {
	if errors.Is(err, rpctypes.ErrNoLeader) || errors.Is(err, rpctypes.ErrTooManyRequests) ||
		errors.Is(err, rpctypes.ErrGRPCNoLeader) {
		return true
	}
	switch rpctypes.ErrorDesc(err) {
	case "there is no address available", "there is no connection available":
		return true
	}
	return false
}

// readErr wraps a failed call that changed no lock as ErrUnavailable.
func (s *Server) readErr(err error, what string) error {
	s.stats.etcdErrors.Add(1)
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err)
}

// writeErr wraps a failed write: ErrUnavailable when etcd provably did not
// apply it, ErrOutcomeUnknown otherwise.
func (s *Server) writeErr(err error, what string) error {
	s.stats.etcdErrors.Add(1)
	if notApplied(err) {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrOutcomeUnknown, what, err)
}

// pausePoint is a checkpoint before an etcd call; failing it means the call
// was never sent.
func (s *Server) pausePoint(ctx context.Context) error {
	if err := s.checkpoint(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// backoff waits retryBackoff (at most until the deadline) before a retry.
func (s *Server) backoff(ctx context.Context, deadline time.Time) error {
	d := min(retryBackoff, deadline.Sub(s.cfg.Now()))
	if d <= 0 {
		return nil
	}
	return s.backoffFor(ctx, d)
}

// backoffFor waits d unless ctx ends first.
func (s *Server) backoffFor(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}

// retryNoLeader is a gRPC interceptor that sends a request again, to the
// next etcd member, when the member it reached answered "no leader" (or "too
// many requests"). Such an answer proves the request was not applied — every
// call carries WithRequireLeader, so a member cut off from its leader rejects
// it before proposing anything — so the retry is safe even for writes. It
// keeps a lock server useful while one member is partitioned away: without
// it, a third of its etcd calls would fail with 503.
func retryNoLeader(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	backoff := 5 * time.Millisecond
	for {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if err == nil || !notApplied(rpctypes.Error(err)) {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}
