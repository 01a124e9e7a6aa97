package history

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A tail that begins while a lock is held: checked as is, the holder's
// release looks like a release by a non-holder; Tail drops it and the tail
// is linearizable, as the whole history is.
func TestTailDropsReleasesOfLocksTakenBeforeIt(t *testing.T) {
	whole := []Op{
		acquireOK("client-a", r1, "token-a", 5, 0, 10, 2),
		read("client-a", r1, 5, 20, 30, 0),
		write("client-a", r1, 5, 40, 50, 1, OK),
		release("client-a", r1, "token-a", 60, 70, OK, ""),
		acquireOK("client-b", r1, "token-b", 6, 80, 90, 2),
		read("client-b", r1, 6, 100, 110, 1),
		write("client-b", r1, 6, 120, 130, 2, OK),
		release("client-b", r1, "token-b", 140, 150, OK, ""),
	}
	require.Equal(t, Linearizable, Check(whole, Options{}).Lock)
	tail := whole[2:] // lost the acquire and the read of client-a
	assert.Equal(t, Violated, Check(tail, Options{}).Lock, "without Tail: a release by a non-holder")

	got, idx := Tail(tail)
	assert.Equal(t, []int{0, 2, 3, 4, 5}, idx)
	res := Check(got, Options{})
	assert.Equal(t, Linearizable, res.Lock)
	assert.Equal(t, Linearizable, res.Resource, "a write whose read was lost is a blind write")
}

// Tail keeps every violation that lies within the tail.
func TestTailKeepsViolationsWithinIt(t *testing.T) {
	whole := []Op{
		acquireOK("client-a", r1, "token-a", 5, 0, 10, 2),
		release("client-a", r1, "token-a", 60, 70, OK, ""),
		acquireOK("client-b", r1, "token-b", 6, 80, 90, 10),
		acquireOK("client-c", r1, "token-c", 7, 100, 110, 10), // while b holds it
		release("client-c", r1, "token-c", 120, 130, OK, ""),
	}
	got, _ := Tail(whole[1:])
	assert.Equal(t, Violated, Check(got, Options{}).Lock)
}
