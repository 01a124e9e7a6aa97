package faults

import (
	"fmt"
	"github.com/locksim/locksim/component"
	"math/rand/v2"
	"slices"
	"time"
)

// Nemesis fault names (scenario `nemesis.faults`).
const (
	NemesisCrashMember       = "crash-member"
	NemesisCrashLeader       = "crash-leader"
	NemesisRestartMember     = "restart-member"
	NemesisPartitionMinority = "partition-minority"
	NemesisPartitionLeader   = "partition-leader"
	NemesisPauseClient       = "pause-client"
	NemesisPauseLockServer   = "pause-lockserver"
	NemesisCrashLockServer   = "crash-lockserver"
	NemesisDelayLink         = "delay-link"
	NemesisClockSkew         = "clock-skew"
)

// NemesisFaults lists every fault Nemesis knows, in a stable order.
var NemesisFaults = []string{
	NemesisCrashMember, NemesisCrashLeader, NemesisRestartMember, NemesisPartitionMinority,
	NemesisPartitionLeader, NemesisPauseClient, NemesisPauseLockServer, NemesisCrashLockServer,
	NemesisDelayLink, NemesisClockSkew,
}

// NemesisSpec asks for a random fault every Every, drawn from Faults, each lasting For.
type NemesisSpec struct {
	Every  time.Duration // interval between faults; default 4s
	Faults []string      // names from NemesisFaults; default all of them
	For    time.Duration // how long each fault lasts; default Every/2, always < Every

	// Topology, for concrete targets (etcd-K, lockserver-K, client-K). Defaults 3, 3, 3.
	Members, LockServers, Clients int
}

// Validate reports unknown fault names and negative durations.
func (s NemesisSpec) Validate() error {
	if s.Every < 0 || s.For < 0 {
		return fmt.Errorf("%w: nemesis: negative duration", ErrInvalidStep)
	}
	for _, f := range s.Faults {
		if !slices.Contains(NemesisFaults, f) {
			return fmt.Errorf("%w: nemesis: unknown fault %q (known: %v)", ErrInvalidStep, f, NemesisFaults)
		}
	}
	return nil
}

// bounce is how long restart-member keeps a member down.
const bounce = 200 * time.Millisecond

// Nemesis expands spec into Steps for a run of the given duration. It is pure: the same spec,
// duration and seed give the same plan. Faults fire at Every, 2*Every, ... and each ends (For,
// RestartAfter) before the next fires and before duration, so at most one fault is active at a
// time: never more than one etcd member down or isolated, the cluster keeps quorum. Unknown
// fault names are skipped (see Validate). rng nil means a fixed seed of 0.
func Nemesis(spec NemesisSpec, duration time.Duration, rng *rand.Rand) []Step {
	if spec.Every <= 0 {
		spec.Every = 4 * time.Second
	}
	if spec.For <= 0 || spec.For >= spec.Every {
		spec.For = spec.Every / 2
	}
	if spec.Members <= 0 {
		spec.Members = 3
	}
	if spec.LockServers <= 0 {
		spec.LockServers = 3
	}
	if spec.Clients <= 0 {
		spec.Clients = 3
	}
	var kinds []string
	for _, f := range spec.Faults {
		if slices.Contains(NemesisFaults, f) {
			kinds = append(kinds, f)
		}
	}
	if len(spec.Faults) == 0 {
		kinds = NemesisFaults
	}
	if len(kinds) == 0 {
		return nil
	}
	if rng == nil {
		rng = rand.New(rand.NewPCG(0, 0))
	}
	var steps []Step
	for at := spec.Every; at+spec.For <= duration; at += spec.Every {
		kind := kinds[rng.IntN(len(kinds))]
		steps = append(steps, nemesisStep(kind, at, spec, rng))
	}
	return steps
}

func nemesisStep(kind string, at time.Duration, spec NemesisSpec, rng *rand.Rand) Step {
	pick := func(kind string, n int) string { return component.Name(kind, 1+rng.IntN(n)) }
	s := Step{At: at, For: spec.For, Source: "nemesis"}
	switch kind {
	case NemesisCrashMember:
		s.Fault, s.Target, s.For, s.RestartAfter = FaultCrash, pick(component.Etcd, spec.Members), 0, spec.For
	case NemesisCrashLeader:
		s.Fault, s.Target, s.For, s.RestartAfter = FaultCrash, component.EtcdLeader, 0, spec.For
	case NemesisRestartMember:
		s.Fault, s.Target, s.For, s.RestartAfter = FaultCrash, pick(component.Etcd, spec.Members), 0, min(bounce, spec.For)
	case NemesisPartitionMinority:
		s.Fault, s.Isolate = FaultPartition, component.EtcdFollower
	case NemesisPartitionLeader:
		s.Fault, s.Isolate = FaultPartition, component.EtcdLeader
	case NemesisPauseClient:
		s.Fault, s.Target = FaultPause, pick(component.Client, spec.Clients)
	case NemesisPauseLockServer:
		s.Fault, s.Target = FaultPause, pick(component.LockServer, spec.LockServers)
	case NemesisCrashLockServer:
		s.Fault, s.Target, s.For, s.RestartAfter = FaultCrash, pick(component.LockServer, spec.LockServers), 0, spec.For
	case NemesisDelayLink:
		s.Fault = FaultDelay
		s.Link = pick(component.LockServer, spec.LockServers) + "<->" + pick(component.Etcd, spec.Members)
		s.Latency = time.Duration(20+rng.IntN(181)) * time.Millisecond // 20-200 ms
		s.Jitter = s.Latency / 4
	case NemesisClockSkew:
		s.Fault, s.Target = FaultClockSkew, pick(component.Client, spec.Clients)
		s.Skew = time.Duration(500+rng.IntN(2501)) * time.Millisecond // 0.5-3 s, either way
		if rng.IntN(2) == 0 {
			s.Skew = -s.Skew
		}
	}
	s.Note = "nemesis: " + kind
	return s
}

// stepSpan is how long a step's fault lasts (For, or RestartAfter for a crash).
func stepSpan(s Step) time.Duration {
	if s.Fault == FaultCrash && s.RestartAfter > 0 {
		return s.RestartAfter
	}
	return s.For
}
