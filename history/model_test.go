package history

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const r1 = "order:1"

// checkBothWays checks ops with and without a visualization (which takes a
// different path through porcupine) and requires the same verdicts.
func checkBothWays(t *testing.T, ops []Op) Result {
	t.Helper()
	got := Check(ops, Options{Timeout: 5 * time.Second})
	vis := Check(ops, Options{Timeout: 5 * time.Second, VisualizePath: filepath.Join(t.TempDir(), "h.html")})
	require.NotEmpty(t, vis.VisualizationPath)
	require.Equal(t, got.Lock, vis.Lock, "lock verdict with visualization")
	require.Equal(t, got.Resource, vis.Resource, "resource verdict with visualization")
	require.Equal(t, got.Details, vis.Details)
	return got
}

func TestRenewKeepsTheReadModifyWriteTogether(t *testing.T) {
	ops := []Op{
		acquireOK("a", r1, "ta", 1, 0, 10, 1),
		read("a", r1, 1, 20, 30, 5),
		renew("a", r1, "ta", 40, 50, OK, 1),
		read("b", r1, 0, 60, 70, 5), write("b", r1, 0, 80, 90, 6, OK),
		write("a", r1, 1, 100, 110, 6, OK),
	}
	got := checkBothWays(t, ops)
	assert.Equal(t, Linearizable, got.Lock)
	assert.Equal(t, Violated, got.Resource, "lost update across a renew")
}

