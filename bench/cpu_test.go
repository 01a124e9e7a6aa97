package bench

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// spins counts spin's loop turns, so that the loop is not optimised away.
var spins atomic.Int64

// spin burns CPU for d (of wall time) on the calling goroutine.
func spin(d time.Duration) {
	n := int64(0)
	for end := time.Now().Add(d); time.Now().Before(end); {
		n++
	}
	spins.Add(n)
}

// CPU spent by goroutines started under a component's label is that
// component's, also for goroutines those goroutines start in turn.
func TestCPUIsSplitByComponentLabel(t *testing.T) {
	m := startCPU(0, "")
	require.True(t, m.on, "no other CPU profile is running")
	done := make(chan struct{})
	require.NoError(t, labeled(context.Background(), cpuEtcd, func(context.Context) error {
		go func() { // started by a labeled goroutine: inherits the label
			defer close(done)
			spin(400 * time.Millisecond)
		}()
		return nil
	}))
	<-done
	got, err := m.stop()
	require.NoError(t, err)
	assert.Positive(t, got[cpuEtcd], "the spinning goroutine's CPU is etcd's")
	assert.Greater(t, got[cpuEtcd], got[cpuClients], "nothing ran as a client")
}

func TestProcessCPUReadsProc(t *testing.T) {
	before := processCPU(os.Getpid())
	spin(200 * time.Millisecond)
	assert.Greater(t, processCPU(os.Getpid()), before)
}

// A child process's CPU (here: this process's own, read from /proc) is
// counted under the component it was started for.
func TestChildProcessCPUIsCountedUnderItsComponent(t *testing.T) {
	m := startCPU(os.Getpid(), cpuBalancer)
	spin(200 * time.Millisecond)
	got, err := m.stop()
	require.NoError(t, err)
	assert.Positive(t, got[cpuBalancer])
	assert.Zero(t, got[cpuHAProxy])
}
