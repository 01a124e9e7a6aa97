package run_test

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/lockserver"
	"github.com/locksim/locksim/run"
	"github.com/locksim/locksim/scenarios"
	"github.com/locksim/locksim/sim"
)

// A `go test` proof of a lock server of your own: the sandbox boots three
// etcd members and serves your handler as every lock server, behind the
// balancer; a catalogue scenario crashes lock servers mid-request; the
// histories are checked, and testify asserts the verdicts. In your own
// test, t is the *testing.T:
//
//	func TestMyLockServerSurvivesCrashes(t *testing.T) { ... }
func Example_ownLockServer() {
	t := &exampleT{} // your test's *testing.T

	// Your lock server: the lock API as an http.Handler over etcd. Its etcd
	// client must dial through env.Dial, so that the sandbox's partitions,
	// delays and pauses reach it. (Here etcd's own concurrency.Mutex recipe
	// behind the API stands in for yours.)
	mine := func(ctx context.Context, env sim.LockServerEnv) (http.Handler, io.Closer, error) {
		s, err := lockserver.New(lockserver.Config{
			Name: env.Name, Endpoints: env.Endpoints, DialContext: env.Dial, Recipe: lockserver.RecipeMutex,
		})
		if err != nil {
			return nil, nil, err
		}
		if err := s.Start(ctx); err != nil {
			return nil, nil, err
		}
		return s.Handler(), s, nil // s is closed when the sandbox crashes this lock server
	}

	sc, err := scenarios.Load("lockserver-crash")
	require.NoError(t, err)
	rep, err := run.Scenario(context.Background(), sc, run.Options{LockServerFunc: mine})
	require.NoError(t, err)
	v := rep.Variants[0]
	assert.Equal(t, history.Linearizable, v.Lock, "no double grant, tokens increase, only holders release")
	assert.Equal(t, history.Linearizable, v.Resource, "no lost update on the protected resource")
	assert.Positive(t, v.Check.Counts.Acquire.OK)
	fmt.Println("lock:", v.Lock)
	fmt.Println("resource:", v.Resource)
	// Output:
	// lock: linearizable
	// resource: linearizable
}

// exampleT stands in for a *testing.T in the example: it prints what an
// assertion reports (which fails the example's output) and stops at
// FailNow.
type exampleT struct{}

func (exampleT) Errorf(format string, args ...any) { fmt.Printf(format+"\n", args...) }
func (exampleT) FailNow()                          { panic("FailNow") }
