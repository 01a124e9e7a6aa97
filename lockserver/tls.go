package lockserver

// TLS to etcd: the client's TLS config is the caller's (Config.TLS,
// NewObserver); this file refuses a config that clientv3 would silently
// ignore and checks, before serving, that the members accept it, since
// clientv3 reports a refused handshake only as each call's deadline passing.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// ErrTLSRefused: an etcd member and the TLS config do not fit (the member's
// certificate is not signed by a trusted CA or not for its address, the
// member wants a client certificate, or it does not speak TLS at all).
var ErrTLSRefused = errors.New("lockserver: etcd refused the TLS connection")

// checkTLSEndpoints refuses a TLS config with an endpoint that is not
// https://: clientv3 would talk to that one in plain text, silently.
func checkTLSEndpoints(endpoints []string, tlsCfg *tls.Config) error {
	if tlsCfg == nil {
		return nil
	}
	for _, ep := range endpoints {
		if !strings.HasPrefix(ep, "https://") {
			return fmt.Errorf("lockserver: etcd endpoint %q is not https:// but a TLS config is set", ep)
		}
	}
	return nil
}

// ProbeTLS opens one TLS connection to every https:// endpoint with tlsCfg
// and asks for etcd's version over it (a member answers that from its own
// state, without a quorum). It returns an error wrapping ErrTLSRefused, and
// naming the endpoint, for the first member that refused the handshake or
// the client certificate, or that does not speak TLS. A member that cannot
// be reached, or does not answer within ctx, proves nothing and is not an
// error: the lock server's client connects when it can. http:// endpoints
// are skipped.
func ProbeTLS(ctx context.Context, endpoints []string, tlsCfg *tls.Config) error {
	errs := make([]error, len(endpoints))
	var wg sync.WaitGroup
	for i, ep := range endpoints {
		u, err := url.Parse(ep)
		if err != nil || u.Scheme != "https" {
			continue
		}
		wg.Go(func() {
			if err := probeTLS(ctx, u.Host, tlsCfg); err != nil {
				errs[i] = fmt.Errorf("%w: %s: %w", ErrTLSRefused, ep, err)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// probeTLS does the handshake with host and one GET /version, and returns
// the error only if it shows that TLS itself failed. With TLS 1.3 a member
// rejects a missing client certificate after the client's half of the
// handshake, as an alert that the first read returns.
func probeTLS(ctx context.Context, host string, tlsCfg *tls.Config) error {
	d := tls.Dialer{Config: tlsCfg}
	conn, err := d.DialContext(ctx, "tcp", host)
	if errors.Is(err, io.EOF) {
		// A TLS server ends a handshake it refuses with an alert; a plain
		// etcd member just closes the connection on a TLS hello.
		return fmt.Errorf("closed the connection during the TLS handshake: does it serve TLS? (%w)", err)
	}
	if err != nil {
		return tlsFailure(err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	if _, err := fmt.Fprintf(conn, "GET /version HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host); err != nil {
		return tlsFailure(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return tlsFailure(err)
	}
	return resp.Body.Close()
}

// tlsFailure keeps err if it is a TLS failure (a certificate that did not
// verify, an alert from the member, an answer that is not TLS) and drops
// it otherwise (refused, reset, timed out: the member may just be down).
func tlsFailure(err error) error {
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	var op *net.OpError
	switch {
	case errors.As(err, &verify), errors.As(err, &record):
		return err
	case errors.As(err, &op) && op.Op == "remote error": // a TLS alert from the member
		return err
	}
	return nil
}
