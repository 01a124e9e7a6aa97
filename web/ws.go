package web

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

const (
	pingInterval = 20 * time.Second
	readTimeout  = 3 * pingInterval
)

// serveWS upgrades to a websocket, sends the snapshot and then the
// coalesced updates until the viewer leaves, is dropped as slow, or the
// server closes.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if s.hub.count() >= s.cfg.MaxViewers {
		http.Error(w, "web: too many viewers", http.StatusServiceUnavailable)
		return
	}
	up := websocket.Upgrader{
		ReadBufferSize:  1024,
		WriteBufferSize: 16 << 10,
		CheckOrigin: func(r *http.Request) bool {
			return originAllowed(r.Header.Get("Origin"), r.Host, s.cfg.AllowedOrigins)
		},
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			http.Error(w, "web: "+reason.Error(), status)
		},
	}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered already (403 for a foreign origin)
	}
	v, snap, err := s.hub.add()
	if err != nil {
		_ = conn.Close()
		return
	}
	s.mu.Lock()
	if s.closed || r.Context().Err() != nil {
		s.mu.Unlock()
		s.hub.remove(v)
		_ = conn.Close()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	// The reader handles pongs and close frames; the page sends nothing else.
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer s.hub.remove(v)
		conn.SetReadLimit(4096)
		_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
		conn.SetPongHandler(func(string) error {
			return conn.SetReadDeadline(time.Now().Add(readTimeout))
		})
		for {
			if _, _, err := conn.NextReader(); err != nil {
				return
			}
		}
	}()
	s.writeLoop(r.Context(), conn, v, snap)
	_ = conn.Close()
	<-readDone
}

func (s *Server) writeLoop(ctx context.Context, conn *websocket.Conn, v *viewer, snap message) {
	write := func(typ int, data []byte) bool {
		_ = conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		err := conn.WriteMessage(typ, data)
		var ne net.Error
		switch {
		case err == nil:
			return true
		case errors.As(err, &ne) && ne.Timeout():
			s.hub.drop(v) // slow: counted
		default:
			s.hub.remove(v)
		}
		return false
	}
	if !write(websocket.TextMessage, snap.data) {
		return
	}
	s.hub.sent.Add(1)
	ping := time.NewTicker(pingInterval)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-v.done:
			_ = conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""))
			return
		case m := <-v.send:
			if snap.seq != 0 && m.seq <= snap.seq {
				continue // the snapshot already holds it
			}
			if !write(websocket.TextMessage, m.data) {
				return
			}
			s.hub.sent.Add(1)
		case <-ping.C:
			if !write(websocket.PingMessage, nil) {
				return
			}
		}
	}
}