func TestLockModel(t *testing.T) {
	tests := []struct {
		name string
		ops  []Op
		want Verdict
	}{
		{"sequential grants", []Op{
			acquireOK("a", r1, "ta", 1, 0, 10, 1),
			release("a", r1, "ta", 20, 30, OK, ""),
			acquireOK("b", r1, "tb", 2, 40, 50, 1),
			release("b", r1, "tb", 60, 70, OK, ""),
		}, Linearizable},
		{"overlapping grants while the first lease cannot have expired", []Op{
			acquireOK("a", r1, "ta", 1, 0, 10, 1),
			acquireOK("b", r1, "tb", 2, 100, 110, 1),
		}, Violated},
		{"second grant returns just before the first lease's earliest expiry", []Op{
			acquireOK("a", r1, "ta", 1, 0, 10, 1),
			acquireOK("b", r1, "tb", 2, 900, 999, 1),
		}, Violated},
		{"second grant after the first TTL passed without release", []Op{
			acquireOK("a", r1, "ta", 1, 0, 10, 1),
			acquireOK("b", r1, "tb", 2, 900, 1000, 1),
			release("a", r1, "ta", 1100, 1110, Fail, "not_held"),
		}, Linearizable},
		{"fencing token decreasing", []Op{
			acquireOK("a", r1, "ta", 5, 0, 10, 1),
			release("a", r1, "ta", 20, 30, OK, ""),
			acquireOK("b", r1, "tb", 3, 40, 50, 1),
		}, Violated},
		{"fencing token repeated", []Op{
			acquireOK("a", r1, "ta", 5, 0, 10, 1),
			release("a", r1, "ta", 20, 30, OK, ""),
			acquireOK("b", r1, "tb", 5, 40, 50, 1),
		}, Violated},
		{"concurrent grants order by fencing token", []Op{
			acquireOK("a", r1, "ta", 7, 0, 100, 1),
			release("a", r1, "ta", 10, 110, OK, ""),
			acquireOK("b", r1, "tb", 9, 5, 120, 1),
		}, Linearizable},
		{"release ok by a non-holder", []Op{
			acquireOK("a", r1, "ta", 1, 0, 10, 1),
			release("b", r1, "tb", 20, 30, OK, ""),
		}, Violated},
		{"release ok of a lease another client now holds", []Op{
			acquireOK("a", r1, "ta", 1, 0, 10, 1),
			acquireOK("b", r1, "tb", 2, 1500, 1510, 1),
			release("a", r1, "ta", 1600, 1610, OK, ""),
		}, Violated},
		{"release fail by a non-holder", []Op{
			acquireOK("a", r1, "ta", 1, 0, 10, 1),
			release("b", r1, "tb", 20, 30, Fail, "not_held"),
			release("a", r1, "ta", 40, 50, OK, ""),
		}, Linearizable},
		{"holder told not held before its lease can expire", []Op{
			acquireOK("a", r1, "ta", 1, 0, 10, 1),
			release("a", r1, "ta", 20, 30, Fail, "not_held"),
		}, Violated},
		{"holder told not held after its lease may have expired frees the lock", []Op{
			acquireOK("a", r1, "ta", 1, 0, 10, 1),
			release("a", r1, "ta", 1000, 1010, Fail, "not_held"),
			acquireOK("b", r1, "tb", 2, 1020, 1030, 1),
		}, Linearizable},
		{"holder told not held before a grant that needed its lease to expire", []Op{
			acquireOK("a", r1, "ta", 1, 0, 10, 1),
			acquireOK("b", r1, "tb", 2, 900, 1100, 1),
			release("a", r1, "ta", 950, 990, Fail, "not_held"),
		}, Violated},
		{"release rejected as unavailable claims nothing", []Op{
			acquireOK("a", r1, "ta", 1, 0, 10, 1),
			release("a", r1, "ta", 20, 30, Fail, "unavailable"),
			release("a", r1, "ta", 40, 50, OK, ""),
		}, Linearizable},
		{"failed acquires are liveness, not safety", []Op{
			acquireFail("b", r1, 0, 10),
			acquireOK("a", r1, "ta", 1, 20, 30, 1),
			acquireFail("b", r1, 40, 50),
		}, Linearizable},
		{"renew extends the lease", []Op{
			acquireOK("a", r1, "ta", 1, 0, 10, 1),
			renew("a", r1, "ta", 500, 510, OK, 1),
			acquireOK("b", r1, "tb", 2, 1200, 1210, 1),
		}, Violated},
		{"grant after the renewed lease may have expired", []Op{
			acquireOK("a", r1, "ta", 1, 0, 10, 1),
			renew("a", r1, "ta", 500, 510, OK, 1),
			acquireOK("b", r1, "tb", 2, 1500, 1510, 1),
		}, Linearizable},
		{"renew ok by a non-holder", []Op{
			acquireOK("a", r1, "ta", 1, 0, 10, 1),
			renew("b", r1, "tb", 20, 30, OK, 1),
		}, Violated},
		{"renew fail by the holder before expiry", []Op{
			acquireOK("a", r1, "ta", 1, 0, 10, 1),
			renew("a", r1, "ta", 20, 30, Fail, 1),
		}, Violated},
		{"unknown acquire may not have taken effect", []Op{
			acquireUnknown("a", r1, 0, 1),
			acquireOK("b", r1, "tb", 2, 100, 110, 1),
			release("b", r1, "tb", 120, 130, OK, ""),
		}, Linearizable},
		{"an old unknown acquire does not excuse a double grant", []Op{
			acquireUnknown("c", r1, 0, 1),
			acquireOK("a", r1, "ta", 1, 2000, 2010, 1),
			acquireOK("b", r1, "tb", 3, 2100, 2110, 1),
		}, Violated},
		{"unknown release must have taken effect", []Op{
			acquireOK("a", r1, "ta", 1, 0, 10, 1),
			release("a", r1, "ta", 20, 0, Unknown, ""),
			acquireOK("b", r1, "tb", 2, 100, 110, 1),
		}, Linearizable},
		{"unknown release may not have taken effect", []Op{
			acquireOK("a", r1, "ta", 1, 0, 10, 1),
			release("a", r1, "ta", 20, 0, Unknown, ""),
			renew("a", r1, "ta", 30, 40, OK, 1),
			release("a", r1, "ta", 50, 60, OK, ""),
		}, Linearizable},
		{"unknown release does not excuse a double grant before it was called", []Op{
			acquireOK("a", r1, "ta", 1, 0, 10, 1),
			acquireOK("b", r1, "tb", 2, 100, 110, 1),
			release("a", r1, "ta", 200, 0, Unknown, ""),
		}, Violated},
		{"unknown renew claims nothing", []Op{
			acquireOK("a", r1, "ta", 1, 0, 10, 1),
			renew("a", r1, "ta", 500, 0, Unknown, 1),
			acquireOK("b", r1, "tb", 2, 1000, 1010, 1),
		}, Linearizable},
		{"resources are independent", []Op{
			acquireOK("a", r1, "ta", 1, 0, 10, 1),
			acquireOK("b", "order:2", "tb", 2, 100, 110, 1),
		}, Linearizable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkBothWays(t, tt.ops)
			assert.Equal(t, tt.want, got.Lock, "details: %v", got.Details)
			assert.Equal(t, Skipped, got.Resource)
		})
	}
}

