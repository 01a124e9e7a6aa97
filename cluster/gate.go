package cluster

import (
	"context"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errStopping is what a client request gets from a member that is being
// crashed: codes.Unavailable, which etcd's client treats as "try another
// member" for reads, as it would for a connection a dead process reset.
var errStopping = status.Error(codes.Unavailable, "cluster: member is stopping")

// gate stands in front of one running member's client gRPC services.
//
// A crash stops Raft and closes the member's store (HardStop) while its gRPC
// servers still accept requests (embed closes them later). etcd serves a
// serializable read from the store directly, so a read arriving in that
// window dereferences a closed bbolt transaction and panics, and the panic,
// in a handler goroutine, kills every member and the whole binary. In a real
// crash the process is gone and the request simply fails. The gate makes the
// in-process crash do the same: once closed, new requests and streams are
// refused with errStopping, and a request already inside the member that
// panics is answered with errStopping instead. A panic while the gate is open
// is a real bug and is not touched.
//
// A dead process also ends its streams at once. The gate ends every open
// stream (watch, lease keep-alive) when it closes, by cancelling the context
// the stream's handler sees: its client learns at once and moves to another
// member, and embed's Close does not wait its request timeout (5 s) for
// streams that would otherwise stay open.
type gate struct {
	closed  atomic.Bool
	stopped context.Context // done when the gate closes
	stop    context.CancelFunc
}

func newGate() *gate {
	g := &gate{}
	g.stopped, g.stop = context.WithCancel(context.Background())
	return g
}

// close refuses every later request and ends the open streams; call it
// before HardStop.
func (g *gate) close() {
	g.closed.Store(true)
	g.stop()
}

// options are the gRPC server options that put g in front of a member.
// etcd appends them after its own interceptors, so g runs innermost, right
// around the service handler.
func (g *gate) options() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(g.unary),
		grpc.ChainStreamInterceptor(g.stream),
	}
}

func (g *gate) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	if g.closed.Load() {
		return nil, errStopping
	}
	defer g.recoverStopping(&err)
	return handler(ctx, req)
}

func (g *gate) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	if g.closed.Load() {
		return errStopping
	}
	defer g.recoverStopping(&err)
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	defer context.AfterFunc(g.stopped, cancel)()
	err = handler(srv, &gatedStream{ServerStream: ss, ctx: ctx})
	if g.closed.Load() {
		err = errStopping
	}
	return err
}

// gatedStream is a server stream whose context also ends when its gate
// closes.
type gatedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *gatedStream) Context() context.Context { return s.ctx }

// recoverStopping turns a panic into errStopping when the member is being
// stopped, and lets any other panic go on.
func (g *gate) recoverStopping(err *error) {
	if !g.closed.Load() {
		return
	}
	if r := recover(); r != nil {
		*err = errStopping
	}
}
