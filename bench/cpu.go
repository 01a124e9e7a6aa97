package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// Where the CPU goes. Every component of the bench's environment is started
// under a pprof label "component" (etcd, lockserver, balancer, clients);
// goroutines inherit the labels of the goroutine that starts them, so every
// goroutine an etcd member, a lock server or the balancer spawns later —
// per connection, per request, per Raft tick — carries its component's
// label. A CPU profile taken during a row then splits the process's CPU
// time by component; what carries no label (the garbage collector, the
// runtime's own work) is "runtime". haproxy runs as its own process and is
// counted from /proc.

// The values of the "component" label, in the order rows print them.
const (
	cpuClients    = "clients"
	cpuBalancer   = "balancer"
	cpuLockServer = "lockserver"
	cpuEtcd       = "etcd"
	cpuRuntime    = "runtime"
	cpuHAProxy    = "haproxy"
)

// CPUComponents lists the components a Row's CPUUsPerCycle may name.
var CPUComponents = []string{cpuClients, cpuBalancer, cpuHAProxy, cpuLockServer, cpuEtcd, cpuRuntime}

// labeled runs f under the pprof label component=name, so that every
// goroutine f starts is counted as that component's.
func labeled(ctx context.Context, name string, f func(context.Context) error) error {
	var err error
	pprof.Do(ctx, pprof.Labels("component", name), func(ctx context.Context) { err = f(ctx) })
	return err
}

// cpuMeter measures one row's CPU time by component.
type cpuMeter struct {
	buf   bytes.Buffer
	on    bool   // the profile is running (false when another one already was)
	pid   int    // a child process on the row's path (0: none)
	label string // its component
	cpu0  time.Duration
}

// startCPU starts a CPU profile, and counts the CPU time of the child
// process pid (0: none) as component label's; when a profile is already
// running (go test -cpuprofile), the row goes without a CPU split.
func startCPU(pid int, label string) *cpuMeter {
	m := &cpuMeter{pid: pid, label: label}
	m.on = pprof.StartCPUProfile(&m.buf) == nil
	if m.pid != 0 {
		m.cpu0 = processCPU(m.pid)
	}
	return m
}

// stop ends the profile and returns the CPU time of each component.
func (m *cpuMeter) stop() (map[string]time.Duration, error) {
	if !m.on {
		return nil, nil
	}
	pprof.StopCPUProfile()
	out, err := cpuByComponent(m.buf.Bytes())
	if err != nil {
		return nil, err
	}
	if m.pid != 0 {
		out[m.label] += processCPU(m.pid) - m.cpu0
	}
	return out, nil
}

// cpuByComponent sums a CPU profile's samples by their "component" label.
func cpuByComponent(data []byte) (map[string]time.Duration, error) {
	p, err := profile.ParseData(data)
	if err != nil {
		return nil, fmt.Errorf("bench: cpu profile: %w", err)
	}
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" && st.Unit == "nanoseconds" {
			idx = i
		}
	}
	if idx < 0 {
		return nil, fmt.Errorf("bench: cpu profile without cpu nanoseconds")
	}
	out := map[string]time.Duration{}
	for _, s := range p.Sample {
		name := cpuRuntime
		if v := s.Label["component"]; len(v) > 0 {
			name = v[0]
		}
		out[name] += time.Duration(s.Value[idx])
	}
	return out, nil
}

// processCPU is the user and system CPU time of a process, from /proc (0
// where there is none).
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The fields after the command (which may hold spaces) in parentheses.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticks
}