func TestResourceModel(t *testing.T) {
	tests := []struct {
		name string
		ops  []Op
		want Verdict
	}{
		{"sequential read-modify-writes", []Op{
			read("a", r1, 1, 0, 10, 0), write("a", r1, 1, 20, 30, 1, OK),
			read("b", r1, 2, 40, 50, 1), write("b", r1, 2, 60, 70, 2, OK),
		}, Linearizable},
		{"lost update: both read 5 and write 6", []Op{
			read("a", r1, 1, 0, 10, 5), read("b", r1, 2, 5, 15, 5),
			write("a", r1, 1, 20, 30, 6, OK), write("b", r1, 2, 25, 35, 6, OK),
		}, Violated},
		{"lost update even when the writes do not overlap", []Op{
			read("a", r1, 1, 0, 10, 5), read("b", r1, 2, 20, 30, 5),
			write("b", r1, 2, 40, 50, 6, OK), write("a", r1, 1, 60, 70, 6, OK),
		}, Violated},
		{"fenced rejection of the stale write", []Op{
			read("a", r1, 1, 0, 10, 5), read("b", r1, 2, 20, 30, 5),
			write("b", r1, 2, 40, 50, 6, OK), writeRejected("a", r1, 1, 60, 70, 6),
			read("a", r1, 3, 80, 90, 6),
		}, Linearizable},
		{"rejected read is a no-op", []Op{
			readRejected("a", r1, 1, 0, 10),
			read("b", r1, 2, 20, 30, 5), write("b", r1, 2, 40, 50, 6, OK),
		}, Linearizable},
		{"read returning a stale value", []Op{
			read("a", r1, 1, 0, 10, 5), write("a", r1, 1, 20, 30, 6, OK),
			read("b", r1, 2, 40, 50, 5),
		}, Violated},
		{"unknown write must have applied", []Op{
			read("a", r1, 1, 0, 10, 5), write("a", r1, 1, 20, 0, 6, Unknown),
			read("b", r1, 2, 40, 50, 6), write("b", r1, 2, 60, 70, 7, OK),
		}, Linearizable},
		{"unknown write may not have applied", []Op{
			read("a", r1, 1, 0, 10, 5), write("a", r1, 1, 20, 0, 6, Unknown),
			read("b", r1, 2, 40, 50, 5), write("b", r1, 2, 60, 70, 7, OK),
		}, Linearizable},
		{"unknown write cannot both apply and not apply", []Op{
			read("a", r1, 1, 0, 10, 5), write("a", r1, 1, 20, 0, 6, Unknown),
			read("b", r1, 2, 40, 50, 6), read("c", r1, 3, 60, 70, 5),
		}, Violated},
		{"blind write sets the value", []Op{
			write("a", r1, 1, 0, 10, 10, OK), read("b", r1, 2, 20, 30, 10),
		}, Linearizable},
		{"blind write then a wrong read", []Op{
			write("a", r1, 1, 0, 10, 10, OK), read("b", r1, 2, 20, 30, 9),
		}, Violated},
		{"read and write of different lock cycles do not pair", []Op{
			read("a", r1, 1, 0, 10, 5), write("a", r1, 2, 20, 30, 9, OK), read("b", r1, 3, 40, 50, 9),
		}, Linearizable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkBothWays(t, tt.ops)
			assert.Equal(t, tt.want, got.Resource, "details: %v", got.Details)
			assert.Equal(t, Skipped, got.Lock)
		})
	}
}
