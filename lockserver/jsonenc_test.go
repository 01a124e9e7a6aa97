package lockserver

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// marshalPlain is encoding/json without HTML escaping, the reference of the
// hand-written encoders.
func marshalPlain(t testing.TB, v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(v))
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func TestAppendJSONStringIsEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "client-A", `quo"te\back`, "tab\tnl\ncr\r", "\x00\x1f\x7f", "é€😀", "bad\xffutf8", "\u2028\u2029", "<&>"} {
		assert.Equal(t, string(marshalPlain(t, s)), string(appendJSONString(nil, s)), "%q", s)
	}
}

func TestAppendJSONFloatIsEncodingJSON(t *testing.T) {
	for _, f := range []float64{0, 1, 0.5, 30, 3600, 1e-7, 1.5e21, 123456789.125, 1.0 / 3} {
		assert.Equal(t, string(marshalPlain(t, f)), string(appendJSONFloat(nil, f)), "%v", f)
	}
}

func TestEncodeInfoRoundTrips(t *testing.T) {
	zero, half := 0.0, 0.5
	tests := []lockInfo{
		{OwnerID: "client-A", TTL: 30, AcquiredAt: time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC)},
		{OwnerID: `we"ird\owner`, TTL: 1.5, AcquiredAt: time.Unix(0, 0).UTC(), Fencing: 42},
		{OwnerID: "w", TTL: 2, Lasts: &zero},
		{OwnerID: "w", TTL: 2, Lasts: &half, Fencing: 7},
	}
	for _, want := range tests {
		got := encodeInfo(want)
		assert.JSONEq(t, string(marshalPlain(t, want)), got)
		rec, err := DecodeRecord([]byte(got))
		require.NoError(t, err)
		assert.Equal(t, want.OwnerID, rec.OwnerID)
		assert.Equal(t, seconds(want.TTL), rec.TTL)
		assert.True(t, want.AcquiredAt.Equal(rec.AcquiredAt))
		assert.Equal(t, want.Fencing, rec.Fencing)
		wantLasts := seconds(want.TTL)
		if want.Lasts != nil {
			wantLasts = seconds(*want.Lasts)
		}
		assert.Equal(t, wantLasts, rec.Lasts)
	}
}

func TestRegistrationRoundTrips(t *testing.T) {
	want := registration{key: "/waiters/r#/1.2", rev: 9, hash: hashToken("t"), lease: 0x7f3a, ttl: 1500 * time.Millisecond, owner: "client with spaces"}
	got, err := decodeRegistration(&mvccpb.KeyValue{Key: []byte(want.key), CreateRevision: want.rev, Value: []byte(encodeRegistration(want))})
	require.NoError(t, err)
	assert.Equal(t, want, got)
	for _, bad := range []string{"", "x", hashToken("t") + " zz 1 o", hashToken("t") + " 0 1000 o", hashToken("t") + " 7f3a 0 o", "short 7f3a 1000 o"} {
		_, err := decodeRegistration(&mvccpb.KeyValue{Value: []byte(bad)})
		assert.ErrorIs(t, err, errBadRegistration, "%q", bad)
	}
}

// FuzzAppendJSONString: the hand-written string encoder writes what
// encoding/json writes, for any bytes.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "a", "\"\\", "\x00", "\xff", "\u2028", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(appendJSONString(nil, s)), string(marshalPlain(t, s)); got != want {
			t.Fatalf("appendJSONString(%q) = %s, encoding/json %s", s, got, want)
		}
	})
}

// FuzzAppendJSONFloat: the same for numbers.
func FuzzAppendJSONFloat(f *testing.F) {
	for _, x := range []float64{0, 1e-7, 1e21, 0.1, -3} {
		f.Add(x)
	}
	f.Fuzz(func(t *testing.T, x float64) {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return
		}
		if got, want := string(appendJSONFloat(nil, x)), string(marshalPlain(t, x)); got != want {
			t.Fatalf("appendJSONFloat(%v) = %s, encoding/json %s", x, got, want)
		}
	})
}
