package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/lockserver"
)

// service is locksim's own lock server on a fresh 3-member cluster.
type service struct {
	cluster *cluster.Cluster
	server  *lockserver.Server
}

func startService(t *testing.T) *service { return startRecipe(t, "") }

// startRecipe is startService with a lockserver.Config.Recipe.
func startRecipe(t *testing.T, recipe string) *service {
	t.Helper()
	c, err := cluster.New(cluster.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.Start(t.Context()))
	s, err := lockserver.New(lockserver.Config{Name: "lockserver-1", Endpoints: c.ClientURLs(), EtcdTimeout: time.Second, Recipe: recipe})
	require.NoError(t, err)
	require.NoError(t, s.Start(t.Context()))
	t.Cleanup(func() { _ = s.Close() })
	return &service{cluster: c, server: s}
}

// unavailable crashes two of the three members; restore restarts them.
func (s *service) unavailable(ctx context.Context) (func(context.Context) error, error) {
	names := s.cluster.Names()[:2]
	for _, n := range names {
		if err := s.cluster.Crash(n); err != nil {
			return nil, err
		}
	}
	return func(ctx context.Context) error {
		for _, n := range names {
			if err := s.cluster.Restart(ctx, n); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

// locksim's own lock server, and etcd's concurrency.Mutex behind the same
// API, pass every check of the battery, the one that takes etcd's quorum
// away included.
func TestShippedRecipesPassEveryCheck(t *testing.T) {
	for _, recipe := range []string{"", lockserver.RecipeMutex} {
		t.Run("recipe="+recipe, func(t *testing.T) {
			s := startRecipe(t, recipe)
			rep := Run(t.Context(), Config{BaseURL: s.server.URL(), Unavailable: s.unavailable})
			require.Len(t, rep.Checks, len(checks))
			for _, c := range rep.Checks {
				assert.Equal(t, Pass, c.Result, "%s: %s", c.Name, c.Detail)
				t.Logf("%-28s %s %6.2fs %s", c.Name, c.Result, c.Elapsed.Seconds(), c.Detail)
			}
			assert.True(t, rep.Pass())
			assert.NoError(t, rep.Protocol())
		})
	}
}

// Without a way to take the quorum away, the "unavailable" check is
// skipped, and says why.
func TestUnavailableIsSkippedWithoutAHook(t *testing.T) {
	s := startService(t)
	rep := Run(t.Context(), Config{BaseURL: s.server.URL(), Only: []string{"unavailable"}})
	require.Len(t, rep.Checks, 1)
	assert.Equal(t, Skip, rep.Checks[0].Result)
	assert.Contains(t, rep.Checks[0].Detail, "quorum")
	assert.True(t, rep.Pass(), "a skipped check is not a failure")
}

// rewrite wraps a handler: edit may change the status and body of any
// answer to a request of that method and path.
func rewrite(h http.Handler, method, path string, edit func(status int, body []byte, reqBody []byte) (int, []byte)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method || r.URL.Path != path {
			h.ServeHTTP(w, r)
			return
		}
		reqBody, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(reqBody))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		status, body := edit(rec.Code, rec.Body.Bytes(), reqBody)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		_, _ = w.Write(body)
	})
}

var fencingField = regexp.MustCompile(`"fencingToken":\d+`)

// Each defect planted in front of locksim's own server fails the check
// aimed at it.
func TestTheBatteryCatchesPlantedDefects(t *testing.T) {
	s := startService(t)
	h := s.server.Handler()
	for _, tc := range []struct {
		name, check string
		broken      http.Handler
		protocol    bool // the failure is an answer that is not the documented JSON
	}{
		{"anyone can release", "owner-only", rewrite(h, http.MethodPost, "/locks/release", func(st int, b, _ []byte) (int, []byte) {
			if st == http.StatusConflict {
				return http.StatusOK, []byte(`{"success":true}`)
			}
			return st, b
		}), false},
		{"fencing tokens repeat", "fencing", rewrite(h, http.MethodPost, "/locks/acquire", func(st int, b, _ []byte) (int, []byte) {
			return st, fencingField.ReplaceAll(b, []byte(`"fencingToken":7`))
		}), false},
		{"malformed JSON is a 500", "400 malformed_json", rewrite(h, http.MethodPost, "/locks/acquire", func(st int, b, req []byte) (int, []byte) {
			if !json.Valid(req) {
				return http.StatusInternalServerError, []byte(`{"success":false,"error":"oops","code":"internal"}`)
			}
			return st, b
		}), false},
		{"405 without Allow", "405 method_not_allowed", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(&dropAllow{ResponseWriter: w}, r)
		}), false},
		{"a grant that is not JSON", "acquire", rewrite(h, http.MethodPost, "/locks/acquire", func(st int, b, _ []byte) (int, []byte) {
			if st == http.StatusOK {
				return st, []byte("OK")
			}
			return st, b
		}), true},
		{"a grant without a lockToken", "fencing", rewrite(h, http.MethodPost, "/locks/acquire", func(st int, b, _ []byte) (int, []byte) {
			return st, bytes.Replace(b, []byte(`"lockToken"`), []byte(`"token"`), 1)
		}), true},
		{"busy without a code", "lock_busy", rewrite(h, http.MethodPost, "/locks/acquire", func(st int, b, _ []byte) (int, []byte) {
			if st == http.StatusConflict {
				return st, []byte(`{"success":false,"error":"busy"}`)
			}
			return st, b
		}), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.broken)
			defer srv.Close()
			rep := Run(t.Context(), Config{BaseURL: srv.URL, Only: []string{tc.check}})
			require.Len(t, rep.Checks, 1)
			c := rep.Checks[0]
			t.Logf("%s: %s", c.Name, c.Detail)
			assert.Equal(t, Fail, c.Result)
			assert.False(t, rep.Pass())
			if tc.protocol {
				assert.ErrorIs(t, rep.Protocol(), ErrNotTheAPI)
			} else {
				assert.NoError(t, rep.Protocol())
			}
		})
	}
}

// dropAllow removes the Allow header of every answer.
type dropAllow struct{ http.ResponseWriter }

func (d *dropAllow) WriteHeader(status int) {
	d.Header().Del("Allow")
	d.ResponseWriter.WriteHeader(status)
}

// Probe accepts the documented answer and names what is wrong with any
// other.
func TestProbe(t *testing.T) {
	s := startService(t)
	require.NoError(t, Probe(t.Context(), nil, s.server.URL()))
	for _, tc := range []struct {
		name, body, says string
	}{
		{"html", "<html>hello</html>", "a body that is not a JSON object"},
		{"no held", `{"resourceId":"locksim-probe"}`, `no boolean "held"`},
		{"another resource", `{"resourceId":"x","held":false}`, `a resourceId of "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			err := Probe(t.Context(), nil, srv.URL)
			require.ErrorIs(t, err, ErrNotTheAPI)
			assert.Contains(t, err.Error(), "GET /locks/locksim-probe answered 200 with "+tc.says)
		})
	}
}
