package loadbalancer

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func up(inFlight ...int64) []BackendView {
	views := make([]BackendView, len(inFlight))
	for i, n := range inFlight {
		views[i] = BackendView{Eligible: true, InFlight: n}
	}
	return views
}

func without(views []BackendView, down ...int) []BackendView {
	for _, i := range down {
		views[i].Eligible = false
	}
	return views
}

// picks runs p.Pick n times on the same views; -1 stands for "none".
func picks(p Picker, views []BackendView, n int) []int {
	got := make([]int, n)
	for k := range got {
		i, ok := p.Pick(views)
		if !ok {
			i = -1
		}
		got[k] = i
	}
	return got
}

func TestRoundRobinPick(t *testing.T) {
	tests := []struct {
		name  string
		views []BackendView
		want  []int
	}{
		{"all up take turns", up(0, 0, 0), []int{0, 1, 2, 0, 1, 2}},
		{"in-flight counts are ignored", up(9, 0, 0), []int{0, 1, 2, 0}},
		// A naive "start at counter, skip down" would give 0,2,2,0,2,2.
		{"down backend skipped without doubling its successor", without(up(0, 0, 0), 1), []int{0, 2, 0, 2, 0, 2}},
		{"only one up", without(up(0, 0, 0), 0, 1), []int{2, 2, 2}},
		{"none up", without(up(0, 0), 0, 1), []int{-1, -1}},
		{"no backends", nil, []int{-1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := picks(&RoundRobin{}, tt.views, len(tt.want))
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestLeastConnectionsPick(t *testing.T) {
	tests := []struct {
		name  string
		views []BackendView
		want  []int
	}{
		{"fewest in flight wins", up(3, 0, 1), []int{1, 1, 1}},
		{"ties rotate so idle backends share load", up(0, 0, 0), []int{0, 1, 2, 0, 1, 2}},
		{"ties among the least loaded only", up(2, 0, 0), []int{1, 2, 1, 2}},
		{"down backend skipped even if idle", without(up(0, 5, 7), 0), []int{1, 1}},
		{"none up", without(up(0, 0), 0, 1), []int{-1}},
		{"no backends", nil, []int{-1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := picks(&LeastConnections{}, tt.views, len(tt.want))
			assert.Equal(t, tt.want, got)
		})
	}
}

// Under concurrent use the round-robin cursor still hands out every
// position exactly once: the spread is exactly even.
func TestRoundRobinConcurrentPicksAreExactlyEven(t *testing.T) {
	const goroutines, each = 8, 3000
	p := &RoundRobin{}
	views := up(0, 0, 0)
	var mu sync.Mutex
	got := make([]int, len(views))
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			local := make([]int, len(views))
			for range each {
				i, ok := p.Pick(views)
				if ok {
					local[i]++
				}
			}
			mu.Lock()
			for i, n := range local {
				got[i] += n
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	want := goroutines * each / len(views)
	assert.Equal(t, []int{want, want, want}, got)
}

func TestNewPicker(t *testing.T) {
	tests := []struct {
		policy  string
		want    Picker
		wantErr error
	}{
		{"", &RoundRobin{}, nil},
		{PolicyRoundRobin, &RoundRobin{}, nil},
		{PolicyLeastConnections, &LeastConnections{}, nil},
		{"random", nil, ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			got, err := NewPicker(tt.policy)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.IsType(t, tt.want, got)
		})
	}
}
