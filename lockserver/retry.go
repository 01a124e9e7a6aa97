package lockserver

import (
	"context"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
)

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
