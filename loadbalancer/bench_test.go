package loadbalancer

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"
)

// BenchmarkProxy compares 16 concurrent clients against an httptest backend
// directly and through the balancer, in http mode (each policy) and in tcp
// mode. Run with -benchtime=2s. allocs/op counts the whole process (client,
// balancer and backend); the difference between the rows is the balancer's
// share.
func BenchmarkProxy(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"success":true,"lockToken":"0123456789abcdef0123456789abcdef","fencingToken":1234}`)
	}))
	defer backend.Close()

	b.Run("direct", func(b *testing.B) { runClients(b, backend.URL) })
	for _, name := range []string{PolicyRoundRobin, PolicyLeastConnections, "tcp"} {
		b.Run("balancer-"+name, func(b *testing.B) {
			cfg := Config{Backends: []string{backend.URL}, Policy: name}
			if name == "tcp" {
				cfg = Config{Backends: []string{backend.URL}, Mode: ModeTCP}
			}
			bal, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer bal.Close()
			if err := bal.Start(b.Context()); err != nil {
				b.Fatal(err)
			}
			runClients(b, bal.URL())
		})
	}
}

func runClients(b *testing.B, base string) {
	const clients = 16
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	body := []byte(`{"resourceId":"order:12345","ttl":30,"timeout":0,"clientId":"client-A"}`)
	url := base + "/locks/acquire"

	b.ReportAllocs()
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := hc.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}
