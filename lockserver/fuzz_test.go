package lockserver

import (
	"errors"
	"testing"
	"time"
)

// FuzzParseRequests feeds arbitrary bodies to the request decoders: they
// never panic, every rejection is a coded bad request, and every accepted
// request is within the documented ranges. `make test` runs the seeds
// (testdata/fuzz/FuzzParseRequests and the f.Add lines); `make fuzz` explores.
func FuzzParseRequests(f *testing.F) {
	for _, s := range []string{
		`{"resourceId":"order:12345","ttl":30,"timeout":10,"clientId":"client-A"}`,
		`{"resourceId":"a/b.c-d_e:f","ttl":0.5}`,
		`{"resourceId":"order:12345","lockToken":"00ab.ff"}`,
		`{"resourceId":"x","lockToken":"1.2","ttl":3}`,
		`{"resourceId":"","ttl":1}`,
		`{"resourceId":"x","ttl":-1}`,
		`{"resourceId":"x","ttl":1e308,"timeout":NaN}`,
		`{"resourceId":"x","ttl":"30"}`,
		`{"resourceId":"x","ttl":1,"extra":true}`,
		`{"resourceId":"x","ttl":1}{"resourceId":"y"}`,
		`[1,2,3]`, `null`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	lim := limits{MaxTTL: time.Hour, MaxTimeout: 300 * time.Second}
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(err error) {
			if err != nil && !errors.Is(err, ErrBadRequest) {
				t.Fatalf("rejection is not a bad request: %v", err)
			}
		}
		if req, err := parseAcquire(body, lim); err == nil {
			if !validResourceID(req.ResourceID) || req.TTL <= 0 || req.TTL > time.Hour || req.Timeout < 0 || req.Timeout > 300*time.Second {
				t.Fatalf("accepted an out-of-range acquire %+v from %q", req, body)
			}
		} else {
			check(err)
		}
		if req, err := parseRelease(body, lim); err == nil {
			if !validResourceID(req.ResourceID) || req.LockToken == "" {
				t.Fatalf("accepted a bad release %+v from %q", req, body)
			}
		} else {
			check(err)
		}
		_, err := parseRenew(body, lim)
		check(err)
	})
}
