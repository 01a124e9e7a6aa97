package faults

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// proxied starts a Proxy from "client" to an echo server named "server" and
// connects to it with a plain dial, as another process would.
func proxied(t *testing.T, n *Network) (*Proxy, net.Conn) {
	t.Helper()
	addr := echoServer(t)
	n.Name(addr, "server")
	p, err := n.Proxy("client", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return p, c
}

// A plain connection through a Proxy is shaped like one made through the
// Network's own dialer: both directions stall while their link is blocked,
// and the held bytes arrive after the heal.
func TestProxyPutsAPlainConnectionUnderTheNetwork(t *testing.T) {
	n := NewNetwork(nil)
	_, c := proxied(t, n)
	_, err := c.Write([]byte("hello"))
	require.NoError(t, err)
	assert.Equal(t, "hello", readN(t, c, 5))

	for _, dir := range [][2]string{{"client", "server"}, {"server", "client"}} {
		n.Block(dir[0], dir[1])
		var got string
		done := async(func() {
			_, _ = c.Write([]byte("ping"))
			got = readN(t, c, 4)
		})
		requireStalled(t, done, dir[0]+" -> "+dir[1])
		n.Heal()
		requireDone(t, done, dir[0]+" -> "+dir[1])
		assert.Equal(t, "ping", got)
	}
}

// A connection made while the link is blocked waits (a dial into a black
// hole) and goes through once the link heals.
func TestProxyDialWaitsForABlockedLink(t *testing.T) {
	n := NewNetwork(nil)
	addr := echoServer(t)
	n.Name(addr, "server")
	n.Block("client", "server")
	p, err := n.Proxy("client", addr)
	require.NoError(t, err)
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	var got string
	done := async(func() {
		_, _ = c.Write([]byte("late"))
		got = readN(t, c, 4)
	})
	requireStalled(t, done, "a connection over a blocked link")
	n.Unblock("client", "server")
	requireDone(t, done, "the connection after the heal")
	assert.Equal(t, "late", got)
}

// Close cuts every forwarded connection and stops listening; the package's
// goleak check proves its goroutines are gone.
func TestProxyCloseCutsConnections(t *testing.T) {
	n := NewNetwork(nil)
	p, c := proxied(t, n)
	_, err := c.Write([]byte("x"))
	require.NoError(t, err)
	assert.Equal(t, "x", readN(t, c, 1))
	require.NoError(t, p.Close())
	require.NoError(t, p.Close(), "Close is idempotent")
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = c.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF, "the client sees its connection end")
	_, err = net.Dial("tcp", p.Addr())
	assert.Error(t, err, "the proxy no longer listens")
}

// When the target is down, the client's connection ends at once instead of
// hanging.
func TestProxyEndsTheConnectionWhenTheTargetIsDown(t *testing.T) {
	n := NewNetwork(nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	p, err := n.Proxy("client", addr)
	require.NoError(t, err)
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = c.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF)
}
