package sim

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/locksim/locksim/lockserver"
)

func post(t *testing.T, url, key, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/locks/acquire", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

// TestAuthThroughBalancer: with keys configured, a request without a valid
// key gets 401, a key used for another client id gets 403, the right key
// gets its lock; the simulated clients run with keys of their own.
func TestAuthThroughBalancer(t *testing.T) {
	sb := start(t, Config{Auth: true, APIKeys: map[string]string{"key-A": "client-A"}, Workload: Workload{Hold: time.Millisecond, Think: time.Millisecond}})
	url := sb.BalancerURL()
	tests := []struct {
		name, key, client string
		want              int
	}{
		{"no key", "", "client-A", http.StatusUnauthorized},
		{"unknown key", "nope", "client-A", http.StatusUnauthorized},
		{"key of another client", "key-A", "client-B", http.StatusForbidden},
		{"the right key", "key-A", "client-A", http.StatusOK},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := fmt.Sprintf(`{"resourceId":"auth-%d","ttl":5,"clientId":%q}`, i, tt.client)
			assert.Equal(t, tt.want, post(t, url, tt.key, body).StatusCode)
		})
	}
	sb.StartWorkload(t.Context())
	require.Eventually(t, func() bool { return sb.Status().AcquiresOK >= 10 }, 15*time.Second, 10*time.Millisecond,
		"simulated clients authenticate with their own keys")
}

// TestRateLimitThroughBalancer: over its allowance a client gets 429 with
// Retry-After, and the rejected acquire changes nothing.
func TestRateLimitThroughBalancer(t *testing.T) {
	sb := start(t, Config{RateLimit: 2, LockServers: 1, Workload: Workload{Disabled: true}})
	c := apiClient(sb, "client-A")
	var limited *lockserver.Error
	for i := range 20 {
		_, err := c.Acquire(t.Context(), fmt.Sprintf("rl-%d", i), 5*time.Second, 0)
		if errors.As(err, &limited) && limited.Status == http.StatusTooManyRequests {
			require.NoError(t, sb.observer.Sync(t.Context()))
			_, held := sb.observer.Held()[fmt.Sprintf("rl-%d", i)]
			assert.False(t, held, "a rate-limited acquire changes nothing in etcd")
			_, held = sb.observer.Held()[fmt.Sprintf("rl-%d", i-1)]
			assert.True(t, held, "(the observer does see the grants that were let through)")
			break
		}
		require.NoError(t, err)
	}
	require.NotNil(t, limited, "20 acquires at once exceed 2/s")
	assert.Equal(t, "rate_limited", limited.Code)
	resp := post(t, sb.BalancerURL(), "", `{"resourceId":"rl-x","ttl":5,"clientId":"client-A"}`)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
}
