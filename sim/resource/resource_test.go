package resource

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestResourceFencing(t *testing.T) {
	tests := []struct {
		name      string
		fencing   bool
		wantErr   error
		wantValue int64
	}{
		{"fenced rejects a stale write", true, ErrStale, 1},
		{"unfenced accepts a stale write", false, nil, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(tt.fencing)
			require.NoError(t, r.Write("k", 10, 1))
			got := r.Write("k", 9, 7)
			assert.ErrorIs(t, got, tt.wantErr)
			v, err := r.Read("k", 10)
			require.NoError(t, err)
			assert.Equal(t, tt.wantValue, v)
		})
	}
}

func TestResourceMarkRisesOnRead(t *testing.T) {
	r := New(true)
	_, err := r.Read("k", 5)
	require.NoError(t, err)
	assert.ErrorIs(t, r.Write("k", 4, 1), ErrStale, "a read with token 5 raises the mark")
	assert.NoError(t, r.Write("k", 5, 1), "an equal token is accepted")
	st := r.State()
	require.Len(t, st, 1)
	assert.Equal(t, State{Name: "k", Value: 1, HighestToken: 5, Rejected: 1, Writes: 1}, st[0])
}
